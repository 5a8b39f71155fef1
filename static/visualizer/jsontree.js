// A JSON value as a collapsible tree, with a diff's changes marked where they are
// (Python computed the diff: the step view's `changes`, JSON Pointer paths).
//
// Lazy: a node's children are built the first time it is opened, and a container shows
// its entries a page at a time ("show 100 more", "show all"), so a 1 MB state opens in
// the time its first level takes. Long strings show their start and "show all"; the cut
// is made in the string, never in its JSON text, and "copy value" copies the whole
// value as JSON. Numbers keep their own text (`parseJson`): 1.0 is not shown as 1, nor
// is a 64-bit id rounded, when the value was read by http.js `getExactJSON`.
import { copyText, el } from "./dom.js";
import { number } from "./format.js";

const PAGE = 100; // entries of a container built at a time
const STRING_CHARS = 300; // a longer string shows this much and "show all"
const OLD_CHARS = 80; // a replaced value's old value, inline (all of it on hover)
const AUTO_OPEN_MAX = 200; // the changes that open (with their ancestors) by themselves
const REMEMBERED = 500; // the paths the reader opened (or closed) that are remembered

// Add `path` to a set of remembered paths, forgetting the oldest past REMEMBERED.
function remember(paths, path) {
  paths.delete(path);
  paths.add(path);
  if (paths.size > REMEMBERED) paths.delete(paths.values().next().value);
}

const isRaw = (value) => typeof JSON.isRawJSON === "function" && JSON.isRawJSON(value);
const isContainer = (value) => value !== null && typeof value === "object" && !isRaw(value);

export function childPath(path, key) {
  return `${path}/${String(key).replace(/~/g, "~0").replace(/\//g, "~1")}`;
}

function lastToken(path) {
  return path.slice(path.lastIndexOf("/") + 1).replace(/~1/g, "/").replace(/~0/g, "~");
}

function parentOf(path) {
  return path.slice(0, path.lastIndexOf("/"));
}

// A diff's changes by path: the change at each path, how many changes lie under each
// container, and the removed entries of each container (for the "after" side, where
// they no longer exist).
export function indexChanges(changes) {
  const at = new Map();
  const inside = new Map();
  const removed = new Map();
  const auto = new Set();
  changes.forEach((change, n) => {
    at.set(change.path, change);
    if (n < AUTO_OPEN_MAX) auto.add(change.path);
    let path = change.path;
    while (path) {
      path = parentOf(path);
      inside.set(path, (inside.get(path) ?? 0) + 1);
      if (n < AUTO_OPEN_MAX) auto.add(path);
    }
    if (change.op === "remove" && change.path) {
      const parent = parentOf(change.path);
      if (!removed.has(parent)) removed.set(parent, []);
      removed.get(parent).push(change);
    }
  });
  for (const list of removed.values()) list.reverse(); // removes come highest index first
  return { at, inside, removed, auto };
}

function scalarText(value) {
  return isRaw(value) ? value.rawJSON : JSON.stringify(value);
}

function scalarClass(value) {
  if (value === null) return "jt-null";
  if (isRaw(value) || typeof value === "number") return "jt-num";
  if (typeof value === "boolean") return "jt-bool";
  return "jt-str";
}

// A capture policy's marker (traces/capture.py) says what it stands for when collapsed.
function markerSummary(value) {
  if ("$redacted" in value) return `{redacted by ${value.$redacted}}`;
  if ("$truncated" in value) return `{truncated: ${number(value.bytes)} bytes, ${number(value.$truncated)} kept, by ${value.rule}}`;
  if ("$attachment" in value) return `{attachment: ${number(value.bytes)} bytes, by ${value.rule}}`;
  return null;
}

function summary(value) {
  if (Array.isArray(value)) return `[…] ${number(value.length)} item${value.length === 1 ? "" : "s"}`;
  const marker = markerSummary(value);
  if (marker) return marker;
  const n = Object.keys(value).length;
  return `{…} ${number(n)} key${n === 1 ? "" : "s"}`;
}

// A string cut in its characters (not its JSON text, not inside a surrogate pair).
function cutString(text, chars) {
  let end = chars;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return `${JSON.stringify(text.slice(0, end)).slice(0, -1)}…`;
}

function scalar(value) {
  const span = el("span", `jt-val ${scalarClass(value)}`);
  if (typeof value !== "string" || value.length <= STRING_CHARS) {
    span.textContent = scalarText(value);
    return span;
  }
  const text = el("span", null, cutString(value, STRING_CHARS));
  const more = el("button", "jt-more", `show all ${number(value.length)} chars`);
  more.type = "button";
  let open = false;
  more.addEventListener("click", () => {
    open = !open;
    text.textContent = open ? JSON.stringify(value) : cutString(value, STRING_CHARS);
    more.textContent = open ? "show less" : `show all ${number(value.length)} chars`;
  });
  span.append(text, " ", more);
  return span;
}

