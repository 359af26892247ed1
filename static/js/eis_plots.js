// Nyquist (-Z'' vs Z', equal axes) and Bode (|Z| and phase vs f) of impedance spectra,
// drawn with the bundled Plotly. Stored Z'' is negative for capacitive behaviour.
(function () {
  const el = document.getElementById('eis-data');
  if (!el || typeof Plotly === 'undefined') return;
  const spectra = JSON.parse(el.textContent);
  if (!spectra.length) return;
  // One colour per spectrum on both plots. In the Bode plot a spectrum's |Z| (filled) and
  // phase (open markers) share one legend entry, and so do a fit's |Z| (line) and phase
  // (dotted): the legend lists spectra and fits, not every trace.
  const palette = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#e377c2',
    '#17becf', '#bcbd22', '#7f7f7f'];
  const nyquist = [];
  const bode = [];
  spectra.forEach((s, i) => {
    const p = s.series;
    const color = palette[i % palette.length];
    const group = `spectrum-${s.id}`;
    const hz = p.f_hz.map((f) => `${f.toPrecision(4)} Hz`);
    nyquist.push({
      x: p.z_real_ohm, y: p.z_imag_ohm.map((v) => -v), name: s.label, legendgroup: group,
      mode: 'markers', type: 'scatter', marker: {color}, text: hz,
    });
    if (s.hf_intercept_ohm !== null) {
      const name = `HF intercept ${s.hf_intercept_ohm.toPrecision(5)} Ω`;
      nyquist.push({
        x: [s.hf_intercept_ohm], y: [0], name, legendgroup: group, text: [name],
        showlegend: spectra.length === 1, // several spectra: the hover says it
        mode: 'markers', marker: {symbol: 'x', size: 12, color}, type: 'scatter',
      });
    }
    bode.push({
      x: p.f_hz, y: p.z_mod_ohm, name: s.label, legendgroup: group,
      mode: 'markers', type: 'scatter', marker: {color},
    });
    bode.push({
      x: p.f_hz, y: p.phase_deg, name: `phase ${s.label}`, legendgroup: group, showlegend: false,
      yaxis: 'y2', mode: 'markers', type: 'scatter', marker: {color, symbol: 'circle-open'},
    });
    if (s.fit && s.fit.curve) {
      const c = s.fit.curve;
      const fit = `fit-${s.fit.id}`;
      nyquist.push({
        x: c.z_real_ohm, y: c.z_imag_ohm.map((v) => -v), name: s.fit.label,
        mode: 'lines', type: 'scatter', line: {color: 'black'},
      });
      bode.push({
        x: c.f_hz, y: c.z_mod_ohm, name: s.fit.label, legendgroup: fit,
        mode: 'lines', type: 'scatter', line: {color: 'black'},
      });
      bode.push({
        x: c.f_hz, y: c.phase_deg, name: `phase ${s.fit.label}`, legendgroup: fit, showlegend: false,
        yaxis: 'y2', mode: 'lines', type: 'scatter', line: {color: 'black', dash: 'dot'},
      });
    }
  });
  // Legends go below the plots, one entry per row, with room made for them. On the right
  // (Plotly's default) the Bode legend covered the phase axis, its ticks and its title, and
  // long file names squeezed the Nyquist plot's equal axes. A legend anchored to the
  // container's bottom does not push the margin by itself: it is sized here.
  const ROW_PX = 20;
  const entries = (traces) => traces.filter((t) => t.showlegend !== false).length;
  const rows = Math.max(entries(nyquist), entries(bode));
  for (const id of ['eis-nyquist', 'eis-bode']) {
    document.getElementById(id).style.height = `${330 + ROW_PX * rows}px`;
  }
  const legend = {
    orientation: 'h', entrywidth: 1, entrywidthmode: 'fraction', tracegroupgap: 0,
    x: 0, xanchor: 'left', yref: 'container', y: 0, yanchor: 'bottom',
  };
  const margin = {t: 40, b: 64 + ROW_PX * rows};
  Plotly.newPlot('eis-nyquist', nyquist, {
    title: {text: 'Nyquist'}, margin, legend,
    xaxis: {title: {text: "Z' (Ω)"}, constrain: 'domain'},
    yaxis: {title: {text: "-Z'' (Ω)"}, scaleanchor: 'x', scaleratio: 1},
  }, {responsive: true});
  Plotly.newPlot('eis-bode', bode, {
    title: {text: 'Bode'}, margin, legend,
    xaxis: {title: {text: 'f (Hz)'}, type: 'log'},
    yaxis: {title: {text: '|Z| (Ω): filled, solid'}, type: 'log'},
    // its own round ticks (Plotly syncs an overlaying axis to the log ticks of |Z| otherwise)
    yaxis2: {
      title: {text: 'phase (°): open, dotted'}, overlaying: 'y', side: 'right',
      tickmode: 'auto', showgrid: false, zeroline: false,
    },
  }, {responsive: true});
  const kk = spectra[0].kk;
  if (kk && document.getElementById('eis-kk')) {
    const pct = (a) => a.map((v) => 100 * v);
    const limit = 100 * kk.threshold;
    Plotly.newPlot('eis-kk', [
      {x: kk.f_hz, y: pct(kk.real), name: "ΔZ'/|Z|", mode: 'lines+markers', type: 'scatter'},
      {x: kk.f_hz, y: pct(kk.imag), name: "ΔZ''/|Z|", mode: 'lines+markers', type: 'scatter'},
    ], {
      title: {text: 'Lin-KK residuals'}, margin: {t: 40},
      xaxis: {title: {text: 'f (Hz)'}, type: 'log'},
      yaxis: {title: {text: 'residual (%)'}},
      shapes: [limit, -limit].map((y) => ({
        type: 'line', xref: 'paper', x0: 0, x1: 1, y0: y, y1: y, line: {dash: 'dash', color: 'red'},
      })),
    }, {responsive: true});
  }
})();

// Arrhenius plot of one specimen: ln(sigma T) vs 1000/T with the fitted line.
(function () {
  const el = document.getElementById('arrhenius-data');
  if (!el || typeof Plotly === 'undefined' || !document.getElementById('eis-arrhenius')) return;
  const a = JSON.parse(el.textContent);
  if (!a.points.length) return;
  const traces = [{
    x: a.points.map((p) => p.inverse_t_1000_k), y: a.points.map((p) => p.ln_sigma_t),
    text: a.points.map((p) => `${p.name}: ${p.temperature_c} °C, σ = ${p.sigma_s_cm.toPrecision(4)} S/cm`),
    name: 'σ from fits', mode: 'markers', type: 'scatter',
  }];
  if (a.fit) {
    const xs = a.points.map((p) => p.inverse_t_1000_k);
    const lo = Math.min(...xs, 1000 / 298.15);
    const hi = Math.max(...xs);
    const k = 8.617333262e-5;
    const line = (x) => Math.log(a.fit.prefactor_s_k_cm) - a.fit.ea_ev * x / (1000 * k);
    traces.push({
      x: [lo, hi], y: [line(lo), line(hi)], mode: 'lines', type: 'scatter',
      name: `Ea = ${a.fit.ea_ev.toFixed(3)} eV`,
    });
  }
  Plotly.newPlot('eis-arrhenius', traces, {
    title: {text: 'Arrhenius'}, margin: {t: 40},
    xaxis: {title: {text: '1000/T (1/K)'}},
    yaxis: {title: {text: 'ln(σT / (S K/cm))'}},
  }, {responsive: true});
})();
