// The step panel: one node execution, what it changed (Python computed the diff), its
// chat messages (Python read them) and its states before and after as trees
// (jsontree.js), the changes marked in place or the two side by side. This module only
// places what the step endpoint returned.
import { el } from "./dom.js";
import { duration, localTime, number } from "./format.js";
import { getJSON } from "./http.js";
import { JsonTree } from "./jsontree.js";

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

// A state over the size gate: a summary of it and a download link.
function tooLarge(view, download) {
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
  return el("div", "state-large", null, note, ...(s.entries.length ? [el("p", "muted", "Largest entries:"), table] : []));
}

// ---- The states: a tree with the changes in place, or before | after side by side.

// The reader's choices, kept across steps and visits.
const PREFS_KEY = "dashflow:state-view";
const prefs = { mode: "inline", onlyChanged: false, wrap: true };
try {
  Object.assign(prefs, JSON.parse(localStorage.getItem(PREFS_KEY) || "{}"));
} catch {
  // a value another version wrote: the defaults
}
// The paths the reader opened or closed stay so from step to step (j / k keep the view).
const opened = new Set();
const closed = new Set();
let shownView = null;
let shownOptions = {};

function savePrefs() {
  try { localStorage.setItem(PREFS_KEY, JSON.stringify(prefs)); } catch { /* private mode */ }
}

function stateBox(state, download, { changes, side, label, onWatch, onToggle }) {
  if (!state.present) return { element: el("p", "muted", "(no state recorded)") };
  if (state.too_large) return { element: tooLarge(state, download) };
  return new JsonTree(state.value, { changes, side, label, onWatch, onToggle, opened, closed, onlyChanged: prefs.onlyChanged });
}

function toolbar() {
  const modes = el("span", "seg");
  modes.setAttribute("role", "group");
  modes.setAttribute("aria-label", "How to show the states");
  for (const [mode, label, title] of [
    ["inline", "Changes in place", "One tree, the changes marked where they are"],
    ["split", "Before | after", "The state before and the state after, side by side"],
  ]) {
    const button = el("button", "nav", label);
    button.type = "button";
    button.dataset.mode = mode;
    button.title = title;
    button.setAttribute("aria-pressed", String(prefs.mode === mode));
    button.addEventListener("click", () => { prefs.mode = mode; savePrefs(); renderStates(); });
    modes.append(button);
  }
  const check = (id, label, key) => {
    const box = el("input");
    box.type = "checkbox";
    box.id = id;
    box.checked = prefs[key];
    box.addEventListener("change", () => { prefs[key] = box.checked; savePrefs(); renderStates(); });
    return el("label", "check", null, box, ` ${label}`);
  };
  return el("div", "state-bar", null, el("h3", null, "State"), modes,
    check("state-only-changed", "only changed", "onlyChanged"), check("state-wrap", "wrap long strings", "wrap"));
}

function renderStates() {
  const box = $("step-states");
  if (!box || !shownView) return;
  const view = shownView;
  const { onWatch, labels = {} } = shownOptions;
  const changes = view.has_both_states ? view.changes : [];
  const parts = [toolbar()];
  if (view.transcript) parts.push(transcript(view.transcript));
  const trees = el("div", `state-trees mode-${prefs.mode}${prefs.wrap ? " wrap" : ""}`);
  if (prefs.mode === "split") {
    const sides = {};
    const column = (side, title) => {
      const state = side === "before" ? view.state_before : view.state_after;
      const onToggle = (path, open) => sides[side === "before" ? "after" : "before"]?.setOpen?.(path, open);
      sides[side] = stateBox(state, view.download_url, { changes, side, label: title, onWatch, onToggle });
      return el("div", `state-side ${side}`, null, el("h4", null, title), sides[side].element);
    };
    trees.append(column("before", labels.before ?? "Before"), column("after", labels.after ?? "After"));
  } else {
    // The state the step left, the changes marked in it; the one it received if none.
    const after = view.state_after.present || !view.state_before.present;
    const state = after ? view.state_after : view.state_before;
    const title = after ? (labels.after ?? "After") : (labels.before ?? "Before (no state after)");
    trees.append(el("h4", null, title),
      stateBox(state, view.download_url, { changes, side: after ? "after" : "before", label: title, onWatch }).element);
  }
  parts.push(trees);
  box.replaceChildren(...parts);
  // Each box scrolls itself (never the page) to its first change: the first new message,
  // the first changed node of each tree.
  const first = box.querySelector(".chat-msg.new");
  if (first) first.parentElement.scrollTop = first.offsetTop - first.parentElement.offsetTop - 8;
  for (const tree of box.querySelectorAll(".jt")) {
    const changed = tree.querySelector(".jt-added, .jt-replaced, .jt-removed");
    if (changed && changed.offsetTop + 24 > tree.clientHeight) tree.scrollTop = changed.offsetTop - 48;
  }
}

// ---- The chat messages of the state (Python read them: traces/chat.py).

const CHAT_SHOWN = 20;

function message(m) {
  const li = el("li", `chat-msg role-${m.role}${m.new ? " new" : ""}${m.changed ? " changed" : ""}`);
  li.dataset.index = m.index;
  const head = el("div", "chat-head", null, el("span", "chat-role", m.role));
  if (m.name) head.append(el("span", "chat-name", `· ${m.name}`));
  if (m.tool_call_id) head.append(el("span", "muted", ` result of ${m.tool_call_id}`));
  if (m.new) head.append(el("span", "jt-badge add", "new"));
  else if (m.changed) head.append(el("span", "jt-badge replace", "edited"));
  head.append(el("span", "chat-index muted", `#${m.index}`));
  li.append(head);
  if (m.text.text) {
    const text = el("div", "chat-text", m.text.text);
    li.append(text);
    if (m.text.truncated) {
      const more = el("button", "jt-more", m.full == null ? `${number(m.text.length)} chars: see the tree` : `show all ${number(m.text.length)} chars`);
      more.type = "button";
      more.disabled = m.full == null;
      let open = false;
      more.addEventListener("click", () => {
        open = !open;
        text.textContent = open ? m.full : m.text.text;
        more.textContent = open ? "show less" : `show all ${number(m.text.length)} chars`;
      });
      li.append(more);
    }
  }
  for (const call of m.tool_calls) {
    li.append(el("div", "chat-call", null, el("span", "chat-tool", `→ ${call.name}`), el("code", null, `(${call.arguments})`),
      ...(call.id ? [el("span", "muted", ` ${call.id}`)] : [])));
  }
  return li;
}