// A copy button that says how it went, then its label again.
function copyAction(label, title, text) {
  const button = el("button", "jt-act", label);
  button.type = "button";
  button.title = title;
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    let said;
    try {
      said = (await copyText(text(), button)) ? "copied" : "selected";
    } catch (error) {
      said = "copy failed";
    }
    button.textContent = said;
    setTimeout(() => { button.textContent = label; }, 1200);
  });
  return button;
}

export class JsonTree {
  // `side`: "after" marks what was added and replaced, with the removed entries shown
  // where they were; "before" marks what was removed and replaced. `opened` / `closed`:
  // paths the reader opened or closed (kept by the caller across steps). `onWatch(path)`
  // adds a "watch" action; `onToggle(path, open)` is told of each toggle (side by side).
  constructor(value, { changes = [], side = "after", onlyChanged = false, opened = new Set(),
    closed = new Set(), onWatch = null, onToggle = null, label = "state" } = {}) {
    this.value = value;
    this.index = indexChanges(changes);
    this.side = side;
    this.onlyChanged = onlyChanged;
    this.opened = opened;
    this.closed = closed;
    this.onWatch = onWatch;
    this.onToggle = onToggle;
    this.element = el("div", "jt");
    this.element.setAttribute("role", "tree");
    this.element.setAttribute("aria-label", label);
    this.element.append(this.node(value, "", null, false));
  }

  isOpen(path) {
    if (this.opened.has(path)) return true;
    if (this.closed.has(path)) return false;
    return path === "" || this.index.auto.has(path);
  }

  // Open or close the node at `path` if it is built (side by side: the other tree).
  setOpen(path, open) {
    const item = this.element.querySelector(`[data-path="${CSS.escape(path)}"]`);
    if (item && item.getAttribute("aria-expanded") !== String(open)) this.toggle(item, open, false);
  }

  // `tell`: the reader did it (remembered for the next steps, told to the other side);
  // a node opened because it holds a change is not remembered.
  toggle(item, open, tell = true) {
    const path = item.dataset.path;
    item.setAttribute("aria-expanded", String(open));
    item.querySelector(":scope > .jt-row > .jt-toggle").textContent = open ? "▾" : "▸";
    if (tell) {
      (open ? this.closed : this.opened).delete(path);
      remember(open ? this.opened : this.closed, path);
    }
    let children = item.querySelector(":scope > .jt-children");
    if (open && !children) {
      children = this.children(item.jtValue, path);
      item.append(children);
    }
    if (children) children.hidden = !open;
    if (tell && this.onToggle) this.onToggle(path, open);
  }

  // One node: its row (toggle, key, value or summary, change mark, actions) and, once
  // opened, its children.
  node(value, path, key, inArray) {
    const item = el("div", "jt-node");
    item.dataset.path = path;
    item.setAttribute("role", "treeitem");
    const row = el("div", "jt-row");
    const container = isContainer(value);
    if (container) {
      const toggle = el("button", "jt-toggle", "▸");
      toggle.type = "button";
      toggle.setAttribute("aria-label", `open ${path || "the state"}`);
      toggle.addEventListener("click", () =>
        this.toggle(item, item.getAttribute("aria-expanded") !== "true"));
      row.append(toggle);
      item.jtValue = value;
    } else row.append(el("span", "jt-space"));
    if (key === null) row.append(el("span", "jt-key jt-root", path === "" ? "state" : path));
    else row.append(el("span", inArray ? "jt-index" : "jt-key", inArray ? String(key) : JSON.stringify(key)), el("span", "jt-colon", ": "));
    row.append(container ? el("span", "jt-summary", summary(value)) : scalar(value));
    this.mark(item, row, path);
    row.append(this.actions(path, () => value));
    item.prepend(row);
    if (container) {
      item.setAttribute("aria-expanded", "false");
      if (this.isOpen(path)) this.toggle(item, true, false);
    }
    return item;
  }

  // The change at this path (or below it) on this side.
  mark(item, row, path) {
    const change = this.index.at.get(path);
    const below = this.index.inside.get(path);
    if (change && !(this.side === "before" && change.op === "add") && !(this.side === "after" && change.op === "remove")) {
      const kind = { add: "added", remove: "removed", replace: "replaced" }[change.op];
      item.classList.add(`jt-${kind}`);
      const badge = el("span", `jt-badge ${change.op}`, kind);
      if (change.op === "replace") {
        const other = this.side === "after" ? change.before : change.after;
        const was = this.side === "after" ? "was" : "now";
        badge.title = `${was}: ${other.full ?? other.text}`;
        if (this.side === "after") {
          // The old value inline, before the new one: "count": 1.0 → 2.
          const text = other.text.length > OLD_CHARS ? `${other.text.slice(0, OLD_CHARS - 1)}…` : other.text;
          const old = el("span", "jt-old", text);
          old.title = badge.title;
          row.querySelector(":scope > .jt-val, :scope > .jt-summary").before(old, el("span", "jt-arrow", "→"));
        }
      }
      row.append(badge);
    } else if (below) {
      item.classList.add("jt-changed-inside");
      const dot = el("span", "jt-inside", `${number(below)} change${below === 1 ? "" : "s"} inside`);
      row.append(dot);
    }
  }

