// dQ/dV, dV/dQ and Li-symmetric plots of the cell page, drawn with the bundled Plotly.
// window.limsDrawDqdv is shared with the stitched test's plots (stitched_plots.js).
(function () {
  const layout = (title, x, y) => ({
    title: {text: title}, margin: {t: 64}, xaxis: {title: {text: x}}, yaxis: {title: {text: y}},
    legend: {orientation: 'h', y: -0.25},
  });
  // dQ/dV and dV/dQ of a selectors.dqdv_of_test / dqdv_of_stitched result; the subtitle says
  // how it was smoothed and from which file(s), so a copied picture keeps its provenance.
  window.limsDrawDqdv = function (dqdvId, dvdqId, dqdv) {
    const name = (c) => `cycle ${c.cycle_index} ${c.direction}` +
      (c.files && c.files.length ? ` (${c.files.join(' + ')})` : '');
    const prov = dqdv.provenance || {};
    const source = prov.raw_file ? `${prov.raw_file} ${String(prov.raw_sha256).slice(0, 12)}`
      : (prov.tests || []).map((t) => t.raw_file).join(' + ');
    const sub = `<br><sup>${dqdv.method.summary}</sup><br><sup>${source}</sup>`;
    Plotly.newPlot(dqdvId, dqdv.curves.map((c) => ({
      x: c.voltage_v, y: c.dqdv_mah_per_v, name: name(c), mode: 'lines', type: 'scatter',
    })), layout(`dQ/dV${sub}`, 'voltage (V)', 'dQ/dV (mAh/V)'), {responsive: true});
    Plotly.newPlot(dvdqId, dqdv.curves.map((c) => ({
      x: c.capacity_grid_mah, y: c.dvdq_v_per_mah, name: name(c), mode: 'lines', type: 'scatter',
    })), layout(`dV/dQ${sub}`, 'capacity in the half cycle, without a CV hold (mAh)',
      'dV/dQ (V/mAh)'), {responsive: true});
  };
  const el = document.getElementById('analytics-data');
  if (!el || typeof Plotly === 'undefined') return;
  for (const t of JSON.parse(el.textContent)) {
    if (t.dqdv && document.getElementById(`dqdv-${t.id}`)) {
      window.limsDrawDqdv(`dqdv-${t.id}`, `dvdq-${t.id}`, t.dqdv);
    }
    if (t.symmetric && document.getElementById(`sym-vt-${t.id}`)) {
      const tr = t.symmetric.trace;
      Plotly.newPlot(`sym-vt-${t.id}`, [
        {x: tr.time_h, y: tr.voltage_v, name: 'voltage', mode: 'lines', type: 'scattergl'},
        {x: tr.time_h, y: tr.current_ma, name: 'current', yaxis: 'y2', mode: 'lines',
         type: 'scattergl', line: {shape: 'hv'}},
      ], {
        ...layout('Voltage and current steps', 'time (h)', 'voltage (V)'),
        yaxis2: {title: {text: 'current (mA)'}, overlaying: 'y', side: 'right'},
      }, {responsive: true});
      const steps = t.symmetric.steps.filter((s) => s.overpotential_v !== null);
      const perArea = steps.every((s) => s.current_density_ma_cm2 !== null);
      Plotly.newPlot(`sym-eta-${t.id}`, [{
        x: steps.map((s) => perArea ? s.current_density_ma_cm2 : s.current_ma),
        y: steps.map((s) => s.overpotential_v * 1000),
        text: steps.map((s) => (s.shorted ? 'short' : s.noisy ? 'noisy' : '')),
        mode: 'lines+markers+text', textposition: 'top center', type: 'scatter',
      }], layout('Overpotential vs current density',
        perArea ? 'current density (mA/cm²)' : 'current (mA)', 'overpotential (mV)'),
      {responsive: true});
    }
  }
})();
