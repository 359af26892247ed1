// Capacity/CE vs cycle and voltage vs capacity per cycling test, drawn with the bundled Plotly.
(function () {
  const el = document.getElementById('plot-data');
  if (!el || typeof Plotly === 'undefined') return;
  const tests = JSON.parse(el.textContent);
  for (const t of tests) {
    const s = t.series;
    const unit = s.per_gram ? 'mAh/g' : 'mAh';
    Plotly.newPlot(`cap-${t.id}`, [
      {x: s.cycle, y: s.charge, name: 'charge', mode: 'markers', type: 'scatter'},
      {x: s.cycle, y: s.discharge, name: 'discharge', mode: 'markers', type: 'scatter'},
      {x: s.cycle, y: s.ce, name: 'CE %', yaxis: 'y2', mode: 'lines+markers', type: 'scatter'},
    ], {
      title: {text: 'Capacity and CE vs cycle'}, margin: {t: 40},
      xaxis: {title: {text: 'cycle'}}, yaxis: {title: {text: unit}},
      yaxis2: {title: {text: 'CE (%)'}, overlaying: 'y', side: 'right'},
    }, {responsive: true});
    const curves = Object.entries(t.curves).map(([cycle, c]) => ({
      x: c.capacity_mah, y: c.voltage_v, name: `cycle ${cycle}`, mode: 'lines', type: 'scattergl',
    }));
    Plotly.newPlot(`vq-${t.id}`, curves, {
      title: {text: 'Voltage vs capacity'}, margin: {t: 40},
      xaxis: {title: {text: 'capacity (mAh)'}}, yaxis: {title: {text: 'voltage (V)'}},
    }, {responsive: true});
  }
})();
