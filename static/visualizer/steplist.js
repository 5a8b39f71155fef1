// The run page's list of node executions, virtualized: a run can have 100,000 steps, so
// only the rows in view (and a few either side) are in the DOM. Two padding bodies above
// and below them are as tall as the rows left out, so the scrollbar is true to the whole
// list and the sticky header stays put. The compare page lists its aligned rows with it
// too (compare.js overrides `row` and `countText`).
import { cell, el } from "./dom.js";
import { duration, number } from "./format.js";

const OVERSCAN = 10;

export class StepList {
  constructor({ scroller, table, above, body, below, count, onPick }) {
    Object.assign(this, { scroller, table, above, body, below, count, onPick });
    this.steps = []; // every step, in execution order
    this.byIndex = new Map();
    this.shown = this.steps; // the steps the search matches (all of them without one)
    this.shownAt = null; // index -> position in `shown`, built when first needed
    this.needle = "";
    this.selected = null;
    this.rowHeight = 0;
    this.frame = 0;
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    body.addEventListener("click", (event) => {
      const row = event.target.closest("tr");
      if (row) onPick(Number(row.dataset.index));
    });
  }

  // Steps arrive in execution order (the page data, then live events); one that arrives
  // late is put in its place.
  add(step) {
    if (this.byIndex.has(step.index)) return false;
    this.byIndex.set(step.index, step);
    const last = this.steps[this.steps.length - 1];
    if (!last || step.index > last.index) this.steps.push(step);
    else {
      let lo = 0, hi = this.steps.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (this.steps[mid].index < step.index) lo = mid + 1; else hi = mid;
      }
      this.steps.splice(lo, 0, step);
    }
    if (this.needle) {
      const at = this.steps.lastIndexOf(step);
      if (this.matches(step, this.steps[at - 1])) this.search(this.needle);
    } else this.shownAt = null;
    this.schedule();
    return true;
  }

  // `#12` one step; `node:name` a node's steps (a chart's node or bar); `edge:a>b` the
  // steps of b that came right after a (a graph's edge); else text in node, error, tools.
  matches(step, previous) {
    if (!this.needle) return true;
    if (this.needle.startsWith("#")) return String(step.index) === this.needle.slice(1);
    if (this.needle.startsWith("node:")) return step.node.toLowerCase() === this.needle.slice(5);
    if (this.needle.startsWith("edge:")) {
      const [from, to] = this.needle.slice(5).split(">");
      return step.node.toLowerCase() === to && previous?.node.toLowerCase() === from;
    }
    const text = `${step.node}\n${step.error_message || ""}\n${(step.tools_called || []).join("\n")}`;
    return text.toLowerCase().includes(this.needle);
  }

  search(text) {
    this.needle = text.trim().toLowerCase();
    this.shown = this.needle ? this.steps.filter((s, i) => this.matches(s, this.steps[i - 1])) : this.steps;
    this.shownAt = null;
    this.scroller.scrollTop = 0;
    this.render();
  }

  positionOf(index) {
    if (!this.shownAt) this.shownAt = new Map(this.shown.map((s, i) => [s.index, i]));
    return this.shownAt.get(index);
  }

  // Selects a step and brings its row into view: the next row along (j / k) scrolls by a
  // row, a jump elsewhere centres it.
  select(index) {
    this.selected = index;
    const at = this.positionOf(index);
    if (at != null && this.rowHeight) {
      const head = this.table.tHead.offsetHeight;
      const top = head + at * this.rowHeight;
      const view = this.scroller;
      const visibleTop = view.scrollTop + head;
      const visibleBottom = view.scrollTop + view.clientHeight;
      if (top < visibleTop - this.rowHeight || top > visibleBottom) {
        view.scrollTop = top - head - (view.clientHeight - head) / 2;
      } else if (top < visibleTop) view.scrollTop = top - head;
      else if (top + this.rowHeight > visibleBottom) view.scrollTop = top + this.rowHeight - view.clientHeight;
    }
    this.render();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  row(step) {
    const tr = document.createElement("tr");
    tr.dataset.index = step.index;
    tr.dataset.success = String(step.success);
    if (step.index === this.selected) tr.className = "selected";
    const outcome = document.createElement("td");
    outcome.append(el("span", `badge ${step.success ? "completed" : "failed"}`, step.success ? "ok" : "failed"));
    const error = cell(step.error_message || "", "err");
    if (step.error_message) error.title = step.error_message;
    const node = cell(step.node, "node-name");
    node.title = step.node;
    tr.append(
      cell(String(step.index), "num"),
      node,
      outcome,
      cell(duration(step.duration_ms), "num"),
      cell(String(step.tokens_used), "num"),
      error,
    );
    return tr;
  }

  render() {
    const total = this.shown.length;
    if (!this.rowHeight && total) {
      // Rows are one line high (CSS); measure one rather than trusting a constant.
      this.body.replaceChildren(this.row(this.shown[0]));
      this.rowHeight = this.body.rows[0].getBoundingClientRect().height || 31;
    }
    const rowHeight = this.rowHeight || 31;
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / rowHeight) - OVERSCAN);
    const last = Math.min(total, first + Math.ceil(this.scroller.clientHeight / rowHeight) + 2 * OVERSCAN);
    this.above.style.height = `${first * rowHeight}px`;
    this.below.style.height = `${(total - last) * rowHeight}px`;
    const rows = [];
    for (let i = first; i < last; i++) rows.push(this.row(this.shown[i]));
    this.body.replaceChildren(...rows);
    this.count.textContent = this.countText(total);
  }

  countText(total) {
    return this.needle
      ? `${number(total)} of ${number(this.steps.length)} match`
      : `${number(this.steps.length)} step${this.steps.length === 1 ? "" : "s"}`;
  }

  // The step `delta` places from the selection among the shown steps (clamped), or the
  // first (last) shown step when the selection is not among them.
  step(delta) {
    if (!this.shown.length) return null;
    const at = this.selected == null ? undefined : this.positionOf(this.selected);
    if (at == null) return (delta > 0 ? this.shown[0] : this.shown[this.shown.length - 1]).index;
    return this.shown[Math.min(Math.max(at + delta, 0), this.shown.length - 1)].index;
  }

  // The next failed step after the selection among the shown steps, wrapping around.
  nextFailed() {
    const failed = this.shown.filter((s) => !s.success);
    if (!failed.length) return null;
    return (failed.find((s) => this.selected == null || s.index > this.selected) ?? failed[0]).index;
  }
}
