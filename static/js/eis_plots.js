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
    bode.push({x: p.f_hz, y: p.z_mod_ohm, name: `|Z| ${s.label}`, mode: 'lines+markers', type: 'scatter'});
    bode.push({
      x: p.f_hz, y: p.phase_deg, name: `phase ${s.label}`, yaxis: 'y2',
      mode: 'lines+markers', type: 'scatter', line: {dash: 'dot'},
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
})();
