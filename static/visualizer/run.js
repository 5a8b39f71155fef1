// The run page: timeline, breakdown and graph (Python builds the figures), the list of node
// executions, the step panel, watch-a-path, the keyboard, and live growth over the run's
// websocket.
//
// Order matters for time to interactive: this module lists the steps and asks for the
// first one before Plotly (1.5 MB, preloaded by the template) is parsed; the timeline is
// drawn as soon as Plotly is ready, the breakdown and graph after that. The page marks
// `dashflow:ready` (timeline drawn and first step shown; body[data-ready]) and
// `dashflow:charts` (everything drawn; body[data-charts]) for benchmarks/ui.py and tests.
import { coalesce, liveSocket } from "./live.js";
import { copyText, el } from "./dom.js";
import { runCharts } from "./runcharts.js";
import { fill, getExactJSON, getJSON, getText } from "./http.js";
import { StepList } from "./steplist.js";
import { renderPanel } from "./steppanel.js";
import { duration, number } from "./format.js";

const $ = (id) => document.getElementById(id);
const data = JSON.parse($("run-data").textContent);

const plotly = new Promise((resolve, reject) => {
  const script = document.createElement("script");
  script.src = $("plotly-src").href;
  script.onload = () => { performance.mark("dashflow:plotly"); resolve(window.Plotly); };
  script.onerror = () => reject(new Error("Plotly did not load"));
  document.head.append(script);
});

function fetchStep(index) {
  return getExactJSON(fill(data.step_url, { index })).catch(() => null);
}

// The step a run opens on without a link, the rule links to it follow too
// (traces/error_steps.py failing_steps): a failed run's first error's step when the
// producer named it, else its first failed step; any other run's first step.
function openingStep() {
  const { index, success } = data.steps;
  const named = data.errors[0]?.execution_index;
  if (named != null && index.includes(named)) return named;
  const failed = success.indexOf(false);
  if (failed >= 0) return index[failed];
  return data.errors.find((e) => e.step_index != null)?.step_index ?? index[0];
}

// The step the page opens on (the link's, else the opening one) is asked for before the
// list is built, so the server works on it while this module and Plotly run.
let prefetched = null;
{
  const linked = new URLSearchParams(location.hash.slice(1)).get("step");
  const first = linked != null && data.steps.index.includes(Number(linked)) ? Number(linked) : openingStep();
  if (first != null) prefetched = { index: first, view: fetchStep(first) };
}

const list = new StepList({
  scroller: $("steps-scroll"),
  table: $("steps-table"),
  above: $("steps-above"),
  body: $("steps"),
  below: $("steps-below"),
  count: $("steps-count"),
  onPick: (index) => selectStep(index),
});

// The page data lists the steps as columns (one array per field): rows again here.
function addColumns(columns) {
  const fields = Object.keys(columns);
  const n = columns.index.length;
  for (let i = 0; i < n; i++) {
    const step = {};
    for (const f of fields) step[f] = columns[f][i];
    list.add(step);
  }
}

// ---- Selection: the step panel, the URL and the "dashflow:step" event follow it.

let selected = null;
let watched = null;
let live = data.run.status === "running"; // "● live", "follow" and awaited steps only while it runs

function setHash() {
  const parts = [];
  if (selected != null) parts.push(`step=${selected}`);
  if (watched) parts.push(`path=${encodeURIComponent(watched).replace(/%2F/g, "/")}`);
  const hash = parts.length ? `#${parts.join("&")}` : "";
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname + location.search);
}

// Other panels (the review panel) follow the selection through this event.
// The last selection also stays on <html data-selection>, for a panel that loads later.
function announce() {
  const step = selected == null ? null : list.byIndex.get(selected);
  const detail = { index: selected, position: step ? step.position : null, path: watched };
  document.documentElement.dataset.selection = JSON.stringify(detail);
  document.dispatchEvent(new CustomEvent("dashflow:step", { detail }));
}

let loading = 0;
let firstShown = null;
const stepShown = new Promise((resolve) => { firstShown = resolve; });

async function loadStep(index) {
  const ticket = ++loading;
  let view;
  if (prefetched?.index === index) {
    view = await prefetched.view;
    prefetched = null;
  } else view = await fetchStep(index);
  if (ticket !== loading || !view) return;
  // A new step is read from its top: the panel scrolls, never the page.
  if (view.step.index !== shownIndex) $("step-panel").scrollTop = 0;
  shownIndex = view.step.index;
  renderPanel(view, { onWatch: watch });
  firstShown();
}

