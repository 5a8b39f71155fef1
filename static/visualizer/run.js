// The run page: lists node executions and grows them live from the run's websocket.
import { liveSocket } from "./live.js";
import { cell } from "./dom.js";

const data = JSON.parse(document.getElementById("run-data").textContent);
const stepsBody = document.getElementById("steps");
const byIndex = new Map();
let lastIndex = -1;


function renderStep(step) {
  if (byIndex.has(step.index)) return;
  const tr = document.createElement("tr");
  tr.dataset.index = step.index;
  tr.dataset.success = String(step.success);
  const badge = document.createElement("span");
  badge.className = `badge ${step.success ? "completed" : "failed"}`;
  badge.textContent = step.success ? "ok" : "failed";
  const outcome = document.createElement("td");
  outcome.append(badge);
  tr.append(
    cell(String(step.index), "num"),
    cell(step.node, "node-name"),
    outcome,
    cell(`${step.duration_ms} ms`, "num"),
    cell(String(step.tokens_used), "num"),
    cell(step.error_message || "", "err"),
  );
  // Keep the list in execution order even when events arrive out of order (rare: the
  // common case appends, so a long run renders in linear time).
  if (step.index > lastIndex) {
    stepsBody.append(tr);
    lastIndex = step.index;
  } else {
    const later = [...stepsBody.children].find((row) => Number(row.dataset.index) > step.index);
    stepsBody.insertBefore(tr, later || null);
  }
  byIndex.set(step.index, tr);
  document.getElementById("steps-empty").hidden = true;
}

function renderError(error) {
  const li = document.createElement("li");
  const type = document.createElement("strong");
  type.textContent = error.error_type || "Error";
  const where = document.createElement("span");
  where.className = "muted";
  where.textContent = ` in ${error.node}: `;
  li.append(type, where, document.createTextNode(error.message));
  document.getElementById("errors").append(li);
  document.getElementById("errors-empty").hidden = true;
}

function setStatus(status) {
  const badge = document.getElementById("run-status");
  badge.className = `badge ${status}`;
  badge.textContent = status.charAt(0).toUpperCase() + status.slice(1);
}

function setStat(id, text) {
  document.getElementById(id).textContent = text;
}

let tokens = data.run.total_tokens;
let errors = data.run.error_count;

function onEvent(event) {
  const running = document.getElementById("run-running");
  const d = event.data;
  if (event.type === "node_started") {
    running.hidden = false;
    running.textContent = `running: ${d.node} (#${d.index})`;
  } else if (event.type === "node_finished") {
    running.hidden = true;
    renderStep(d);
    refreshTimeline();
    tokens += d.tokens_used;
    setStat("stat-nodes", String(byIndex.size));
    setStat("stat-tokens", String(tokens));
    if (!d.success) setStatus("failed");
  } else if (event.type === "error") {
    renderError(d);
    errors += 1;
    setStat("stat-errors", String(errors));
    setStatus("failed");
  } else if (event.type === "run_finished") {
    running.hidden = true;
    if (d.total_duration_ms != null) setStat("stat-duration", `${d.total_duration_ms} ms`);
    if (d.total_tokens != null) setStat("stat-tokens", String(d.total_tokens));
    if (document.getElementById("run-status").textContent !== "Failed") {
      setStatus(d.completed ? "completed" : "failed");
    }
  }
}

// The timeline, breakdown and graph: Python builds the figures; a growing run refetches
// them, at most twice a second. Clicking a timeline bar selects that step (its row, and
// #step=N in the URL).
const timeline = document.getElementById("timeline");
const charts = {
  timeline,
  breakdown: document.getElementById("breakdown"),
  graph: document.getElementById("graph"),
};
const plotConfig = { displayModeBar: false, responsive: true };
function drawCharts(figures) {
  for (const [key, div] of Object.entries(charts)) {
    Plotly.react(div, figures[key].data, figures[key].layout, plotConfig);
  }
}
drawCharts(data);
timeline.on("plotly_click", (event) => {
  const index = event.points?.[0]?.customdata;
  if (index != null) selectStep(index);
});
let refresh = null;
function refreshTimeline() {
  if (refresh) return;
  refresh = setTimeout(async () => {
    refresh = null;
    const response = await fetch(data.timeline_url, { headers: { Accept: "application/json" } });
    if (response.ok) {
      drawCharts(await response.json());
    }
  }, 500);
}

