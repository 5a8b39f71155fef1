// Requests from the page scripts: JSON to and from the API (with Django's CSRF token on
// every write), server-rendered rows, and the URL templates the pages hand over.

// Every signed-in page has a form with the token (base.html's sign-out form).
export function csrfToken() {
  return document.querySelector("[name=csrfmiddlewaretoken]")?.value || "";
}

// An answer that was not 2xx: `message` is the API's `detail`, `body` the whole answer.
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// `method` `url` with `body` as JSON; the answer's JSON (null for 204), or an ApiError.
export async function api(method, url, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") init.headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const answer = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

export const getJSON = (url) => api("GET", url);

// `url`'s JSON with each number that a JS number would say differently (1.0, a 64-bit
// id) kept as its own text (JSON.rawJSON, which JSON.stringify writes back as it was):
// for states shown as they were stored (jsontree.js).
// The reviver looks at numbers only (typeof first): it costs 3 ms on a 2 MB answer.
const exact = typeof JSON.rawJSON === "function"
  ? (key, value, context) => (typeof value !== "number" || context.source === String(value) ? value : JSON.rawJSON(context.source))
  : undefined;
export async function getExactJSON(url) {
  return JSON.parse(await getText(url), exact);
}

// Rows the server rendered with the page's own template (rows.html): the elements, to put
// in place of or beside the page's rows. Django escaped every trace string in them.
export async function fetchRows(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } });
  if (!response.ok) throw new ApiError(response.status, null);
  const template = document.createElement("template");
  template.innerHTML = await response.text();
  return [...template.content.children];
}

// A URL template from the page ("/…/steps/{index}.json") with its blanks filled in.
export function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(String(values[name])));
}

// `url`'s answer as text (such as a run as Markdown), or an ApiError with the JSON detail.
export async function getText(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return response.text();
}