let shownIndex = null;

// A link to a step the run does not have says so (the page shows its opening step); on a
// run still running the step may be yet to come, and is opened when it arrives.
let awaited = null;
function missingStep(index) {
  const notice = $("step-missing");
  const last = list.steps[list.steps.length - 1];
  const range = last ? ` (it has ${number(list.steps.length)}: #${list.steps[0].index}–#${last.index})` : "";
  awaited = live ? index : null;
  notice.textContent = awaited != null
    ? `Step #${index} has not run yet: it opens when it finishes.`
    : `This run has no step #${index}${range}.`;
  notice.hidden = false;
}

// `quiet`: the page's own default selection, which leaves the URL as it was.
function selectStep(index, { quiet = false } = {}) {
  if (!list.byIndex.has(index)) return;
  if (!quiet) { $("step-missing").hidden = true; awaited = null; }
  selected = index;
  list.select(index);
  charts.mark();
  if (!quiet) setHash();
  announce();
  loadStep(index);
}

// ---- Watch a path: the steps that wrote it, with the value each left.

const WATCH_LIST_MAX = 300;

async function watch(pointer) {
  watched = pointer;
  $("watch-path").value = pointer;
  setHash();
  announce();
  const result = $("watch-result");
  const changes = $("watch-changes");
  // A long run's states are all read for this: say so while it happens.
  result.hidden = false;
  result.textContent = `Reading ${pointer || "(whole state)"} through ${number(list.steps.length)} steps…`;
  let view = null;
  let failure = null;
  try {
    view = await getJSON(`${data.watch_url}?path=${encodeURIComponent(pointer)}`);
  } catch (error) {
    failure = error;
  }
  if (pointer !== watched) return;
  changes.replaceChildren();
  result.hidden = false;
  if (failure) { result.textContent = failure.message; return; }
  const label = pointer || "(whole state)";
  if (!view.changes.length) {
    result.textContent = `${label}: no step changed it.`;
    return;
  }
  const first = view.changes[0], last = view.changes[view.changes.length - 1];
  result.textContent = `${label}: first written by #${first.index} ${first.node}, ` +
    `last by #${last.index} ${last.node} (${view.changes.length} of ${view.steps_seen} steps changed it).`;
  const items = view.changes.slice(0, WATCH_LIST_MAX).map((change) => {
    const link = el("a", null, `#${change.index} ${change.node}`);
    link.href = `#step=${change.index}`;
    link.addEventListener("click", (event) => { event.preventDefault(); selectStep(change.index); });
    return el("li", null, null, link, el("span", "val new", change.found ? ` → ${change.value.text}` : " → (removed)"));
  });
  if (view.changes.length > WATCH_LIST_MAX) {
    items.push(el("li", "muted", `… and ${number(view.changes.length - WATCH_LIST_MAX)} more (the last: #${last.index} ${last.node})`));
  }
  changes.replaceChildren(...items);
}

$("watch-form").addEventListener("submit", (event) => {
  event.preventDefault();
  watch($("watch-path").value.trim());
});

// ---- Charts (runcharts.js). A growing run refetches them at most twice a second.

const charts = runCharts({
  plotly,
  timelineUrl: data.timeline_url,
  selected: () => selected,
  // Where a step sits when the timeline has no bar of its own for it (aggregated).
  offsetSpan(index) {
    const step = list.byIndex.get(index);
    return step?.offset == null ? null : [step.offset, step.offset + Math.max(step.duration_ms, 1)];
  },
  onPick: (index) => selectStep(index),
  onNode: (node) => filterSteps(`node:${node}`),
  onEdge: (from, to) => filterSteps(`edge:${from}>${to}`),
});

// ---- Errors: each opens the step the server says it belongs to (step_index). A run with
// many shows the first few and a button. A live error refetches the list (errors.json).

const ERRORS_SHOWN = 12;

function errorItem(error, at) {
  const index = error.step_index;
  const target = index == null ? el("span", "error-where", error.node) : el("a", "error-where", `#${index} ${error.node}`);
  if (index != null) {
    target.href = `#step=${index}`;
    target.addEventListener("click", (event) => { event.preventDefault(); selectStep(index); });
  }
  const li = el("li", null, null, el("strong", null, error.error_type || "Error"), target, el("span", "error-message", error.message));
  li.hidden = at >= ERRORS_SHOWN && !$("errors").dataset.all;
  return li;
}

