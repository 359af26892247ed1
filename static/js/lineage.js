// Lineage picture: samples in columns by generation, operations as diamonds, masses on edges.
(function () {
  const el = document.getElementById('lineage-data');
  if (!el || typeof Plotly === 'undefined') return;
  const fig = JSON.parse(el.textContent);
  const traces = [];
  for (const e of fig.edges) {
    traces.push({x: [e.from[0], e.to[0]], y: [e.from[1], e.to[1]], mode: 'lines', type: 'scatter',
                 line: {color: '#9aa5b8'}, hoverinfo: 'skip', showlegend: false});
  }
  traces.push({x: fig.edges.map(e => (e.from[0] + e.to[0]) / 2), y: fig.edges.map(e => (e.from[1] + e.to[1]) / 2),
               text: fig.edges.map(e => e.label), mode: 'text', type: 'scatter', textfont: {size: 10, color: '#5d6778'},
               hoverinfo: 'skip', showlegend: false});
  traces.push({x: fig.operations.map(o => o.x), y: fig.operations.map(o => o.y), text: fig.operations.map(o => o.text),
               mode: 'markers+text', textposition: 'bottom center', type: 'scatter', name: 'operations',
               marker: {symbol: 'diamond', size: 14, color: '#e0a030'}});
  traces.push({x: fig.nodes.map(n => n.x), y: fig.nodes.map(n => n.y), text: fig.nodes.map(n => n.code),
               hovertext: fig.nodes.map(n => n.text), hoverinfo: 'text', mode: 'markers+text', textposition: 'top center',
               type: 'scatter', name: 'samples',
               marker: {size: 18, color: fig.nodes.map(n => n.root ? '#c0392b' : '#1f5fbf')}});
  const cells = fig.cells || [];
  if (cells.length) {
    traces.push({x: cells.map(c => c.x), y: cells.map(c => c.y), text: cells.map(c => c.code),
                 hovertext: cells.map(c => c.text), hoverinfo: 'text', mode: 'markers+text',
                 textposition: 'top center', type: 'scatter', name: 'cell',
                 marker: {symbol: 'square', size: 20, color: '#2e8b57'}});
  }
  Plotly.newPlot('lineage', traces, {
    margin: {t: 20, l: 20, r: 20, b: 20}, xaxis: {visible: false}, yaxis: {visible: false},
    legend: {orientation: 'h'},
  }, {responsive: true});
  const plot = document.getElementById('lineage');
  plot.on('plotly_click', (ev) => {
    const p = ev.points[0];
    if (p && p.data.name === 'samples') window.location = `/samples/${fig.nodes[p.pointIndex].code}/`;
    if (p && p.data.name === 'cell') window.location = `/cells/${cells[p.pointIndex].code}/`;
  });
})();
