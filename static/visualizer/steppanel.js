// The step panel: one node execution, what it changed (Python computed the diff), and its
// states before and after. This module only places what the step endpoint returned.
import { el } from "./dom.js";
import { number } from "./format.js";

const $ = (id) => document.getElementById(id);

function valueCell(shown, className) {
  const td = document.createElement("td");
  if (!shown) return td;
  const span = el("span", `val ${className}`, shown.text);
  td.append(span);
  if (shown.truncated) {
    // Long values are collapsed; "show all" expands one in place (up to what the server
    // sent; the state below and the download always have all of it).
    const more = el("button", "nav more", `show all ${number(shown.length)} chars`);
    more.type = "button";
    if (shown.full == null) {
      more.textContent = `${number(shown.length)} chars: see the state below`;
      more.disabled = true;
    }
    let open = false;
    more.addEventListener("click", () => {
      open = !open;
      span.textContent = open ? shown.full : shown.text;
      more.textContent = open ? "collapse" : `show all ${number(shown.length)} chars`;
    });
    td.append(more);
  }
  return td;
}

function bytes(n) {
  if (n >= 1048576) return `${(n / 1048576).toFixed(1)} MB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${n} bytes`;
}

// A state as text, or, above the size gate, a summary of it and a download link.
function showState(box, view, download) {
  if (!view.present) {
    box.replaceChildren(el("p", "muted", "(no state recorded)"));
  } else if (!view.too_large) {
    box.replaceChildren(el("pre", null, view.text));
  } else {
    const s = view.summary;
    const what = s.length == null ? s.type : `${s.type} with ${number(s.length)} ${s.type === "array" ? "items" : "keys"}`;
    const link = el("a", null, "download the step as JSON");
    link.href = download;
    const note = el("p", "too-large", `${bytes(view.bytes)} ${what}: too large to show here (the limit is STATE_INLINE_MAX_BYTES); `, link);
    const table = el("table", "state-summary");
    for (const entry of s.entries) {
      const tr = document.createElement("tr");
      tr.append(el("td", null, null, el("code", null, entry.key)), el("td", "muted", entry.type), el("td", "num", bytes(entry.bytes)));
      table.append(tr);
    }
    box.replaceChildren(note, ...(s.entries.length ? [el("p", "muted", "Largest entries:"), table] : []));
  }
}

// `onWatch` (optional): a "watch" button on each change calls it with the change's path.
export function renderPanel(view, { onWatch } = {}) {
  const step = view.step;
  $("step-hint").hidden = true;
  $("step-body").hidden = false;
  $("step-title").textContent = `Step #${step.index} · ${step.node}`;
  const meta = $("step-meta");
  meta.replaceChildren(
    el("span", `badge ${step.success ? "completed" : "failed"}`, step.success ? "ok" : "failed"),
    ` ${step.duration_ms} ms · ${step.tokens_used} tokens` +
      (step.tools_called.length ? ` · tools: ${step.tools_called.join(", ")}` : "") +
      (view.parallel_with?.length ? ` · in parallel with: ${view.parallel_with.join(", ")}` : "") +
      (step.started_at ? ` · started ${step.started_at}` : ""),
  );
  const error = $("step-error");
  error.hidden = !step.error_message;
  error.textContent = step.error_message || "";
  const s = view.summary;
  $("step-summary").textContent = view.has_both_states
    ? `${s.total} · +${s.add} ~${s.replace} −${s.remove}` + (s.keys.length ? ` · keys: ${s.keys.join(", ")}` : "")
    : "";
  const rows = view.changes.map((change) => {
    const tr = document.createElement("tr");
    tr.dataset.path = change.path;
    const op = el("td", null, null, el("span", `op ${change.op}`, change.op));
    const path = el("td", null, null, el("code", null, change.path || "(whole state)"));
    tr.append(op, path, valueCell(change.before, "old"), valueCell(change.after, "new"));
    if (onWatch) {
      const button = el("button", "nav pin", "watch");
      button.type = "button";
      button.title = "Watch this path through the run";
      button.addEventListener("click", () => onWatch(change.path));
      tr.append(el("td", null, null, button));
    }
    return tr;
  });
  $("step-diff").replaceChildren(...rows);
  const none = $("step-no-diff");
  none.hidden = view.changes.length > 0;
  if (view.has_both_states) none.textContent = "This step changed nothing in the state.";
  else if (view.state_before.present) none.textContent = "No state after: the node ended without writing one.";
  else none.textContent = "No states were recorded for this step.";
  showState($("state-before"), view.state_before, view.download_url);
  showState($("state-after"), view.state_after, view.download_url);
  $("step-download").href = view.download_url;
}
