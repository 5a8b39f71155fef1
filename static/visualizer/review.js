// The run page's review panel: status, assignee, labels, the verdict of the selected
// step, comments (on the run, a step, or a path of the step's state) and the activity
// log, kept live over the run page's one websocket (see "Loading and live updates"). The
// selected step comes from the run page's "dashflow:step" event, or from #step=N&path=/x
// in the URL. The API URLs come from the panel's data-*-url attributes.
//
// One piece at ~420 lines, on purpose: status, verdict, comments and activity read and
// write one `state`, and one load (refetched on each pong, replayed when a live message
// lands mid-load) fills them all; split up, each part would carry that state and cycle.
import { liveSocket } from "./live.js";
import { el } from "./dom.js";
import { api, fill } from "./http.js";
import { localTime } from "./format.js";
import { attachMentions } from "./mentions.js";

const panel = document.getElementById("review-panel");
const me = panel.dataset.username;
const urls = {
  review: panel.dataset.reviewUrl,
  comments: panel.dataset.commentsUrl,
  activity: panel.dataset.activityUrl,
  verdict: (index) => fill(panel.dataset.verdictUrl, { index }),
  comment: (id) => fill(panel.dataset.commentUrl, { id }),
};
const $ = (id) => document.getElementById(id);
// Whom "@" offers in a comment box: the other members (the review answer lists them).
const mentionable = () => state.members.map((m) => m.username).filter((name) => name !== me);

const state = {
  review: null, you: null, members: [],
  verdicts: new Map(), // step index -> verdict
  comments: new Map(), // id -> comment
  activity: new Map(), // id -> entry
  step: null, path: "", scope: "all",
};

function fail(error) {
  const box = $("review-error");
  box.textContent = error.message;
  box.hidden = false;
  setTimeout(() => { box.hidden = true; }, 6000);
}

const canReview = () => Boolean(state.you?.can_review);

function when(iso) {
  return iso ? localTime(iso, "minutes") : "";
}

// --- Review: status, assignee, labels -------------------------------------------------

function renderReview() {
  const review = state.review;
  for (const button of $("review-status").querySelectorAll("button")) {
    button.classList.toggle("on", button.dataset.status === review.status);
    button.disabled = !canReview();
  }
  const select = $("review-assignee");
  select.replaceChildren(new Option("Nobody", ""));
  for (const member of state.members.filter((m) => m.role !== "viewer")) {
    select.append(new Option(member.username, member.username));
  }
  select.value = review.assignee || "";
  select.disabled = !canReview();
  $("assign-me").hidden = !canReview() || review.assignee === me;
  const labels = $("review-labels");
  labels.replaceChildren();
  for (const label of review.labels) {
    const chip = el("span", "label", label);
    if (canReview()) {
      const remove = el("button", "chip-x", "×");
      remove.type = "button";
      remove.title = `Remove ${label}`;
      remove.addEventListener("click", () => patchReview({ labels: review.labels.filter((l) => l !== label) }));
      chip.append(remove);
    }
    labels.append(chip);
  }
  if (!review.labels.length) labels.append(el("span", "muted", "none"));
  $("label-form").hidden = !canReview();
}

async function patchReview(change) {
  try {
    const answer = await api("PATCH", urls.review, change);
    applyReview(answer);
  } catch (error) { fail(error); }
}

function applyReview(answer) {
  state.review = answer;
  if (answer.verdicts) {
    state.verdicts = new Map(answer.verdicts.map((v) => [v.step_index, v]));
    renderVerdict();
  }
  renderReview();
}

$("review-status").addEventListener("click", (event) => {
  const status = event.target.closest("button")?.dataset.status;
  if (status && status !== state.review.status) patchReview({ status });
});
$("review-assignee").addEventListener("change", (event) => patchReview({ assignee: event.target.value || null }));
$("assign-me").addEventListener("click", () => patchReview({ assignee: me }));
$("label-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("label-input");
  const label = input.value.trim();
  if (!label) return;
  input.value = "";
  patchReview({ labels: [...state.review.labels, label] });
});

