// The run list, live. Rows on the page update in place from the project's websocket.
// Which new runs belong on the page is the server's call (the filters are the server's):
// when a run we have not seen changes, the script asks the API for the newest runs under
// the page's filters. On the first page in the default order (newest first) the new ones
// go on top, in the API's order; on any other page or order, inserting would break
// the order, so a notice counts them ("3 new runs — Refresh"). "Follow live" off holds
// everything until it is turned on again. A row is rendered by the server only
// (_run_row.html): a new or changed run's row is fetched from rows.html, at most one
// request each 250 ms for every run that changed in between.
import { coalesce, liveSocket } from "./live.js";
import { fetchRows, getJSON } from "./http.js";

const data = JSON.parse(document.getElementById("runs-data").textContent);
const rows = document.getElementById("run-rows");
const follow = document.getElementById("follow");
const notice = document.getElementById("new-runs");
const noticeText = document.getElementById("new-runs-text");
const form = document.getElementById("run-filters");
const pending = [];
// Runs this page knows: its rows, and on other pages the newest runs when it rendered.
const known = new Set([
  ...[...rows.querySelectorAll("tr[data-execution-id]")].map((tr) => tr.dataset.executionId),
  ...data.head_ids,
]);
const fresh = new Set();
const changed = new Set(); // runs on the page whose row is to be fetched again

function rowOf(id) {
  return rows.querySelector(`tr[data-execution-id="${CSS.escape(id)}"]`);
}

function rowsUrl(ids) {
  const url = new URL(data.rows_url, location.href);
  for (const id of ids) url.searchParams.append("id", id);
  return url;
}

const refreshRows = coalesce(250, async () => {
  const ids = [...changed];
  changed.clear();
  let fetched;
  try {
    fetched = await fetchRows(rowsUrl(ids));
  } catch {
    return; // the run's next change asks again
  }
  for (const tr of fetched) {
    const old = rowOf(tr.dataset.executionId);
    if (!old) continue;
    if (old.classList.contains("fresh")) tr.classList.add("fresh");
    if (old.querySelector("input.compare-pick")?.checked) tr.querySelector("input.compare-pick").checked = true;
    old.replaceWith(tr);
  }
});

function scheduleRow(id) {
  changed.add(id);
  refreshRows();
}

// The newest matching runs, in the API's order, go on top: those before the first run the
// page already shows (the API returns at most a page, so a page never more than doubles).
async function merge(results) {
  const ids = [];
  for (const run of results) {
    if (rowOf(run.execution_id)) break;
    ids.push(run.execution_id);
  }
  if (!ids.length) return;
  const fetched = await fetchRows(rowsUrl(ids));
  const top = rows.querySelector("tr[data-execution-id]");
  for (const tr of fetched) {
    const id = tr.dataset.executionId;
    if (rowOf(id)) continue;
    if (top) top.before(tr);
    else rows.append(tr);
    tr.classList.add("fresh");
    known.add(id);
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

const scheduleCheck = coalesce(250, async () => {
  try {
    const { results } = await getJSON(data.head_url);
    if (data.is_head) {
      await merge(results);
    } else {
      count(results);
    }
  } catch {
    // the next change asks again
  }
});

function apply(run) {
  if (rowOf(run.execution_id)) scheduleRow(run.execution_id);
  else if (!known.has(run.execution_id)) scheduleCheck();
}

// While paused, the label counts the changes waiting: the list is still live, only held.
const waiting = document.getElementById("follow-waiting");
function showWaiting() {
  waiting.hidden = pending.length === 0;
  waiting.textContent = `${pending.length} ${pending.length === 1 ? "update" : "updates"} waiting`;
}
follow.addEventListener("change", () => {
  if (follow.checked) pending.splice(0).forEach(apply);
  showWaiting();
});

// Only the fields that are set go into the URL: a short link to share.
form?.addEventListener("submit", () => {
  for (const el of form.elements) if (el.name && !el.value) el.disabled = true;
});
window.addEventListener("pageshow", () => {
  for (const el of form?.elements ?? []) el.disabled = false;
});

// Pushes are lost while the channel layer is down (live.js): every live_check_ms, and when
// the socket opens again, the rows of running runs are fetched again and the newest runs
// asked for, as if each had changed.
function check() {
  if (!follow.checked) return;
  for (const badge of rows.querySelectorAll("tr[data-execution-id] .badge.running")) {
    scheduleRow(badge.closest("tr").dataset.executionId);
  }
  scheduleCheck();
}

const indicator = document.getElementById("live-indicator");
liveSocket(data.ws_path, {
  checkEvery: data.live_check_ms,
  onCheck: check,
  onMessage(message) {
    if (message.type === "subscribed") {
      // Subscribed first, then look: anything started since the page rendered shows up.
      // "● live" shows from here, not from the socket's open: only now is nothing missed.
      indicator.hidden = false;
      scheduleCheck();
      return;
    }
    if (message.type !== "run_summary") return;
    if (follow.checked) apply(message.run);
    else {
      pending.push(message.run);
      showWaiting();
    }
  },
  onState(state) { if (state !== "open") indicator.hidden = true; },
});

// "Compare selected": two runs ticked in the list open the compare page, the older as a.
const compareButton = document.getElementById("compare-selected");
function picked() {
  return [...rows.querySelectorAll("input.compare-pick:checked")];
}
rows.addEventListener("change", (event) => {
  if (!event.target.classList?.contains("compare-pick")) return;
  compareButton.disabled = picked().length !== 2;
});
compareButton.addEventListener("click", () => {
  const [newer, older] = picked().map((box) => box.value);
  const url = new URL(data.compare_url, location.href);
  url.searchParams.set("a", older);
  url.searchParams.set("b", newer);
  location.assign(url);
});
