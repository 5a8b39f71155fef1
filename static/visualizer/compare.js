// The compare page: two runs aligned step by step (Python aligned them and found where
// their states diverge: traces/compare.py). This module lists the rows, draws the
// two-lane timeline Python built, and shows one aligned pair's state diff with the run
// page's step panel (steppanel.js), fetched when the row is opened.
import { el } from "./dom.js";
import { ApiError, getJSON } from "./http.js";
import { renderPanel } from "./steppanel.js";

const $ = (id) => document.getElementById(id);
const data = JSON.parse($("compare-data").textContent);
const rows = data.rows;
const divergence = data.divergence;
const body = $("pairs");
const KIND_LABEL = { paired: "aligned", missing: "missing in b", inserted: "inserted" };
let selected = null;
let asked = 0; // the latest pair request: an older answer arriving late is dropped

function signed(n) {
  if (n == null) return "";
  return n > 0 ? `+${n.toLocaleString()}` : n.toLocaleString();
}

function rowElement(row, n) {
  const tr = document.createElement("tr");
  tr.dataset.row = n;
  tr.className = `pair ${row.kind}`;
  if (row.same_state === false) tr.classList.add("differs");
  if (divergence && divergence.row === n) tr.classList.add("diverge");
  const kind = KIND_LABEL[row.kind] + (row.repeated ? " (repeat)" : "");
  const state = row.same_state == null ? "—" : row.same_state ? "same" : "differs";
  const cells = [
    [String(n + 1), "num"],
    [`${row.node} #${row.occurrence}`, null],
    [kind, "kind"],
    [row.a ? `#${row.a.index}` : "", "num"],
    [row.b ? `#${row.b.index}` : "", "num"],
    [signed(row.duration_delta_ms), "num"],
    [signed(row.tokens_delta), "num"],
    [divergence && divergence.row === n ? `diverges (${divergence.at})` : state, "state"],
  ];
  for (const [text, className] of cells) tr.append(el("td", className, text));
  for (const side of ["a", "b"]) if (row[side] && !row[side].success) tr.classList.add(`failed-${side}`);
  return tr;
}

function renderRows() {
  const fragment = document.createDocumentFragment();
  rows.forEach((row, n) => fragment.append(rowElement(row, n)));
  body.replaceChildren(fragment);
}

function pairUrl(row, n) {
  const url = new URL(data.pair_url, location.href);
  const at = divergence && divergence.row === n ? divergence.at : "after";
  const values = { a: data.a.execution_id, b: data.b.execution_id, ai: row.a.index, bi: row.b.index, at };
  for (const [key, value] of Object.entries(values)) url.searchParams.set(key, value);
  return url;
}

function side(step, name) {
  return `run ${name}: #${step.index} ${step.success ? "ok" : "failed"} · ${step.duration_ms} ms · ${step.tokens_used} tokens`;
}

async function select(n, { scroll = true } = {}) {
  if (n < 0 || n >= rows.length) return;
  body.querySelector("tr.selected")?.classList.remove("selected");
  const tr = body.children[n];
  tr.classList.add("selected");
  if (scroll) tr.scrollIntoView({ block: "center" });
  selected = n;
  location.replace(`#row=${n + 1}`);
  const row = rows[n];
  const note = $("pair-note");
  if (row.kind !== "paired") {
    const only = row.a ? data.a : data.b;
    $("step-body").hidden = true;
    $("step-hint").hidden = true;
    note.hidden = false;
    note.textContent = `Row ${n + 1}: ${row.node} #${row.occurrence} ran only in run ${row.a ? "a" : "b"} (step #${(row.a || row.b).index} of ${only.execution_id}); nothing to compare it with.`;
    $("step-title").textContent = `Row ${n + 1} · ${row.node} #${row.occurrence}`;
    return;
  }
  note.hidden = true;
  const mine = ++asked;
  let view;
  try {
    view = await getJSON(pairUrl(row, n));
  } catch (error) {
    if (mine !== asked) return;
    note.hidden = false;
    note.textContent = error instanceof ApiError ? `Could not load this pair: ${error.message}` : String(error);
    return;
  }
  if (mine !== asked) return;
  renderPanel(view);
  $("step-title").textContent = `Row ${n + 1} · ${row.node} #${row.occurrence} · state ${view.at}`;
  $("step-meta").textContent = side(view.step, "a");
  $("pair-meta").textContent = side(view.step_b, "b");
  if (view.has_both_states && !view.changes.length) $("step-no-diff").textContent = "The two runs' states are equal here.";
}

function jump() {
  if (divergence) return select(divergence.row);
}

function nextDiffering() {
  const start = selected == null ? 0 : selected + 1;
  for (let n = start; n < rows.length; n++) if (rows[n].same_state === false) return select(n);
}

// Plotly (1.2 MB) loads once the rows are listed.
function loadPlotly() {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = $("plotly-src").href;
    script.onload = () => resolve(window.Plotly);
    script.onerror = () => reject(new Error("Plotly did not load"));
    document.head.append(script);
  });
}

async function drawTimeline() {
  const Plotly = await loadPlotly();
  const box = $("compare-timeline");
  await Plotly.react(box, data.timeline.data, data.timeline.layout, { displayModeBar: false, responsive: true });
  box.on("plotly_click", (event) => {
    const n = event.points[0]?.customdata;
    if (n != null) select(n);
  });
}

body.addEventListener("click", (event) => {
  const tr = event.target.closest("tr[data-row]");
  if (tr) select(Number(tr.dataset.row), { scroll: false });
});
$("jump-divergence")?.addEventListener("click", jump);
$("step-prev").addEventListener("click", () => select((selected ?? 0) - 1));
$("step-next").addEventListener("click", () => select((selected ?? -1) + 1));
const help = $("keys-help");
$("keys-help-button").addEventListener("click", () => help.showModal());
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.metaKey || event.ctrlKey || event.altKey) return;
  const actions = {
    d: jump, n: nextDiffering, j: () => select((selected ?? -1) + 1), ArrowDown: () => select((selected ?? -1) + 1),
    k: () => select((selected ?? 0) - 1), ArrowUp: () => select((selected ?? 0) - 1), "?": () => help.showModal(),
  };
  const action = actions[event.key];
  if (action) { event.preventDefault(); action(); }
});

renderRows();
// A link to a row opens it; otherwise the page opens at the divergence.
const linked = /^#row=(\d+)$/.exec(location.hash);
const first = linked ? select(Number(linked[1]) - 1) : jump();
Promise.all([first, drawTimeline()]).then(() => {
  performance.mark("dashflow:ready");
  document.body.dataset.ready = "true";
});
