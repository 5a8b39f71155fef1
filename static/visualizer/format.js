// One way to write numbers, durations and times on every page (the server side is
// visualizer/templatetags/units.py, with the same rules; tests/visualizer/test_units.py
// runs both over the same values):
// - numbers with thousands separators: 1,073,630;
// - durations in the unit that reads best: 850 ms, 1.23 s, 12.3 s, 14 min 55 s, 2 h 5 min;
// - times in the reader's own timezone, 24-hour, "2026-12-05 14:03:07", the zone named in
//   the top bar and in each time's tooltip. The server writes every time as
//   <time datetime="ISO">UTC text</time>; this module rewrites them, also those added later.
//   A <span data-since="ISO"> shows the time elapsed since then, ticking each second.

export function number(n) {
  return Number(n).toLocaleString("en-US");
}

export function duration(ms) {
  ms = Math.max(0, Math.round(Number(ms)));
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? `${number(h)} h ${m} min` : `${m} min ${s % 60} s`;
}

const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const pad = (n) => String(n).padStart(2, "0");

function offset(date) {
  const minutes = -date.getTimezoneOffset();
  const sign = minutes < 0 ? "-" : "+";
  return `UTC${sign}${pad(Math.floor(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
}

// `iso` in the reader's timezone: "seconds" (default) 2026-12-05 14:03:07, "minutes"
// 2026-12-05 14:03, "short" 12-05 14:03.
export function localTime(iso, style = "seconds") {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const minutes = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
  if (style === "short") return `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${minutes}`;
  if (style === "minutes") return `${day} ${minutes}`;
  return `${day} ${minutes}:${pad(date.getSeconds())}`;
}

export function timeTitle(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : `${localTime(iso)} ${zone} (${offset(date)})`;
}

function localize(root) {
  const times = root.matches?.("time[datetime]") ? [root] : root.querySelectorAll?.("time[datetime]") ?? [];
  for (const time of times) {
    if (time.dataset.localized === time.dateTime) continue;
    if ("relative" in time.dataset) {
      // "3 min ago" stays as its page writes it; the tooltip gives the local time.
      time.title = timeTitle(time.dateTime);
      continue;
    }
    const text = localTime(time.dateTime, time.dataset.style);
    if (!text) continue;
    time.textContent = text;
    time.title = timeTitle(time.dateTime);
    time.dataset.localized = time.dateTime;
  }
  tickElapsed(root);
}

function tickElapsed(root = document) {
  const spans = root.matches?.("[data-since]") ? [root] : root.querySelectorAll?.("[data-since]") ?? [];
  for (const span of spans) {
    const since = Date.parse(span.dataset.since);
    if (!Number.isNaN(since)) span.textContent = duration(Date.now() - since);
  }
}

// In a page (not when a test imports the rules into node).
if (typeof document !== "undefined") {
  localize(document);
  const label = document.getElementById("timezone");
  if (label) {
    label.textContent = `times in ${zone}`;
    label.title = `Every time is shown in your timezone, ${zone} (${offset(new Date())})`;
  }
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) if (node.nodeType === 1) localize(node);
  }).observe(document.body, { childList: true, subtree: true });
  setInterval(() => tickElapsed(), 1000);
}
