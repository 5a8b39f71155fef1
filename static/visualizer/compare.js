// The compare page: two runs aligned step by step (Python aligned them and found where
// their states diverge: traces/compare.py). This module lists the rows, draws the
// two-lane timeline Python built, and shows one aligned pair's state diff with the run
// page's step panel (steppanel.js), fetched when the row is opened. Two long runs align
// into 10,000+ rows: the page data lists them as columns and the list is the run page's
// virtualized one (steplist.js), so only the rows in view are in the DOM.
import { el } from "./dom.js";
import { ApiError, fill, getExactJSON } from "./http.js";
import { StepList } from "./steplist.js";
import { renderPanel } from "./steppanel.js";
import { number } from "./format.js";
import { onThemeChange, themed } from "./theme.js";

const $ = (id) => document.getElementById(id);
const data = JSON.parse($("compare-data").textContent);
const divergence = data.divergence;
const KIND_LABEL = { paired: "aligned", missing: "missing in b", inserted: "inserted" };
let selected = null;
let asked = 0; // the latest pair request: an older answer arriving late is dropped

// The page data's columns as rows; `index` is the row's place in the alignment, which
// StepList keys rows by.
const rows = data.rows.kind.map((kind, n) => {
  const row = { index: n };
  for (const [field, values] of Object.entries(data.rows)) row[field] = values[n];
  return row;
});

function signed(n) {
  if (n == null) return "";
  return n > 0 ? `+${number(n)}` : number(n);
}

class PairList extends StepList {
  row(row) {
    const n = row.index;
    const tr = document.createElement("tr");
    tr.dataset.index = n;
    tr.dataset.row = n;
    tr.className = `pair ${row.kind}`;
    if (row.same_state === false) tr.classList.add("differs");
    if (divergence && divergence.row === n) tr.classList.add("diverge");
    if (n === this.selected) tr.classList.add("selected");
    const kind = KIND_LABEL[row.kind] + (row.repeated ? " (repeat)" : "");
    const state = row.same_state == null ? "—" : row.same_state ? "same" : "differs";
    const cells = [
      [String(n + 1), "num"],
      [`${row.node} #${row.occurrence}`, "node-name"],
      [kind, "kind"],
      [row.a != null ? `#${row.a}` : "", "num"],
      [row.b != null ? `#${row.b}` : "", "num"],
      [signed(row.duration_delta_ms), "num"],
      [signed(row.tokens_delta), "num"],
      [divergence && divergence.row === n ? `diverges (${divergence.at})` : state, "state"],
    ];
    for (const [text, className] of cells) tr.append(el("td", className, text));
    // A long node name or kind is cut to its column.
    for (const at of [1, 2]) tr.children[at].title = cells[at][0];
    for (const side of ["a", "b"]) if (row[`${side}_ok`] === false) tr.classList.add(`failed-${side}`);
    return tr;
  }

  countText() {
    return `${number(this.steps.length)} row${this.steps.length === 1 ? "" : "s"}`;
  }
}

const list = new PairList({
  scroller: $("pairs-scroll"),
  table: $("pairs-table"),
  above: $("pairs-above"),
  body: $("pairs"),
  below: $("pairs-below"),
  count: $("pairs-count"),
  onPick: (n) => select(n, { scroll: false }),
});

function pairUrl(row) {
  const url = new URL(data.pair_url, location.href);
  const at = divergence && divergence.row === row.index ? divergence.at : "after";
  const values = { a: data.a.execution_id, b: data.b.execution_id, ai: row.a, bi: row.b, at };
  for (const [key, value] of Object.entries(values)) url.searchParams.set(key, value);
  return url;
}

function side(step, name) {
  return `run ${name}: #${step.index} ${step.success ? "ok" : "failed"} · ${step.duration_ms} ms · ${step.tokens_used} tokens`;
}

// A row that ran in one run only: a note, and a link to the step on that run's page.
function showAlone(row) {
  const name = row.a != null ? "a" : "b";
  const index = row[name];
  const link = el("a", "pair-step-link", `step #${index} of ${data[name].execution_id}`);
  link.href = fill(data.step_link[name], { index });
  $("step-body").hidden = true;
  $("step-hint").hidden = true;
  const note = $("pair-note");
  note.hidden = false;
  note.replaceChildren(
    `Row ${row.index + 1}: ${row.node} #${row.occurrence} ran only in run ${name} (`,
    link,
    "); nothing to compare it with.",
  );
}

// The list scrolls itself to the selected row; the window follows when the row is not
// wholly on screen, and centres it there.
function reveal() {
  const tr = list.body.querySelector("tr.selected");
  const box = tr?.getBoundingClientRect();
  if (box && (box.top < 0 || box.bottom > window.innerHeight)) tr.scrollIntoView({ block: "center" });
}

async function select(n, { scroll = true } = {}) {
  if (n < 0 || n >= rows.length) return;
  selected = n;
  list.select(n);
  if (scroll) reveal();
  location.replace(`#row=${n + 1}`);
  const row = rows[n];
  const note = $("pair-note");
  if (row.kind !== "paired") {
    ++asked; // a pair's answer still on its way is not shown over this row
    $("step-title").textContent = `Row ${n + 1} · ${row.node} #${row.occurrence}`;
    showAlone(row);
    return;
  }
  note.hidden = true;
  const mine = ++asked;
  let view;
  try {
    view = await getExactJSON(pairUrl(row));
  } catch (error) {
    if (mine !== asked) return;
    note.hidden = false;
    note.textContent = error instanceof ApiError ? `Could not load this pair: ${error.message}` : String(error);
    return;
  }
  if (mine !== asked) return;
  renderPanel(view, { labels: { before: "Run a", after: "Run b" } });
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
  const draw = () => Plotly.react(box, ...themed(data.timeline.data, data.timeline.layout), { displayModeBar: false, responsive: true });
  await draw();
  onThemeChange(draw);
  box.on("plotly_click", (event) => {
    const n = event.points[0]?.customdata;
    if (n != null) select(n);
  });
}

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

for (const row of rows) list.add(row);
list.render();
// A link to a row opens it; otherwise the page opens at the divergence.
const linked = /^#row=(\d+)$/.exec(location.hash);
const first = linked ? select(Number(linked[1]) - 1) : jump();
Promise.all([first, drawTimeline()]).then(() => {
  performance.mark("dashflow:ready");
  document.body.dataset.ready = "true";
});