let selected = null;

// Watch a path: which steps wrote it, with the value each left.
let watched = null;
async function watch(pointer) {
  watched = pointer;
  document.getElementById("watch-path").value = pointer;
  setHash();
  const response = await fetch(`${data.watch_url}?path=${encodeURIComponent(pointer)}`);
  const result = document.getElementById("watch-result");
  const list = document.getElementById("watch-changes");
  list.replaceChildren();
  result.hidden = false;
  const view = await response.json();
  if (!response.ok) { result.textContent = view.detail; return; }
  if (!view.changes.length) {
    result.textContent = `${pointer || "(whole state)"}: no step changed it.`;
    return;
  }
  const first = view.changes[0], last = view.changes[view.changes.length - 1];
  result.textContent = `${pointer || "(whole state)"}: first written by #${first.index} ${first.node}, ` +
    `last by #${last.index} ${last.node} (${view.changes.length} of ${view.steps_seen} steps changed it).`;
  for (const change of view.changes) {
    const li = document.createElement("li");
    const link = document.createElement("a");
    link.href = `#step=${change.index}`;
    link.textContent = `#${change.index} ${change.node}`;
    link.addEventListener("click", (event) => { event.preventDefault(); selectStep(change.index); });
    const value = document.createElement("span");
    value.className = "val new";
    value.textContent = change.found ? ` → ${change.value.text}` : " → (removed)";
    li.append(link, value);
    list.append(li);
  }
}
document.getElementById("watch-form").addEventListener("submit", (event) => {
  event.preventDefault();
  watch(document.getElementById("watch-path").value.trim());
});

function setHash() {
  const parts = [];
  if (selected != null) parts.push(`step=${selected}`);
  if (watched != null) parts.push(`path=${encodeURIComponent(watched).replace(/%2F/g, "/")}`);
  const hash = parts.length ? `#${parts.join("&")}` : "";
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname);
}

function selectStep(index) {
  for (const row of stepsBody.querySelectorAll("tr.selected")) row.classList.remove("selected");
  const row = byIndex.get(index);
  if (!row) return;
  selected = index;
  row.classList.add("selected");
  row.scrollIntoView({ block: "nearest" });
  setHash();
  loadStep(index);
}

// The step panel: Python computed the diff; this only places it.
let loading = 0;
async function loadStep(index) {
  const ticket = ++loading;
  const response = await fetch(`${data.step_url}${index}.json`, { headers: { Accept: "application/json" } });
  if (ticket !== loading || !response.ok) return;
  renderPanel(await response.json());
}

function valueCell(collapsed, className) {
  const td = document.createElement("td");
  if (collapsed) {
    const span = document.createElement("span");
    span.className = `val ${className}`;
    span.textContent = collapsed.text;
    if (collapsed.truncated) span.title = `${collapsed.length} characters; the state below has all of it`;
    td.append(span);
  }
  return td;
}

function showState(pre, view) {
  if (!view.present) pre.textContent = "(no state recorded)";
  else if (view.too_large) pre.textContent = `(${view.bytes} bytes: too large to show here; download the step below)`;
  else pre.textContent = view.text;
}