// --- The selected step and its verdict ------------------------------------------------

function renderVerdict() {
  const step = state.step;
  $("verdict-none").hidden = step != null;
  $("verdict-controls").hidden = step == null;
  if (step == null) { $("verdict-step").textContent = "the selected step"; return; }
  $("verdict-step").textContent = `step #${step}`;
  const verdict = state.verdicts.get(step);
  for (const button of $("verdict-controls").querySelectorAll("button")) {
    button.disabled = !canReview();
    if (button.dataset.verdict) button.classList.toggle("on", verdict?.verdict === button.dataset.verdict);
  }
  $("verdict-clear").hidden = !verdict;
  const reason = $("verdict-reason");
  if (document.activeElement !== reason) reason.value = verdict?.reason || "";
  reason.disabled = !canReview();
  $("verdict-current").textContent = verdict
    ? `${verdict.verdict === "good" ? "Good" : "Bad"}${verdict.user ? ` · ${verdict.user}` : ""} · ${when(verdict.updated_at)}`
    : "No verdict yet.";
}

async function putVerdict(verdict) {
  const step = state.step;
  try {
    const answer = await api("PUT", urls.verdict(step), { verdict, reason: $("verdict-reason").value });
    state.verdicts.set(step, answer);
    renderVerdict();
  } catch (error) { fail(error); }
  loading = false;
  if (stale) load();
}

$("verdict-controls").addEventListener("click", async (event) => {
  const button = event.target.closest("button");
  if (!button || state.step == null) return;
  if (button.dataset.verdict) putVerdict(button.dataset.verdict);
  else if (button.id === "verdict-clear") {
    try {
      await api("DELETE", urls.verdict(state.step));
      state.verdicts.delete(state.step);
      renderVerdict();
    } catch (error) { fail(error); }
  }
});
$("verdict-reason").addEventListener("keydown", (event) => {
  const verdict = state.verdicts.get(state.step);
  if (event.key === "Enter" && verdict) { event.preventDefault(); putVerdict(verdict.verdict); }
});

function setSelection(step, path) {
  state.step = step;
  state.path = step == null ? "" : path || "";
  renderVerdict();
  renderTargets();
  renderComments();
}

function fromHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const step = params.get("step");
  setSelection(step != null && /^\d+$/.test(step) ? Number(step) : null, params.get("path") || "");
}
document.addEventListener("dashflow:step", (event) => {
  const { index, path } = event.detail || {};
  setSelection(index == null ? null : Number(index), path || "");
});
window.addEventListener("hashchange", fromHash);
// The run page moves the selection with history.replaceState, which fires no hashchange:
// look at the hash after each click or key until a "dashflow:step" event says it.
let lastHash = location.hash;
function followHash() {
  setTimeout(() => {
    if (location.hash === lastHash) return;
    lastHash = location.hash;
    fromHash();
  }, 0);
}
document.addEventListener("click", followHash);
document.addEventListener("keyup", followHash);

// --- Comments --------------------------------------------------------------------------

function renderTargets() {
  const select = $("comment-target");
  const previous = select.value;
  select.replaceChildren(new Option("the run", "run"));
  if (state.step != null) select.append(new Option(`step #${state.step}`, "step"));
  if (state.step != null && state.path) select.append(new Option(`step #${state.step} · ${state.path}`, "path"));
  // The most specific place is the default: a selected path, else the step.
  const options = [...select.options].map((o) => o.value);
  select.value = options.includes(previous) && previous !== "run" ? previous : options[options.length - 1];
}

function visible(comment) {
  if (state.scope === "step") return state.step != null && comment.step_index === state.step;
  if (state.scope === "path") return state.step != null && comment.step_index === state.step && comment.path === state.path;
  return true;
}

function where(comment) {
  if (comment.step_index == null && comment.step_position == null) return null;
  const link = el("a", "where", comment.path ? `#${comment.step_index} ${comment.path}` : `step #${comment.step_index}`);
  const hash = `#step=${comment.step_index}${comment.path ? `&path=${comment.path}` : ""}`;
  link.href = hash;
  return link;
}