  actions(path, value) {
    const box = el("span", "jt-actions");
    box.append(
      copyAction("copy path", "Copy this node's JSON Pointer", () => path),
      copyAction("copy value", "Copy this node's value as JSON", () => JSON.stringify(value(), null, 2)),
    );
    if (this.onWatch) {
      const watch = el("button", "jt-act", "watch");
      watch.type = "button";
      watch.title = "Watch this path through the run";
      watch.addEventListener("click", () => this.onWatch(path));
      box.append(watch);
    }
    return box;
  }

  // The entries of a container: the first page, every entry holding a change, and
  // between them buttons that build the rest; then, on the after side, what was removed.
  children(value, path) {
    const box = el("div", "jt-children");
    box.setAttribute("role", "group");
    const array = Array.isArray(value);
    const keys = array ? null : Object.keys(value);
    const count = array ? value.length : keys.length;
    const keyAt = array ? (i) => i : (i) => keys[i];
    const { at, inside } = this.index;
    const touched = (i) => {
      const child = childPath(path, keyAt(i));
      return at.has(child) || inside.has(child);
    };
    // Inside what was added or replaced everything is a change: only-changed shows it all.
    const onlyChanged = this.onlyChanged && !this.withinChange(path);
    let shown;
    if (onlyChanged) {
      shown = [];
      for (let i = 0; i < count; i++) if (touched(i)) shown.push(i);
    } else {
      shown = [];
      for (let i = 0; i < Math.min(count, PAGE); i++) shown.push(i);
      // Changed entries past the first page, at most a page of them.
      if (count > PAGE && (at.size || inside.size)) {
        for (let i = PAGE; i < count && shown.length < 2 * PAGE; i++) if (touched(i)) shown.push(i);
      }
    }
    const build = (i) => this.node(value[keyAt(i)], childPath(path, keyAt(i)), keyAt(i), array);
    let next = 0;
    const nodes = [];
    for (const i of shown) {
      if (i > next && !onlyChanged) nodes.push(this.gap(next, i, build));
      nodes.push(build(i));
      next = i + 1;
    }
    if (next < count && !onlyChanged) nodes.push(this.gap(next, count, build));
    if (onlyChanged && count > shown.length) {
      nodes.push(el("div", "jt-gap muted", `${number(count - shown.length)} unchanged ${array ? "items" : "keys"} hidden`));
    }
    if (this.side === "after") for (const change of this.index.removed.get(path) ?? []) nodes.push(this.ghost(change, array));
    box.append(...nodes);
    return box;
  }

  // Whether `path` is, or is inside, a path the diff added or replaced.
  withinChange(path) {
    for (let at = path; ; at = parentOf(at)) {
      const change = this.index.at.get(at);
      if (change && change.op !== "remove") return true;
      if (!at) return false;
    }
  }

  // Entries from..to not built yet: a button builds the next page, another all of them.
  gap(from, to, build) {
    const box = el("div", "jt-gap");
    const n = to - from;
    const label = el("span", "muted", `… ${number(n)} more`);
    const buttons = [];
    const fill = (upTo) => {
      const nodes = [];
      for (let i = from; i < upTo; i++) nodes.push(build(i));
      if (upTo < to) nodes.push(this.gap(upTo, to, build));
      box.replaceWith(...nodes);
    };
    if (n > PAGE) {
      const page = el("button", "jt-more", `show ${PAGE} more`);
      page.addEventListener("click", () => fill(from + PAGE));
      buttons.push(page);
    }
    const all = el("button", "jt-more", `show all ${number(n)}`);
    all.addEventListener("click", () => fill(to));
    buttons.push(all);
    for (const button of buttons) button.type = "button";
    box.append(label, " ", ...buttons);
    return box;
  }

  // An entry the step removed, where it was (the after side has no node for it).
  ghost(change, inArray) {
    const item = el("div", "jt-node jt-removed");
    item.dataset.path = change.path;
    item.dataset.removed = "true";
    item.setAttribute("role", "treeitem");
    const key = lastToken(change.path);
    const row = el("div", "jt-row", null,
      el("span", "jt-space"),
      el("span", inArray ? "jt-index" : "jt-key", inArray ? key : JSON.stringify(key)),
      el("span", "jt-colon", ": "),
      el("span", "jt-val jt-gone", change.before.text.length > OLD_CHARS ? `${change.before.text.slice(0, OLD_CHARS - 1)}…` : change.before.text),
      el("span", "jt-badge remove", "removed"));
    row.lastChild.title = `was: ${change.before.full ?? change.before.text}`;
    const box = el("span", "jt-actions");
    box.append(copyAction("copy path", "Copy this node's JSON Pointer", () => change.path));
    if (this.onWatch) {
      const watch = el("button", "jt-act", "watch");
      watch.type = "button";
      watch.addEventListener("click", () => this.onWatch(change.path));
      box.append(watch);
    }
    row.append(box);
    item.append(row);
    return item;
  }
}
