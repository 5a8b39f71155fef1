// The review queue: go through a queue without the mouse. n / k move, a assigns the item
// to me, r marks it reviewed (a group: triaged) and moves on, o or Enter opens it. Each
// change goes through the API and the row is updated in place from its answer; changes
// others make arrive on the project's websocket and update their rows too. Each row's
// API URL is its data-api attribute.
import { liveSocket, coalesce } from "./live.js";
import { api, getJSON } from "./http.js";

const data = JSON.parse(document.getElementById("queue-data").textContent);
const help = document.getElementById("keys-help");
document.getElementById("keys-help-button").addEventListener("click", () => help.showModal());
const rows = () => [...document.querySelectorAll("#queue-rows tr")];
const message = document.getElementById("queue-message");
const LABELS = {
  unreviewed: "Unreviewed", needs_attention: "Needs Attention", reviewed: "Reviewed",
  new: "New", triaged: "Triaged", resolved: "Resolved", ignored: "Ignored",
};
let current = -1;

function say(text, isError = false) {
  message.textContent = text;
  message.classList.toggle("error", isError);
}

function select(index) {
  const all = rows();
  if (!all.length) return;
  current = Math.max(0, Math.min(index, all.length - 1));
  for (const row of all) row.classList.remove("current");
  const row = all[current];
  row.classList.add("current");
  row.focus({ preventScroll: true });
  row.scrollIntoView({ block: "nearest" });
}

function show(row, answer) {
  const status = row.querySelector('[data-col="status"] .badge');
  status.className = `badge review-${answer.status}`;
  status.textContent = LABELS[answer.status] || answer.status;
  row.querySelector('[data-col="assignee"]').textContent = answer.assignee || "—";
  row.classList.toggle("done", ["reviewed", "triaged", "resolved", "ignored"].includes(answer.status));
  row.classList.add("fresh");
  setTimeout(() => row.classList.remove("fresh"), 2000);
}

// The tab counts follow every change, ours or a teammate's: asked again once per burst.
const refreshCounts = coalesce(100, async () => {
  const counts = await getJSON(data.counts_url).catch(() => null);
  if (!counts) return;
  for (const [tab, count] of Object.entries(counts)) {
    const badge = document.querySelector(`.tabs [data-tab="${tab}"] .count`);
    if (badge) badge.textContent = String(count);
  }
});

async function act(change, done) {
  const row = rows()[current];
  if (!row) return;
  if (!data.can_review) { say("Read-only: viewers cannot change reviews.", true); return; }
  try {
    show(row, await api("PATCH", row.dataset.api, change));
    say(done(row));
    refreshCounts();
    return true;
  } catch (error) {
    say(`Could not update: ${error.message}`, true);
    return false;
  }
}

const name = (row) => row.querySelector(".q-title").textContent.trim().replace(/\s+/g, " ");

function assign() {
  return act({ assignee: data.username }, (row) => `Assigned ${name(row)} to you.`);
}

async function markReviewed() {
  const row = rows()[current];
  if (!row) return;
  const change = row.dataset.kind === "group" ? { status: "triaged" } : { status: "reviewed" };
  const verb = row.dataset.kind === "group" ? "triaged" : "reviewed";
  if (await act(change, (r) => `Marked ${name(r)} ${verb}.`)) select(current + 1);
}

function open() {
  const row = rows()[current];
  if (row) location.href = row.dataset.url;
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLTextAreaElement) return;
  if (event.metaKey || event.ctrlKey || event.altKey) return;
  const actions = {
    n: () => select(current + 1), j: () => select(current + 1), ArrowDown: () => select(current + 1),
    k: () => select(current - 1), p: () => select(current - 1), ArrowUp: () => select(current - 1),
    a: assign, r: markReviewed, o: open, Enter: open, "?": () => help.showModal(),
  };
  const action = actions[event.key];
  if (action) { event.preventDefault(); action(); }
});

document.getElementById("queue-rows")?.addEventListener("click", (event) => {
  const row = event.target.closest("tr");
  if (row && !event.target.closest("a")) select(rows().indexOf(row));
});

// Others' changes: review status / assignee of a run, status / assignee of a group. A
// change made while the socket was down shows on reload.
const indicator = document.getElementById("live-indicator");
liveSocket(data.ws_path, {
  onState(state) { if (state !== "open") indicator.hidden = true; },
  onMessage(message) {
    if (message.type === "subscribed") {
      indicator.hidden = false;
      refreshCounts();  // after a reconnect, what changed meanwhile
      return;
    }
    let kind, key, state;
    if (message.type === "review" && message.event === "review_changed") {
      [kind, key, state] = ["run", message.execution_id, message.review];
    } else if (message.type === "failure_group" && message.group && !message.group.deleted) {
      [kind, key, state] = ["group", String(message.group.id), message.group];
    } else return;
    const row = rows().find((r) => r.dataset.kind === kind && r.dataset.key === key);
    if (row) show(row, { status: state.status, assignee: state.assignee });
    refreshCounts();
  },
});