function transcript(t) {
  const fresh = t.messages.filter((m) => m.new).length;
  const head = el("h4", null, `Messages · ${number(t.total)}` + (fresh ? ` · ${number(fresh)} new` : ""));
  const list = el("ol", "chat-list");
  // The latest messages and the new ones; a button shows the earlier ones sent.
  const firstNew = t.messages.findIndex((m) => m.new || m.changed);
  const from = Math.max(0, Math.min(t.messages.length - CHAT_SHOWN, firstNew < 0 ? Infinity : firstNew - 2));
  const items = t.messages.slice(from).map(message);
  if (from > 0) {
    const earlier = el("button", "jt-more", `show ${number(from)} earlier messages`);
    earlier.type = "button";
    earlier.addEventListener("click", () => earlier.replaceWith(...t.messages.slice(0, from).map(message)));
    items.unshift(el("li", "chat-earlier", null, earlier));
  }
  if (t.messages.length && t.messages[0].index > 0) {
    items.unshift(el("li", "chat-earlier muted", `${number(t.messages[0].index)} earlier messages are in the tree at ${t.path || "/"}`));
  }
  list.append(...items);
  const section = el("section", "chat", null, head, list);
  section.setAttribute("aria-label", "Chat messages");
  return section;
}

// ---- What the capture policy did to this step: each marker, its place and its rule.

const CAPTURE_WORDS = { redacted: "redacted", truncated: "truncated", attachment: "kept as an attachment" };

function captureItem(entry) {
  let what = CAPTURE_WORDS[entry.action] || entry.action;
  if (entry.action === "truncated") what += ` to ${bytes(entry.kept)} of ${bytes(entry.bytes)}`;
  if (entry.action === "attachment") what += ` (${bytes(entry.bytes)})`;
  const li = el("li", null, null, el("code", null, entry.path), ` in ${entry.state}: ${what} by `, el("code", null, entry.rule || "?"));
  if (entry.url) {
    const fetchButton = el("button", "nav", "fetch");
    fetchButton.type = "button";
    fetchButton.addEventListener("click", async () => {
      fetchButton.disabled = true;
      try {
        const found = await getJSON(entry.url);
        li.append(el("pre", "capture-attachment", JSON.stringify(found.value, null, 2)));
        fetchButton.remove();
      } catch (error) {
        fetchButton.disabled = false;
        li.append(el("span", "error", ` ${error.message}`));
      }
    });
    li.append(" ", fetchButton);
  }
  return li;
}

function renderCapture(entries) {
  const box = $("step-capture");
  if (!box) return; // a page without the note (compare)
  box.hidden = !entries?.length;
  if (!entries?.length) {
    box.replaceChildren();
    return;
  }
  const head = el("p", "capture-head", `Capture policy: ${number(entries.length)} value${entries.length === 1 ? "" : "s"} changed before storing`);
  box.replaceChildren(head, el("ul", "capture-list", null, ...entries.map(captureItem)));
}

// `onWatch` (optional): a "watch" button on each change and on each node of the state
// tree calls it with the path. `labels` ({before, after}) name the two states.
export function renderPanel(view, { onWatch, labels } = {}) {
  const step = view.step;
  // A failed step without a state after is compared with the state at its error.
  if (view.compared_with === "state at error" && !labels) {
    labels = { before: "Before", after: "At the error" };
  }
  $("step-hint").hidden = true;
  $("step-body").hidden = false;
  $("step-title").textContent = `Step #${step.index} · ${step.node}`;
  const meta = $("step-meta");
  meta.replaceChildren(
    el("span", `badge ${step.success ? "completed" : "failed"}`, step.success ? "ok" : "failed"),
    ` ${duration(step.duration_ms)} · ${number(step.tokens_used)} tokens` +
      (step.tools_called.length ? ` · tools: ${step.tools_called.join(", ")}` : "") +
      (view.parallel_with?.length ? ` · in parallel with: ${view.parallel_with.join(", ")}` : "") +
      (step.started_at ? ` · started ${localTime(step.started_at) || step.started_at}` : ""),
  );
  const error = $("step-error");
  error.hidden = !step.error_message;
  error.textContent = step.error_message || "";
  renderCapture(view.capture);
  const s = view.summary;
  $("step-summary").textContent = view.has_both_states
    ? (view.compared_with === "state at error" ? "up to the error: " : "") + `${s.total} · +${s.add} ~${s.replace} −${s.remove}` + (s.keys.length ? ` · keys: ${s.keys.join(", ")}` : "")
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
  if (view.has_both_states && view.compared_with === "state at error") {
    none.textContent = "Nothing changed in the state before the node failed (compared with the state at its error).";
  } else if (view.has_both_states) none.textContent = "This step changed nothing in the state.";
  else if (view.state_before.present) none.textContent = "No state after: the node ended without writing one.";
  else none.textContent = "No states were recorded for this step.";
  shownView = view;
  shownOptions = { onWatch, labels };
  renderStates();
  $("step-download").href = view.download_url;
}