function renderPanel(view) {
  const step = view.step;
  document.getElementById("step-hint").hidden = true;
  document.getElementById("step-body").hidden = false;
  document.getElementById("step-title").textContent = `Step #${step.index} · ${step.node}`;
  document.getElementById("step-meta").textContent =
    `${step.success ? "ok" : "failed"} · ${step.duration_ms} ms · ${step.tokens_used} tokens` +
    (step.tools_called.length ? ` · tools: ${step.tools_called.join(", ")}` : "") +
    (step.error_message ? ` · error: ${step.error_message}` : "");
  const s = view.summary;
  document.getElementById("step-summary").textContent = view.has_both_states
    ? `${s.total} · +${s.add} ~${s.replace} −${s.remove}` + (s.keys.length ? ` · keys: ${s.keys.join(", ")}` : "")
    : "";
  const body = document.getElementById("step-diff");
  body.replaceChildren();
  for (const change of view.changes) {
    const tr = document.createElement("tr");
    tr.dataset.path = change.path;
    const op = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = `op ${change.op}`;
    badge.textContent = change.op;
    op.append(badge);
    const path = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = change.path || "(whole state)";
    path.append(code);
    const pin = document.createElement("td");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "nav pin";
    button.textContent = "watch";
    button.title = "Watch this path through the run";
    button.addEventListener("click", () => watch(change.path));
    pin.append(button);
    tr.append(op, path, valueCell(change.before, "old"), valueCell(change.after, "new"), pin);
    body.append(tr);
  }
  const none = document.getElementById("step-no-diff");
  none.hidden = view.changes.length > 0;
  if (view.has_both_states) none.textContent = "This step changed nothing in the state.";
  else if (view.state_before.present) none.textContent = "No state after: the node ended without writing one.";
  else none.textContent = "No states were recorded for this step.";
  showState(document.getElementById("state-before"), view.state_before);
  showState(document.getElementById("state-after"), view.state_after);
  document.getElementById("step-download").href = view.download_url;
}

function visibleIndices() {
  return [...stepsBody.children].filter((row) => !row.hidden).map((row) => Number(row.dataset.index));
}

function move(delta) {
  const order = visibleIndices();
  if (!order.length) return;
  const at = order.indexOf(selected);
  const next = at < 0 ? (delta > 0 ? 0 : order.length - 1) : Math.min(Math.max(at + delta, 0), order.length - 1);
  selectStep(order[next]);
}

function nextError() {
  const order = visibleIndices();
  const failed = order.filter((i) => byIndex.get(i)?.dataset.success === "false");
  if (!failed.length) return;
  selectStep(failed.find((i) => selected == null || i > selected) ?? failed[0]);
}

stepsBody.addEventListener("click", (event) => {
  const row = event.target.closest("tr");
  if (row) selectStep(Number(row.dataset.index));
});
document.getElementById("step-prev").addEventListener("click", () => move(-1));
document.getElementById("step-next").addEventListener("click", () => move(1));
const help = document.getElementById("keys-help");
document.getElementById("keys-help-button").addEventListener("click", () => help.showModal());
const filter = document.getElementById("step-filter");
filter.addEventListener("input", () => {
  const needle = filter.value.trim().toLowerCase();
  for (const row of stepsBody.children) row.hidden = needle !== "" && !row.textContent.toLowerCase().includes(needle);
});

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.metaKey || event.ctrlKey || event.altKey) {
    if (event.key === "Escape") event.target.blur?.();
    return;
  }
  const actions = {
    j: () => move(1), ArrowDown: () => move(1), k: () => move(-1), ArrowUp: () => move(-1),
    e: nextError, "/": () => filter.focus(), "?": () => help.showModal(),
  };
  const action = actions[event.key];
  if (action) { event.preventDefault(); action(); }
});

data.steps.forEach(renderStep);
data.errors.forEach(renderError);
if (!data.steps.length) document.getElementById("steps-empty").hidden = false;
// The URL follows the selection, so a link opens the same step.
function followHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const path = params.get("path");
  if (path != null && path !== watched) watch(path);
  const step = params.get("step");
  if (step != null && /^\d+$/.test(step) && Number(step) !== selected) selectStep(Number(step));
}
window.addEventListener("hashchange", followHash);
followHash();

const indicator = document.getElementById("live-indicator");
liveSocket(data.ws_path, {
  after: data.after,
  onEvent,
  onMessage(message) {
    if (message.type === "resync" || message.type === "run_updated") location.reload();
  },
  onState(state) { indicator.hidden = state !== "open"; },
});
