// The failures section: the group list and a group's page. Both follow the project's
// websocket, on which every change to a group arrives ({"type": "failure_group", ...}),
// and update in place. Trace strings only ever go in as text.
import { coalesce, liveSocket } from "./live.js";
import { cell, shortId } from "./dom.js";
import { api, fetchRows, getJSON } from "./http.js";
import { timeTitle } from "./format.js";
import { onThemeChange, themed } from "./theme.js";

const STATUS_LABELS = { new: "New", triaged: "Triaged", resolved: "Resolved", ignored: "Ignored" };
const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const UNITS = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

function ago(iso) {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return relative.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

function setTime(el, iso) {
  if (!el || !iso) return;
  el.dateTime = iso;
  el.dataset.relative = "";
  el.title = timeTitle(iso);
  el.textContent = ago(iso);
}

function refreshTimes() {
  document.querySelectorAll("time[datetime][data-relative]").forEach((el) => {
    if (el.getAttribute("datetime")) el.textContent = ago(el.getAttribute("datetime"));
  });
}

function drawSpark(holder, counts) {
  const max = Math.max(1, ...counts);
  const width = 4;
  const gap = 2;
  const height = 22;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", String(counts.length * (width + gap)));
  svg.setAttribute("height", String(height));
  svg.setAttribute("aria-label", `${counts.reduce((a, b) => a + b, 0)} events in the last ${counts.length} days`);
  counts.forEach((n, i) => {
    const rect = document.createElementNS(ns, "rect");
    const h = n ? Math.max(2, Math.round((n / max) * height)) : 1;
    rect.setAttribute("x", String(i * (width + gap)));
    rect.setAttribute("y", String(height - h));
    rect.setAttribute("width", String(width));
    rect.setAttribute("height", String(h));
    rect.setAttribute("class", n ? "bar" : "bar empty");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${n} on day ${i - counts.length + 1 || "today"}`;
    rect.append(title);
    svg.append(rect);
  });
  holder.replaceChildren(svg);
  holder.dataset.counts = counts.join(",");
}

// --- The group list -------------------------------------------------------------------
// Which groups belong under the tab and filters, and how a row looks, is the server's
// call: a changed group's row comes from rows.html (empty when it no longer belongs),
// one request each 250 ms for every group that changed in between.
function listPage(data) {
  const rows = document.getElementById("group-rows");
  const empty = document.getElementById("groups-empty");
  const changed = new Set(); // ids of the groups that changed since the last request
  document.querySelectorAll(".spark").forEach((el) => drawSpark(el, el.dataset.counts.split(",").map(Number)));

  const rowOf = (id) => rows.querySelector(`tr[data-group-id="${CSS.escape(String(id))}"]`);

  function place(tr) {
    const old = rowOf(tr.dataset.groupId);
    const before = old ? Number(old.querySelector('[data-col="count"]').textContent) : null;
    const grew = before == null || Number(tr.querySelector('[data-col="count"]').textContent) > before;
    drawSpark(tr.querySelector(".spark"), tr.querySelector(".spark").dataset.counts.split(",").map(Number));
    tr.querySelectorAll("time[datetime]").forEach((time) => { time.textContent = ago(time.dateTime); });
    if (old && !grew) {
      if (old.classList.contains("fresh")) tr.classList.add("fresh");
      old.replaceWith(tr);
      return;
    }
    old?.remove();
    // Most recently seen first, as the server orders them.
    const seen = tr.querySelector('[data-col="last_seen"]').dateTime;
    const later = [...rows.children].find((row) => row.querySelector('[data-col="last_seen"]').dateTime < seen);
    rows.insertBefore(tr, later || null);
    tr.classList.add("fresh");
  }

  const refresh = coalesce(250, async () => {
    const ids = [...changed];
    changed.clear();
    const url = new URL(data.rows_url, location.href);
    ids.forEach((id) => url.searchParams.append("id", id));
    let fetched;
    try {
      fetched = await fetchRows(url);
    } catch {
      return; // the group's next change asks again
    }
    const belong = new Set(fetched.map((tr) => tr.dataset.groupId));
    for (const id of ids) if (!belong.has(String(id))) rowOf(id)?.remove();
    fetched.forEach(place);
    empty.hidden = rows.children.length > 0;
  });

  function apply(group) {
    if (group.deleted) {
      rowOf(group.id)?.remove();
      empty.hidden = rows.children.length > 0;
      return;
    }
    changed.add(group.id);
    refresh();
  }

  const indicator = document.getElementById("live-indicator");
  liveSocket(data.ws_path, {
    onMessage(message) {
      if (message.type === "failure_group") apply(message.group);
    },
    onState(state) { indicator.hidden = state !== "open"; },
  });
}

// --- A group's page -------------------------------------------------------------------
const VERBS = {
  status_changed: (d) => `changed the status from ${STATUS_LABELS[d.from] || d.from} to ${STATUS_LABELS[d.to] || d.to}`,
  assignee_changed: (d) => d.to ? `assigned it to ${d.to}` + (d.from ? ` (was ${d.from})` : "") : `unassigned ${d.from}`,
  regressed: (d) => `regressed: a new occurrence in run ${d.run} reopened it`,
};

function groupPage(data) {
  const chart = document.getElementById("occurrences");
  const plotConfig = { displayModeBar: false, responsive: true };
  let group = data.group;

  let drawn = null;
  function drawChart(figure) {
    drawn = figure;
    Plotly.react(chart, ...themed(figure.data, figure.layout), plotConfig);
  }
  onThemeChange(() => { if (drawn) drawChart(drawn); });

  function renderRuns(runs, distinct) {
    const body = document.getElementById("affected-runs");
    body.replaceChildren(...runs.map((run) => {
      const tr = document.createElement("tr");
      const link = document.createElement("a");
      link.href = run.url;
      const code = document.createElement("code");
      code.textContent = shortId(run.execution_id);
      code.title = run.execution_id;
      link.append(code);
      const id = document.createElement("td");
      id.append(link);
      const when = document.createElement("td");
      const time = document.createElement("time");
      setTime(time, run.seen_at);
      when.append(time);
      const message = cell(run.message, "err message");
      message.title = run.message;
      tr.append(id, cell(run.graph_name || "—"), cell(run.step_index == null ? "—" : `#${run.step_index}`, "num"), when, message);
      return tr;
    }));
    document.getElementById("runs-note").textContent =
      distinct > runs.length ? `(latest ${runs.length} of ${distinct})` : `(${distinct})`;
  }

  function activityItem(entry) {
    const li = document.createElement("li");
    const who = document.createElement("strong");
    who.textContent = entry.actor || (entry.detail.via ? entry.detail.via : "DashFlow");
    const what = VERBS[entry.verb] ? VERBS[entry.verb](entry.detail) : entry.verb;
    const time = document.createElement("time");
    setTime(time, entry.created_at);
    time.className = "muted";
    li.dataset.verb = entry.verb;
    li.append(who, ` ${what} · `, time);
    return li;
  }

  function addActivity(entries, atTop) {
    const list = document.getElementById("activity");
    const items = entries.map(activityItem);
    if (atTop) list.prepend(...items); else list.append(...items);
    document.getElementById("activity-empty").hidden = list.children.length > 0;
  }

  function applyGroup(next) {
    group = next;
    const badge = document.getElementById("group-status");
    badge.className = `badge group-${group.status}`;
    badge.textContent = STATUS_LABELS[group.status] || group.status;
    const regressed = document.getElementById("group-regressed");
    regressed.hidden = !group.regressed_at || group.status === "resolved";
    setTime(regressed.querySelector("time"), group.regressed_at);
    document.getElementById("stat-count").textContent = String(group.count);
    document.getElementById("group-sample").textContent = group.sample_message;
    setTime(document.getElementById("stat-first"), group.first_seen);
    setTime(document.getElementById("stat-last"), group.last_seen);
    document.getElementById("status-select").value = group.status;
    document.getElementById("assignee-select").value = group.assignee || "";
  }

  const refetch = coalesce(300, async () => {
    let fresh;
    try {
      fresh = await getJSON(data.data_url);
    } catch {
      return; // the group's next change asks again
    }
    applyGroup(fresh.group);
    drawChart(fresh.chart);
    renderRuns(fresh.runs, fresh.distinct_runs);
    document.getElementById("stat-runs").textContent = String(fresh.distinct_runs);
  });

  async function patch(body) {
    const error = document.getElementById("triage-error");
    error.hidden = true;
    try {
      applyGroup(await api("PATCH", data.api_url, body));
    } catch (failure) {
      error.textContent = failure.body?.detail || `failed (${failure.status})`;
      error.hidden = false;
      applyGroup(group);
    }
  }

  drawChart(data.chart);
  renderRuns(data.runs, data.distinct_runs);
  addActivity(data.activity, false);
  if (data.can_edit) {
    document.getElementById("status-select").addEventListener("change", (e) => patch({ status: e.target.value }));
    document.getElementById("assignee-select").addEventListener("change", (e) => patch({ assignee: e.target.value || null }));
    document.getElementById("assign-me").addEventListener("click", () => {
      const me = document.querySelector(".account .who").textContent;
      patch({ assignee: me });
    });
  }

  const indicator = document.getElementById("live-indicator");
  liveSocket(data.ws_path, {
    onMessage(message) {
      if (message.type !== "failure_group" || message.group.id !== group.id) return;
      if (message.group.deleted) {
        document.getElementById("group-sample").textContent = "This group no longer has occurrences and was removed.";
        return;
      }
      const grew = message.group.count !== group.count;
      applyGroup(message.group);
      addActivity(message.activity, true);
      if (grew) refetch();
    },
    onState(state) { indicator.hidden = state !== "open"; },
  });
}

const listData = document.getElementById("failures-data");
const groupData = document.getElementById("group-data");
if (listData) listPage(JSON.parse(listData.textContent));
if (groupData) groupPage(JSON.parse(groupData.textContent));
refreshTimes();
setInterval(refreshTimes, 30000);
