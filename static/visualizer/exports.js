// The exports page: start an export through the API, then follow every export of the
// project over the websocket (status, progress bar, rows, size) and cancel, download or
// delete it. Rows are built with textContent only.
import { liveSocket } from "./live.js";
import { cell } from "./dom.js";
import { api, fill } from "./http.js";
import { localTime, number, timeTitle } from "./format.js";

const data = JSON.parse(document.getElementById("exports-data").textContent);
const rows = document.getElementById("export-rows");
const empty = document.getElementById("no-exports");
const form = document.getElementById("export-form");
const formError = document.getElementById("form-error");
const exportsById = new Map();

function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function describe(filters) {
  const parts = Object.entries(filters).map(([name, value]) =>
    `${name}=${Array.isArray(value) ? value.join(",") : value}`);
  return parts.length ? parts.join(" · ") : "all runs";
}

function button(label, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `nav ${className}`;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}

async function remove(exp) {
  const active = exp.status === "queued" || exp.status === "running";
  if (!active && !window.confirm(`Delete the export ${exp.file_name || exp.id}? Its file goes too.`)) return;
  let answer;
  try {
    answer = await api("DELETE", fill(data.export_url, { id: exp.id }));
  } catch (error) {
    if (formError) formError.textContent = error.message;
    return;
  }
  if (answer === null) drop(exp.id);
  else apply(answer);
}

function render(exp) {
  let tr = rows.querySelector(`tr[data-export-id="${CSS.escape(exp.id)}"]`);
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.exportId = exp.id;
    const created = cell(exp.created_at ? localTime(exp.created_at) : "—");
    if (exp.created_at) created.title = timeTitle(exp.created_at);
    const format = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = exp.format;
    format.append(code);
    const selection = cell(describe(exp.filters), "selection");
    selection.title = selection.textContent;
    const status = cell("");
    status.dataset.col = "status";
    const progress = document.createElement("td");
    progress.dataset.col = "progress";
    progress.className = "progress-col";
    const bar = document.createElement("div");
    bar.className = "progress";
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    const fill = document.createElement("div");
    fill.className = "progress-fill";
    bar.append(fill);
    const label = document.createElement("span");
    label.className = "progress-label";
    progress.append(bar, label);
    tr.append(created, format, selection, status, progress);
    for (const col of ["runs", "rows", "size"]) {
      const td = cell("", "num");
      td.dataset.col = col;
      tr.append(td);
    }
    const actions = document.createElement("td");
    actions.dataset.col = "actions";
    actions.className = "actions";
    tr.append(actions);
    // Newest first: a row for an export created later goes above the older ones.
    const after = [...rows.children].find((other) =>
      exportsById.get(other.dataset.exportId)?.created_at < exp.created_at);
    rows.insertBefore(tr, after || null);
  }
  const badge = document.createElement("span");
  badge.className = `badge export-${exp.status}`;
  badge.textContent = exp.status.charAt(0).toUpperCase() + exp.status.slice(1);
  if (exp.error) badge.title = exp.error;
  tr.querySelector('[data-col="status"]').replaceChildren(badge);
  const bar = tr.querySelector(".progress");
  bar.setAttribute("aria-valuenow", String(exp.progress));
  bar.dataset.status = exp.status;
  bar.querySelector(".progress-fill").style.width = `${exp.progress}%`;
  tr.querySelector(".progress-label").textContent = `${Math.floor(exp.progress)}%`;
  tr.querySelector('[data-col="runs"]').textContent = `${exp.runs_done} / ${exp.runs_total}`;
  tr.querySelector('[data-col="rows"]').textContent = number(exp.row_count);
  tr.querySelector('[data-col="size"]').textContent = formatSize(exp.size);
  const actions = tr.querySelector('[data-col="actions"]');
  const items = [];
  if (exp.download_url && exp.row_count === 0) {
    // Nothing matched: there is no file worth saving, and a 0-byte download says nothing.
    const none = document.createElement("span");
    none.className = "muted nothing-matched";
    none.textContent = "Nothing matched";
    none.title = "No run or step matched this export's selection";
    items.push(none);
  } else if (exp.download_url) {
    const link = document.createElement("a");
    link.className = "download";
    link.href = `${exp.download_url}?project=${encodeURIComponent(data.project)}`;
    link.textContent = "Download";
    link.setAttribute("download", exp.file_name || "");
    items.push(link);
  }
  if (data.can_export) {
    const active = exp.status === "queued" || exp.status === "running";
    items.push(button(active ? "Cancel" : "Delete", active ? "cancel" : "delete", () => remove(exp)));
  }
  actions.replaceChildren(...items);
}

function apply(exp) {
  const known = exportsById.get(exp.id);
  // Progress only moves forward within one attempt; a late message must not undo it.
  if (known && known.status === exp.status && known.runs_done > exp.runs_done
      && known.started_at === exp.started_at) return;
  exportsById.set(exp.id, exp);
  render(exp);
  empty.hidden = exportsById.size > 0;
}

function drop(id) {
  exportsById.delete(id);
  rows.querySelector(`tr[data-export-id="${CSS.escape(id)}"]`)?.remove();
  empty.hidden = exportsById.size > 0;
}

data.exports.forEach(apply);
empty.hidden = exportsById.size > 0;

function listValue(text) {
  return text.split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

function formFilters() {
  const filters = {};
  for (const input of form.querySelectorAll("[data-filter]")) {
    if (input.value.trim()) filters[input.name] = input.value.trim();
  }
  const group = form.elements.group.value;
  if (group) filters.group = Number(group);
  const verdict = form.elements.verdict.value;
  if (verdict) filters.verdict = verdict;
  const nodes = listValue(form.elements.nodes.value);
  if (nodes.length) filters.nodes = nodes;
  const ids = listValue(form.elements.execution_ids.value);
  if (ids.length) filters.execution_ids = ids;
  return filters;
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  formError.textContent = "";
  form.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  const submit = document.getElementById("start-export");
  submit.disabled = true;
  try {
    apply(await api("POST", data.api, { format: form.elements.format.value, filters: formFilters() }));
  } catch (error) {
    formError.textContent = error.body?.detail || `Error ${error.status}`;
    const name = (error.body?.path || "").replace(/^filters\./, "");
    form.querySelector(`[data-field="${CSS.escape(name)}"]`)?.classList.add("invalid");
  } finally {
    submit.disabled = false;
  }
});

const indicator = document.getElementById("live-indicator");
liveSocket(data.ws_path, {
  onMessage(message) {
    if (message.type === "exports") message.exports.forEach(apply);
    else if (message.type === "export") apply(message.export);
    else if (message.type === "export_deleted") drop(message.id);
  },
  onState(state) { indicator.hidden = state !== "open"; },
});