function renderErrors(errors) {
  $("errors").replaceChildren(...errors.map(errorItem));
  if (errors.length) $("errors-card").hidden = false;
  // The card shows two rows and scrolls: with more, the count says how many there are.
  $("errors-count").textContent = errors.length > 2 ? number(errors.length) : "";
  const more = $("errors-more");
  more.hidden = !$("errors").querySelector("li[hidden]");
  more.textContent = `show all ${number(errors.length)} errors`;
}

const refreshErrors = coalesce(300, async () => {
  const answer = await getJSON(data.errors_url).catch(() => null);
  if (answer) renderErrors(answer.errors); // else the run's next error asks again
});

$("errors-more").addEventListener("click", (event) => {
  $("errors").dataset.all = "true";
  for (const li of $("errors").children) li.hidden = false;
  event.currentTarget.hidden = true;
});

// ---- Header and live events.

function setDuration(ms) {
  $("stat-duration").textContent = duration(ms);
  $("stat-duration").title = `${number(ms)} ms`;
}
function setTokens(n) { $("stat-tokens").textContent = number(n); }

// While the run is live its duration is the time since it started, ticking each second,
// until run_finished gives the total (a stale run, silent too long, does not tick).
let ticker = null;
function tick() {
  const started = Date.parse(data.run.started_at);
  if (Number.isNaN(started)) return;
  setDuration(Math.max(0, Date.now() - started));
  $("stat-duration").title += " so far";
}
function stopTicking() {
  clearInterval(ticker);
  ticker = null;
}

function setStatus(status) {
  const badge = $("run-status");
  badge.className = `badge ${status}`;
  badge.textContent = status.charAt(0).toUpperCase() + status.slice(1);
}

const indicator = $("live-indicator");
$("follow-label").hidden = !live;
let tokens = data.run.total_tokens;
let errors = data.run.error_count;

function onEvent(event) {
  const running = $("run-running");
  const d = event.data;
  if (event.type === "node_started") {
    running.hidden = false;
    running.textContent = `running: ${d.node} (#${d.index})`;
    charts.refresh();
  } else if (event.type === "node_finished") {
    running.hidden = true;
    const added = list.add({
      index: d.index, position: d.index, node: d.node, duration_ms: d.duration_ms ?? 0,
      tokens_used: d.tokens_used ?? 0, success: d.success ?? true,
      error_message: d.error_message ?? null, tools_called: d.tools_called ?? [],
    });
    if (!added) return;
    $("steps-empty").hidden = true;
    charts.refresh();
    tokens += d.tokens_used ?? 0;
    $("stat-nodes").textContent = number(list.steps.length);
    setTokens(tokens);
    if (d.success === false) setStatus("failed");
    if (d.index === awaited) selectStep(d.index);
    else if (selected == null) selectStep(d.index, { quiet: true });
    else if ($("follow").checked) selectStep(d.index, { quiet: true });
  } else if (event.type === "error") {
    refreshErrors();
    errors += 1;
    $("stat-errors").textContent = String(errors);
    setStatus("failed");
  } else if (event.type === "run_finished") {
    running.hidden = true;
    stopTicking();
    if (d.total_duration_ms != null) setDuration(d.total_duration_ms);
    if (d.total_tokens != null) setTokens(d.total_tokens);
    if ($("run-status").textContent !== "Failed") setStatus(d.completed ? "completed" : "failed");
    live = false;  // "● live" only while the run runs
    indicator.hidden = true;
    $("follow-label").hidden = true;
    if (awaited != null) missingStep(awaited); // it will not come now
    charts.refresh();
  }
}

// ---- Steps or charts: one pane, two tabs. A chart drawn while hidden is sized again
// when shown. A node (a bar, a graph node) lists its steps, an edge its transitions,
// through the list's search.

const tabs = { steps: [$("tab-steps"), $("steps-view")], charts: [$("tab-charts"), $("charts-view")] };
function showTab(name) {
  for (const [key, [tab, view]] of Object.entries(tabs)) {
    tab.setAttribute("aria-selected", String(key === name));
    view.hidden = key !== name;
  }
  if (name === "charts" && window.Plotly) {
    for (const id of ["breakdown", "graph"]) if ($(id).layout) Plotly.Plots.resize($(id));
  }
  // Hidden, the list had no height to scroll the selection into: it does now.
  if (name === "steps") {
    if (selected != null) list.select(selected); else list.render();
  }
}
$("tab-steps").addEventListener("click", () => showTab("steps"));
$("tab-charts").addEventListener("click", () => showTab("charts"));

