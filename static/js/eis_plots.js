// Nyquist (-Z'' vs Z', equal axes) and Bode (|Z| and phase vs f) of impedance spectra,
// drawn with the bundled Plotly. Stored Z'' is negative for capacitive behaviour.
(function () {
  const el = document.getElementById('eis-data');
  if (!el || typeof Plotly === 'undefined') return;
  const spectra = JSON.parse(el.textContent);
  if (!spectra.length) return;
  const nyquist = [];
  const bode = [];
  for (const s of spectra) {
    const p = s.series;
    nyquist.push({
      x: p.z_real_ohm, y: p.z_imag_ohm.map((v) => -v), name: s.label,
      mode: 'markers', type: 'scatter',
      text: p.f_hz.map((f) => `${f.toPrecision(4)} Hz`),
    });
    if (s.hf_intercept_ohm !== null) {
      nyquist.push({
        x: [s.hf_intercept_ohm], y: [0], name: `HF intercept ${s.hf_intercept_ohm.toPrecision(5)} Ω`,
        mode: 'markers', marker: {symbol: 'x', size: 12}, type: 'scatter',
      });
    }
    if (s.fit && s.fit.curve) {
      const c = s.fit.curve;
      nyquist.push({
        x: c.z_real_ohm, y: c.z_imag_ohm.map((v) => -v), name: s.fit.label,
        mode: 'lines', type: 'scatter', line: {color: 'black'},
      });
      bode.push({x: c.f_hz, y: c.z_mod_ohm, name: `|Z| ${s.fit.label}`, mode: 'lines', type: 'scatter', line: {color: 'black'}});
      bode.push({
        x: c.f_hz, y: c.phase_deg, name: `phase ${s.fit.label}`, yaxis: 'y2',
        mode: 'lines', type: 'scatter', line: {color: 'black', dash: 'dot'},
      });
    }
    bode.push({x: p.f_hz, y: p.z_mod_ohm, name: `|Z| ${s.label}`, mode: 'markers', type: 'scatter'});
    bode.push({
      x: p.f_hz, y: p.phase_deg, name: `phase ${s.label}`, yaxis: 'y2',
      mode: 'markers', type: 'scatter',
    });
  }
  Plotly.newPlot('eis-nyquist', nyquist, {
    title: {text: 'Nyquist'}, margin: {t: 40},
    xaxis: {title: {text: "Z' (Ω)"}, constrain: 'domain'},
    yaxis: {title: {text: "-Z'' (Ω)"}, scaleanchor: 'x', scaleratio: 1},
  }, {responsive: true});
  Plotly.newPlot('eis-bode', bode, {
    title: {text: 'Bode'}, margin: {t: 40},
    xaxis: {title: {text: 'f (Hz)'}, type: 'log'},
    yaxis: {title: {text: '|Z| (Ω)'}, type: 'log'},
    yaxis2: {title: {text: 'phase (°)'}, overlaying: 'y', side: 'right'},
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
