// The stitched test of the cell page: capacity and CE vs stitched cycle with one colour per
// file (hover names the file, test and file cycle; a click goes to that test's section), and
// dQ/dV of chosen stitched cycles (drawn by cell_analytics.js's limsDrawDqdv).
(function () {
  const el = document.getElementById('stitched-data');
  if (!el || typeof Plotly === 'undefined') return;
  const sv = JSON.parse(el.textContent);
  const colours = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
  const traces = [];
  sv.capacity.files.forEach((f, n) => {
    const colour = colours[n % colours.length];
    const custom = f.cycle.map((_, k) => [f.test, f.cycle_in_file[k],
      f.split_with[k] ? `<br>split with ${f.split_with[k]}: parts added` : '']);
    const hover = (what) => `${what} %{y:.4g} ${sv.capacity.unit}<br>stitched cycle %{x}` +
      `<br>${f.file} (test ${f.test}, ${f.parser}), file cycle %{customdata[1]}` +
      '%{customdata[2]}<extra></extra>';
    traces.push({
      x: f.cycle, y: f.discharge, customdata: custom, name: `${f.file} discharge`,
      legendgroup: f.file, mode: 'markers', type: 'scatter',
      marker: {color: colour, symbol: 'circle'}, hovertemplate: hover('discharge'),
    });
    traces.push({
      x: f.cycle, y: f.charge, customdata: custom, name: `${f.file} charge`,
      legendgroup: f.file, mode: 'markers', type: 'scatter',
      marker: {color: colour, symbol: 'circle-open'}, hovertemplate: hover('charge'),
    });
    traces.push({
      x: f.cycle, y: f.ce, customdata: custom, name: `${f.file} CE`, legendgroup: f.file,
      yaxis: 'y2', mode: 'lines', type: 'scatter', line: {color: colour, dash: 'dot'},
      hovertemplate: 'CE %{y:.2f} %<br>stitched cycle %{x}<extra></extra>',
    });
  });
  const plot = document.getElementById('stitched-capacity');
  if (plot) {
    Plotly.newPlot(plot, traces, {
      title: {text: 'Capacity and CE vs stitched cycle'}, margin: {t: 40},
      xaxis: {title: {text: 'stitched cycle'}}, yaxis: {title: {text: sv.capacity.unit}},
      yaxis2: {title: {text: 'CE (%)'}, overlaying: 'y', side: 'right'},
      legend: {orientation: 'h', y: -0.2},
    }, {responsive: true});
    plot.on('plotly_click', (event) => {
      const point = event.points && event.points[0];
      if (point && point.customdata) window.location.hash = `test-${point.customdata[0]}`;
    });
  }
  if (sv.dqdv && document.getElementById('stitched-dqdv') && window.limsDrawDqdv) {
    window.limsDrawDqdv('stitched-dqdv', 'stitched-dvdq', sv.dqdv);
  }
})();
