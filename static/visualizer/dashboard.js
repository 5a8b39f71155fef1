// The project dashboard: draws the figures the server built, redraws them for another
// range or graph (data.json), and sends a click on a point to the runs behind it (each
// point's customdata is the run list's URL, built in Python).
import { cell, el } from "./dom.js";
import { getJSON } from "./http.js";
import { number } from "./format.js";
import { onThemeChange, themed } from "./theme.js";

const page = JSON.parse(document.getElementById("dashboard-data").textContent);
const plotConfig = { displayModeBar: false, responsive: true };
const CHARTS = {
  runs: "chart-runs",
  latency: "chart-latency",
  node_tokens: "chart-node-tokens",
  graph_tokens: "chart-graph-tokens",
  loops: "chart-loops",
};

const form = document.getElementById("dashboard-filters");
const range = document.getElementById("range-select");
const custom = document.getElementById("custom-range");
const errorBox = document.getElementById("dashboard-error");

const ms = (value) => `${value.toLocaleString(undefined, { maximumFractionDigits: 1 })} ms`;

function renderSlower(rows) {
  document.getElementById("slower-empty").hidden = rows.length > 0;
  document.getElementById("slower-rows").replaceChildren(...rows.map((row) => {
    const name = document.createElement("td");
    const link = el("a", null, row.node);
    link.href = row.url;
    name.append(link);
    const sign = row.change_ms > 0 ? "+" : "";
    const pct = row.change_pct === null ? "" : ` (${sign}${row.change_pct}%)`;
    const change = cell(`${sign}${ms(row.change_ms)}${pct}`, "num");
    if (row.change_ms > 0) change.classList.add("slower");
    else if (row.change_ms < 0) change.classList.add("faster");
    return el("tr", null, null, name, cell(ms(row.p95_before), "num"), cell(ms(row.p95), "num"),
      change, cell(number(row.steps), "num"));
  }));
}

function renderTotals(data) {
  const runs = document.getElementById("stat-runs");
  runs.textContent = number(data.totals.runs);
  runs.href = data.totals.runs_url;
  document.getElementById("stat-failed").textContent = number(data.totals.failed);
  const rate = data.totals.failure_rate;
  document.getElementById("stat-rate").textContent = rate === null ? "–" : `${rate}%`;
  const day = (iso) => iso.slice(0, 16).replace("T", " ");
  document.getElementById("stat-range").textContent = `${day(data.window.start)} → ${day(data.window.end)} UTC`;
}

let shown = null;

function drawCharts() {
  for (const [name, id] of Object.entries(CHARTS)) {
    const figure = shown.figures[name];
    Plotly.react(id, ...themed(figure.data, figure.layout), plotConfig);
  }
}
onThemeChange(() => { if (shown) drawCharts(); });

function render(data) {
  shown = data;
  drawCharts();
  renderSlower(data.slower);
  renderTotals(data);
  document.body.dataset.dashboardStart = data.window.start;
}

for (const id of Object.values(CHARTS)) {
  const chart = document.getElementById(id);
  Plotly.newPlot(chart, ...themed([], {}), plotConfig);
  chart.on("plotly_click", (event) => {
    const url = event.points[0]?.customdata;
    if (url) window.location.assign(url);
  });
}

function query() {
  const params = new URLSearchParams();
  if (range.value) params.set("last", range.value);
  else {
    for (const name of ["started_after", "started_before"]) {
      const value = form.elements[name].value;
      if (value) params.set(name, value);
    }
  }
  const graph = form.elements.graph_name.value;
  if (graph) params.set("graph_name", graph);
  return params;
}

async function refresh() {
  const params = query();
  try {
    const data = await getJSON(`${page.data_url}?${params}`);
    errorBox.hidden = true;
    render(data);
    history.replaceState(null, "", `?${params}`);
  } catch (error) {
    errorBox.textContent = error.message;
    errorBox.hidden = false;
  }
}

form.addEventListener("change", () => {
  custom.hidden = range.value !== "";
  refresh();
});
form.addEventListener("submit", (event) => {
  event.preventDefault();
  refresh();
});

render(page.data);
