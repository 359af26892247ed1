// R_interface vs stitched cycle (StitchedRecord.interface_resistance), with error bars.
(function () {
  const el = document.getElementById('interface-data');
  if (!el || typeof Plotly === 'undefined' || !document.getElementById('interface-plot')) return;
  const series = JSON.parse(el.textContent).series || [];
  if (!series.length) return;
  Plotly.newPlot('interface-plot', [{
    x: series.map((p) => p.cycle), y: series.map((p) => p.r_ohm),
    error_y: {type: 'data', array: series.map((p) => p.r_stderr_ohm || 0), visible: true},
    text: series.map((p) => `${p.file} (fit ${p.fit}, ${p.terms.join(' + ')})`),
    mode: 'lines+markers', type: 'scatter', name: 'R_interface',
  }], {
    title: {text: 'Interfacial resistance vs cycle'}, margin: {t: 40},
    xaxis: {title: {text: 'after stitched cycle'}, dtick: 1},
    yaxis: {title: {text: 'R_interface (Ω)'}, rangemode: 'tozero'},
  }, {responsive: true});
})();
