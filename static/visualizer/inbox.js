// The inbox page: when an item arrives (the nav's badge script re-dispatches it from the
// project socket as "inbox-item"), the rows are fetched again as the server renders them.
// The page shares the badge's socket; data-live on the rows says it has subscribed.
import { liveSocket } from "./live.js";
import { fetchRows } from "./http.js";

const body = document.getElementById("inbox-items");
const link = document.getElementById("inbox-link");
let pending = null;

async function refresh() {
  body.replaceChildren(...(await fetchRows(body.dataset.rowsUrl)));
}

document.addEventListener("inbox-item", () => {
  // A burst of items (an alert for everyone, a comment mentioning several) is one fetch.
  pending ??= refresh().finally(() => { pending = null; });
});

if (link) {
  liveSocket(link.dataset.wsPath, {
    onMessage(message) {
      if (message.type !== "subscribed") return;
      // Subscribed again after a drop: what arrived meanwhile is read from the server.
      if (body.dataset.subscribed) refresh();
      body.dataset.subscribed = "1";
      body.dataset.live = "1";
    },
    onState(state) {
      if (state === "closed") delete body.dataset.live;
    },
  });
}