function renderComment(comment) {
  const li = el("li", "comment");
  li.dataset.id = comment.id;
  const head = el("div", "comment-head");
  head.append(el("strong", null, comment.author || "API key"));
  const place = where(comment);
  if (place) head.append(el("span", "muted", " on "), place);
  head.append(el("span", "muted", ` · ${when(comment.created_at)}${comment.edited_at ? " · edited" : ""}`));
  const mine = comment.author === me;
  if (canReview() && (mine || state.you?.is_admin)) {
    head.append(el("span", "spacer"));
    if (mine) {
      const edit = el("button", "link-button", "edit");
      edit.type = "button";
      edit.addEventListener("click", () => editComment(li, comment));
      head.append(edit);
    }
    const remove = el("button", "link-button", "delete");
    remove.type = "button";
    remove.addEventListener("click", () => deleteComment(comment));
    head.append(remove);
  }
  const body = el("div", "comment-body");
  // The server rendered this markdown with raw HTML off and sanitized it (nh3).
  body.innerHTML = comment.html;
  li.append(head, body);
  return li;
}

function renderComments() {
  const list = $("comments");
  const shown = [...state.comments.values()].filter(visible).sort((a, b) => a.id - b.id);
  list.replaceChildren(...shown.map(renderComment));
  $("comments-empty").hidden = shown.length > 0;
  $("comments-empty").textContent = state.comments.size ? "No comments here." : "No comments yet.";
  $("comment-count").textContent = state.comments.size ? String(state.comments.size) : "";
  $("comment-form").hidden = !canReview();
}

function editComment(li, comment) {
  const form = el("form", "comment-form");
  const text = el("textarea");
  text.rows = 3;
  text.value = comment.body;
  const save = el("button", "primary small", "Save");
  save.type = "submit";
  const cancel = el("button", "nav", "Cancel");
  cancel.type = "button";
  cancel.addEventListener("click", renderComments);
  const row = el("div", "inline");
  row.append(el("span", "spacer"), cancel, save);
  form.append(text, row);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const answer = await api("PATCH", urls.comment(comment.id), { body: text.value });
      state.comments.set(answer.id, answer);
      renderComments();
    } catch (error) { fail(error); }
  });
  li.querySelector(".comment-body").replaceWith(form);
  attachMentions(text, mentionable);
  text.focus();
}

async function deleteComment(comment) {
  if (!confirm("Delete this comment?")) return;
  try {
    await api("DELETE", urls.comment(comment.id));
    state.comments.delete(comment.id);
    renderComments();
  } catch (error) { fail(error); }
}

async function postComment() {
  const body = $("comment-body");
  if (!body.value.trim()) return;
  const target = $("comment-target").value;
  const payload = { body: body.value };
  if (target !== "run" && state.step != null) payload.step = state.step;
  if (target === "path") payload.path = state.path;
  try {
    const answer = await api("POST", urls.comments, payload);
    body.value = "";
    state.comments.set(answer.id, answer);
    renderComments();
  } catch (error) { fail(error); }
}

attachMentions($("comment-body"), mentionable);
$("comment-form").addEventListener("submit", (event) => { event.preventDefault(); postComment(); });
$("comment-body").addEventListener("keydown", (event) => {
  // Keys typed here are text, not the run page's shortcuts (j, k, e, ...).
  event.stopPropagation();
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); postComment(); }
});
for (const id of ["label-input", "verdict-reason"]) $(id).addEventListener("keydown", (event) => event.stopPropagation());
$("comment-scope").addEventListener("click", (event) => {
  const scope = event.target.closest("button")?.dataset.scope;
  if (!scope) return;
  state.scope = scope;
  for (const button of $("comment-scope").querySelectorAll("button")) button.classList.toggle("on", button.dataset.scope === scope);
  renderComments();
});

// --- Activity --------------------------------------------------------------------------