function filterSteps(needle) {
  search.value = needle;
  list.search(needle);
  showTab("steps");
  if (list.shown.length && (selected == null || list.positionOf(selected) == null)) {
    selectStep(list.shown[0].index);
  } else if (selected != null) list.select(selected);
}

// ---- Keys and buttons.

const help = $("keys-help");
const search = $("step-filter");
function move(delta) {
  const index = list.step(delta);
  if (index != null) selectStep(index);
}
function nextError() {
  const index = list.nextFailed();
  if (index != null) selectStep(index);
}
$("step-prev").addEventListener("click", () => move(-1));
$("step-next").addEventListener("click", () => move(1));
$("keys-help-button").addEventListener("click", () => help.showModal());
// A copy button: `text()` gives what to copy; the button says how it went, then its label.
function copyButton(button, text) {
  const label = button.textContent;
  button.addEventListener("click", async () => {
    let said;
    try {
      said = (await copyText(await text(), button)) ? "Copied" : "Selected: press Ctrl+C";
    } catch (error) {
      said = `Copy failed${error.message ? `: ${error.message}` : ""}`;
    }
    button.textContent = said;
    setTimeout(() => { button.textContent = label; }, 1500);
  });
}
// The link names what is open and nothing empty: no "?" without a query, no "#" without a
// step, no "path=" without a watched path.
copyButton($("step-copy"), () => { setHash(); return location.origin + location.pathname + location.search + location.hash; });
// The run as Markdown (Python writes it: traces/run_markdown.py), with the open step's diff.
copyButton($("run-copy-md"), () => getText(data.markdown_url));
copyButton($("step-copy-md"), () =>
  getText(selected == null ? data.markdown_url : fill(data.step_markdown_url, { index: selected })));
search.addEventListener("input", () => list.search(search.value));
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.metaKey || event.ctrlKey || event.altKey) {
    if (event.key === "Escape") event.target.blur?.();
    return;
  }
  const actions = {
    j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
    e: nextError, "/": () => search.focus(), "?": () => help.showModal(),
  };
  const action = actions[event.key];
  if (action) { event.preventDefault(); action(); }
});

// ---- Start: the list, the first step, then the charts.

addColumns(data.steps);
setDuration(data.run.duration_ms);
if (data.run.status === "running" && !data.run.stale && data.run.started_at) {
  tick();
  ticker = setInterval(tick, 1000);
}
setTokens(data.run.total_tokens);
$("stat-nodes").textContent = number(data.run.node_count);
renderErrors(data.errors);
if (!list.steps.length) $("steps-empty").hidden = false;
list.render();

// The URL follows the selection, so a link opens the same view; without one the first
// step is shown.
function followHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const path = params.get("path");
  if (path != null && path !== watched) watch(path);
  const step = params.get("step");
  if (step == null || Number(step) === selected) return;
  if (/^\d+$/.test(step) && list.byIndex.has(Number(step))) selectStep(Number(step));
  else if (/^\d+$/.test(step)) missingStep(Number(step));
  else {
    $("step-missing").textContent = `"${step}" is not a step number.`;
    $("step-missing").hidden = false;
  }
}
window.addEventListener("hashchange", followHash);
followHash();
if (selected == null && list.steps.length) selectStep(openingStep(), { quiet: true });
else if (selected == null) firstShown();

Promise.all([charts.start(data), stepShown]).then(async () => {
  performance.mark("dashflow:ready");
  document.body.dataset.ready = "true";
  await charts.drawCharts();
  performance.mark("dashflow:charts");
  document.body.dataset.charts = "true";
});

// While the run is live the page asks, every live_check_ms, whether it missed events
// (live.js): the server sends what the database has beyond what it sent.
const socket = liveSocket(data.ws_path, {
  after: data.after,
  checkEvery: data.live_check_ms,
  onEvent,
  onMessage(message) {
    if (message.type === "resync" || message.type === "run_updated") location.reload();
  },
  onState(state, code) {
    indicator.hidden = state !== "open" || !live;
    // Closed as too far behind without a resync message (the server's cap on bytes it
    // holds unsent for a socket, past which it closes with no message first).
    if (code === 4409) location.reload();
  },
  onCheck() { if (live) socket.send({ type: "sync" }); },
});
