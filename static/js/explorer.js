// Explorer plots: the main scatter/box of the filtered cells, and the curve overlays of the
// picked cells. Data comes from the page (json_script "explorer-data"); nothing is fetched.
(function () {
  const data = JSON.parse(document.getElementById("explorer-data").textContent);
  const form = document.getElementById("explorer-form");
  const titles = data.titles;

  function addHidden(containerId, name, value, label) {
    const box = document.getElementById(containerId);
    const span = document.createElement("span");
    span.className = "filter";
    span.innerHTML = '<input type="hidden"> <a href="#" class="drop-filter">×</a>';
    span.firstChild.name = name;
    span.firstChild.value = value;
    span.insertBefore(document.createTextNode(label), span.childNodes[1]);
    box.appendChild(span);
  }

  function toggleCell(code) {
    const inputs = [...form.querySelectorAll('input[name="cell"]')];
    const found = inputs.find((i) => i.value === code);
    if (found) found.parentElement.remove();
    else addHidden("overlay-cells", "cell", code, code);
    form.submit();
  }

  document.getElementById("add-filter").addEventListener("click", () => {
    const col = document.getElementById("f-col").value;
    const op = document.getElementById("f-op").value;
    const val = document.getElementById("f-val").value;
    addHidden("filters", "f", `${col}:${op}:${val}`, `${col}:${op}:${val}`);
    form.submit();
  });
  form.addEventListener("click", (e) => {
    if (e.target.classList.contains("drop-filter")) {
      e.preventDefault();
      e.target.parentElement.remove();
      form.submit();
    }
  });
  document.querySelectorAll("input.pick").forEach((box) =>
    box.addEventListener("change", () => toggleCell(box.value)),
  );

  const plot = data.plot;
  const main = document.getElementById("main-plot");
  if (plot.kind === "box") {
    Plotly.newPlot(
      main,
      plot.traces.map((t) => ({
        type: "box", name: t.name, y: t.y, text: t.cells, boxpoints: "all", jitter: 0.4,
        pointpos: 0, hovertemplate: "%{text}: %{y}<extra>%{fullData.name}</extra>",
      })),
      { yaxis: { title: { text: titles[data.y] } }, margin: { t: 20 }, legend: { orientation: "h", y: -0.2 } },
      { responsive: true },
    );
  } else {
    Plotly.newPlot(
      main,
      plot.traces.map((t) => ({
        type: "scatter", mode: "markers", name: t.name, x: t.x, y: t.y,
        customdata: t.cells, text: t.sources, marker: { size: 10 },
        hovertemplate: "<b>%{customdata}</b><br>x %{x}<br>y %{y}<br>%{text}<extra>%{fullData.name}</extra>",
      })),
      {
        xaxis: { title: { text: titles[data.x] } }, yaxis: { title: { text: titles[data.y] } },
        margin: { t: 20 }, legend: { title: { text: "group" } }, hovermode: "closest",
      },
      { responsive: true },
    );
    main.on("plotly_click", (ev) => toggleCell(ev.points[0].customdata));
  }

  const cap = document.getElementById("capacity-overlay");
  if (cap && data.capacity.length) {
    const perGram = data.capacity.every((t) => t.per_gram);
    Plotly.newPlot(
      cap,
      data.capacity.map((t) => ({
        type: "scatter", mode: "lines+markers", name: t.cell, x: t.x, y: t.y, marker: { size: 4 },
        hovertemplate: `${t.cell} (${t.files.join(", ")})<br>cycle %{x}: %{y}<extra></extra>`,
      })),
      {
        title: { text: "Discharge capacity vs cycle (stitched)" },
        xaxis: { title: { text: "cycle" } },
        yaxis: { title: { text: perGram ? "discharge (mAh/g)" : "discharge (mAh)" } },
        margin: { t: 40 },
      },
      { responsive: true },
    );
  }
  const volt = document.getElementById("voltage-overlay");
  if (volt && data.voltage.length) {
    const perGram = data.voltage.every((t) => t.per_gram);
    Plotly.newPlot(
      volt,
      data.voltage.map((t) => ({
        type: "scattergl", mode: "lines", name: t.cell, x: t.x, y: t.y,
        hovertemplate: `${t.cell} (${t.file}) cycle ${t.cycle}<br>%{x:.4g}, %{y:.4g} V<extra></extra>`,
      })),
      {
        title: { text: `Voltage vs capacity, cycle ${data.voltage[0].cycle}` },
        xaxis: { title: { text: perGram ? "capacity (mAh/g)" : "capacity (mAh)" } },
        yaxis: { title: { text: "voltage (V)" } }, margin: { t: 40 },
      },
      { responsive: true },
    );
  }
})();
