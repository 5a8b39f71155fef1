// The run page: lists node executions and grows them live from the run's websocket.
import { liveSocket } from "./live.js";

const data = JSON.parse(document.getElementById("run-data").textContent);
const stepsBody = document.getElementById("steps");
const byIndex = new Map();

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function renderStep(step) {
  if (byIndex.has(step.index)) return;
  const tr = document.createElement("tr");
  tr.dataset.index = step.index;
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
    cell((step.tools_called || []).join(", ") || "—"),
    cell(step.error_message || "", "err"),
  );
  // Keep the list in execution order even when events arrive out of order.
  const later = [...stepsBody.children].find((row) => Number(row.dataset.index) > step.index);
  stepsBody.insertBefore(tr, later || null);
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

// The timeline: Python builds the figure; a growing run refetches it, at most twice a
// second. Clicking a bar selects that step (its row, and #step=N in the URL).
const timeline = document.getElementById("timeline");
const plotConfig = { displayModeBar: false, responsive: true };
Plotly.react(timeline, data.timeline.data, data.timeline.layout, plotConfig);
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
      const figure = await response.json();
      Plotly.react(timeline, figure.data, figure.layout, plotConfig);
    }
  }, 500);
}

function selectStep(index) {
  for (const row of stepsBody.querySelectorAll("tr.selected")) row.classList.remove("selected");
  const row = byIndex.get(index);
  if (!row) return;
  row.classList.add("selected");
  row.scrollIntoView({ block: "nearest" });
  history.replaceState(null, "", `#step=${index}`);
}

data.steps.forEach(renderStep);
data.errors.forEach(renderError);
if (!data.steps.length) document.getElementById("steps-empty").hidden = false;
// The URL follows the selection, so a link opens the same step.
function followHash() {
  const linked = /^#step=(\d+)/.exec(location.hash);
  if (linked) selectStep(Number(linked[1]));
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
