// The run list: new runs appear at the top and running runs update, while "Follow live"
// is on. Rows are built with textContent only: every string comes from a trace.
import { liveSocket } from "./live.js";
import { cell } from "./dom.js";

const data = JSON.parse(document.getElementById("runs-data").textContent);
const rows = document.getElementById("run-rows");
const follow = document.getElementById("follow");
const pending = [];


function statusBadge(run) {
  const span = document.createElement("span");
  const status = run.stale ? "stale" : run.status;
  span.className = `badge ${run.status}${run.stale ? " stale" : ""}`;
  span.textContent = status.charAt(0).toUpperCase() + status.slice(1);
  return span;
}

function apply(run) {
  let tr = rows.querySelector(`tr[data-execution-id="${CSS.escape(run.execution_id)}"]`);
  if (!tr) {
    tr = document.createElement("tr");
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
    rows.prepend(tr);
    tr.classList.add("fresh");
  }
  const statusCell = tr.querySelector('[data-col="status"]');
  statusCell.replaceChildren(statusBadge(run));
  tr.querySelector('[data-col="duration"]').textContent = `${run.duration_ms} ms`;
  tr.querySelector('[data-col="tokens"]').textContent = String(run.total_tokens);
  tr.querySelector('[data-col="nodes"]').textContent = String(run.node_count);
  tr.querySelector('[data-col="errors"]').textContent = String(run.error_count);
}

follow.addEventListener("change", () => {
  if (follow.checked) pending.splice(0).forEach(apply);
});

const indicator = document.getElementById("live-indicator");
liveSocket(data.ws_path, {
  onMessage(message) {
    if (message.type !== "run_summary") return;
    if (follow.checked) apply(message.run);
    else pending.push(message.run);
  },
  onState(state) { indicator.hidden = state !== "open"; },
});