const DESCRIBE = {
  status_changed: (d) => `changed the status from ${d.from} to ${d.to}`.replaceAll("_", " "),
  assigned: (d) => (d.to ? `assigned it to ${d.to}` : `unassigned ${d.from}`) + (d.from && d.to ? ` (was ${d.from})` : ""),
  labels_changed: (d) => [d.added.length ? `added ${d.added.join(", ")}` : "", d.removed.length ? `removed ${d.removed.join(", ")}` : ""].filter(Boolean).join(" and ") || "changed the labels",
  verdict_set: (d) => `marked step #${d.step} ${d.node} ${d.to}${d.reason ? `: ${d.reason}` : ""}`,
  verdict_cleared: (d) => `cleared the verdict on step #${d.step} ${d.node}`,
  commented: (d) => `commented${d.step != null ? ` on step #${d.step}${d.path ? ` ${d.path}` : ""}` : ""}: ${d.excerpt}`,
  comment_edited: (d) => `edited a comment: ${d.excerpt}`,
  comment_deleted: (d) => `deleted a comment: ${d.excerpt}`,
};

function renderActivity() {
  const entries = [...state.activity.values()].sort((a, b) => b.id - a.id).slice(0, 100);
  $("activity").replaceChildren(...entries.map((entry) => {
    const li = el("li");
    const describe = DESCRIBE[entry.verb];
    li.append(el("strong", null, entry.actor || "someone"), el("span", null, ` ${describe ? describe(entry.detail) : entry.verb}`), el("span", "muted", ` · ${when(entry.created_at)}`));
    return li;
  }));
  $("activity-empty").hidden = entries.length > 0;
}

// --- Loading and live updates -----------------------------------------------------------

let loading = false;
let stale = false; // a review message arrived while loading: the snapshot may be older

async function load() {
  if (loading) { stale = true; return; }
  loading = true;
  stale = false;
  try {
    const [review, comments, activity] = await Promise.all([
      api("GET", urls.review),
      api("GET", urls.comments),
      api("GET", urls.activity),
    ]);
    state.you = review.you;
    state.members = review.members;
    $("review-readonly").hidden = canReview();
    applyReview(review);
    state.comments = new Map(comments.map((c) => [c.id, c]));
    state.activity = new Map(activity.map((a) => [a.id, a]));
    renderComments();
    renderActivity();
    renderVerdict();
  } catch (error) { fail(error); }
  loading = false;
  if (stale) load();
}

function onReview(message) {
  if (loading) stale = true;
  for (const entry of message.activity || []) state.activity.set(entry.id, entry);
  if (message.event === "review_changed") {
    state.review = { ...state.review, ...message.review };
    renderReview();
  } else if (message.event === "verdict_changed") {
    const v = message.verdict;
    if (v.verdict) state.verdicts.set(v.step_index, v);
    else state.verdicts.delete(v.step_index);
    renderVerdict();
  } else if (message.event === "comment_added" || message.event === "comment_edited") {
    state.comments.set(message.comment.id, message.comment);
    renderComments();
  } else if (message.event === "comment_deleted") {
    state.comments.delete(message.comment.id);
    renderComments();
  }
  renderActivity();
}

// Live: the run page's socket (one per page; live.js hands this module the one run.js
// opened), whose seq-less "review" messages carry every change. The socket opens before
// the server has joined the run's group; the server answers a ping only after that, so the
// review is (re)fetched on the pong, after each (re)connect: subscribe, then fetch.
function follow() {
  const socket = liveSocket(panel.dataset.wsPath, {
    onMessage(message) {
      if (message.type === "pong") { $("review-live").hidden = false; load(); }
      else if (message.type === "review") onReview(message);
    },
    onState(state) {
      if (state === "open") socket.send({ type: "ping" });
      else $("review-live").hidden = true;
    },
  });
}

// The run page may have announced its first selection before this module ran.
const announced = document.documentElement.dataset.selection;
if (announced) {
  const { index, path } = JSON.parse(announced);
  setSelection(index == null ? null : Number(index), path || "");
} else {
  fromHash();
}
load();
follow();
