// The run list, live. Rows on the page update in place from the project's websocket.
// Which new runs belong on the page is the server's call (the filters are the server's):
// when a run we have not seen changes, the script asks the API for the newest runs under
// the page's filters. On the first page in the default order (newest first) the new ones
// go on top, in the API's order; on any other page or order, inserting would break
// the order, so a notice counts them ("3 new runs — Refresh"). "Follow live" off holds
// everything until it is turned on again. Rows are built with textContent only: every
// string comes from a trace.
import { liveSocket } from "./live.js";
import { cell } from "./dom.js";

const data = JSON.parse(document.getElementById("runs-data").textContent);
const rows = document.getElementById("run-rows");
const follow = document.getElementById("follow");
const notice = document.getElementById("new-runs");
const noticeText = document.getElementById("new-runs-text");
const form = document.getElementById("run-filters");
const pending = [];
// Runs this page knows: its rows, and on other pages the newest runs when it opened.
const known = new Set([...rows.querySelectorAll("tr[data-execution-id]")].map((tr) => tr.dataset.executionId));
const fresh = new Set();
let baseline = data.is_head;
let checkTimer = null;

function rowOf(id) {
  return rows.querySelector(`tr[data-execution-id="${CSS.escape(id)}"]`);
}

function statusBadge(run) {
  const span = document.createElement("span");
  const status = run.stale ? "stale" : run.status;
  span.className = `badge ${run.status}${run.stale ? " stale" : ""}`;
  span.textContent = status.charAt(0).toUpperCase() + status.slice(1);
  return span;
}

function buildRow(run) {
  const tr = document.createElement("tr");
  tr.dataset.executionId = run.execution_id;
  const status = cell("");
  status.dataset.col = "status";
  const link = document.createElement("a");
  link.href = `/projects/${data.project}/runs/${encodeURIComponent(run.execution_id)}/`;
  const code = document.createElement("code");
  code.textContent = run.execution_id.length > 14 ? `${run.execution_id.slice(0, 13)}…` : run.execution_id;
  code.title = run.execution_id;
  link.append(code);
  const exec = document.createElement("td");
  exec.append(link);
  const started = cell(run.started_at ? run.started_at.replace("T", " ").slice(0, 19) : "—");
  tr.append(status, cell(run.graph_name || "—"), exec, cell(run.thread_id || "—"), started);
  for (const col of ["duration", "tokens", "nodes", "errors"]) {
    const td = cell("", "num");
    td.dataset.col = col;
    tr.append(td);
  }
  return tr;
}

function update(tr, run) {
  tr.querySelector('[data-col="status"]').replaceChildren(statusBadge(run));
  tr.querySelector('[data-col="duration"]').textContent = `${run.duration_ms} ms`;
  tr.querySelector('[data-col="tokens"]').textContent = String(run.total_tokens);
  tr.querySelector('[data-col="nodes"]').textContent = String(run.node_count);
  const errors = tr.querySelector('[data-col="errors"]');
  errors.textContent = String(run.error_count);
  errors.classList.toggle("err", run.error_count > 0);
  if (run.first_error) errors.title = run.first_error;
}

// The newest matching runs, in the API's order, go on top: those before the first run the
// page already shows (the API returns at most a page, so a page never more than doubles).
function merge(results) {
  const top = rows.querySelector("tr[data-execution-id]");
  for (const run of results) {
    if (rowOf(run.execution_id)) break;
    const tr = buildRow(run);
    update(tr, run);
    if (top) top.before(tr);
    else rows.append(tr);
    tr.classList.add("fresh");
    known.add(run.execution_id);
    document.getElementById("no-runs")?.remove();
  }
}

function count(results) {
  for (const run of results) if (!known.has(run.execution_id)) fresh.add(run.execution_id);
  if (!fresh.size) return;
  const n = fresh.size;
  noticeText.textContent = `${n} new run${n === 1 ? "" : "s"}${data.filtered ? (n === 1 ? " matches" : " match") : ""} —`;
  notice.hidden = false;
}

async function check() {
  checkTimer = null;
  let results;
  try {
    const response = await fetch(data.head_url, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    results = (await response.json()).results;
  } catch {
    return; // the next change asks again
  }
  if (!baseline) {
    results.forEach((run) => known.add(run.execution_id));
    baseline = true;
  } else if (data.is_head) {
    merge(results);
  } else {
    count(results);
  }
}

function scheduleCheck() {
  if (!checkTimer) checkTimer = setTimeout(check, 250);
}

function apply(run) {
  const tr = rowOf(run.execution_id);
  if (tr) update(tr, run);
  else if (!known.has(run.execution_id)) scheduleCheck();
}

follow.addEventListener("change", () => {
  if (follow.checked) pending.splice(0).forEach(apply);
});

// Only the fields that are set go into the URL: a short link to share.
form?.addEventListener("submit", () => {
  for (const el of form.elements) if (el.name && !el.value) el.disabled = true;
});
window.addEventListener("pageshow", () => {
  for (const el of form?.elements ?? []) el.disabled = false;
});

const indicator = document.getElementById("live-indicator");
liveSocket(data.ws_path, {
  onMessage(message) {
    if (message.type === "subscribed") {
      // Subscribed first, then look: anything started since the page rendered shows up.
      scheduleCheck();
      return;
    }
    if (message.type !== "run_summary") return;
    if (follow.checked) apply(message.run);
    else pending.push(message.run);
  },
  onState(state) { indicator.hidden = state !== "open"; },
});
