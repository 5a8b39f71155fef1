// The navigation's inbox badge: the unread count, updated when an item arrives on the
// project's socket or items are marked read on another page (the server relays both only
// to their own user).
import { liveSocket } from "./live.js";

const link = document.getElementById("inbox-link");
const badge = document.getElementById("inbox-unread");
if (link && badge) {
  liveSocket(link.dataset.wsPath, {
    onMessage(message) {
      // "inbox": a new item; "inbox_unread": items marked read on another page.
      if (message.type !== "inbox" && message.type !== "inbox_unread") return;
      badge.textContent = String(message.unread);
      badge.hidden = message.unread === 0;
      if (message.type === "inbox") {
        document.dispatchEvent(new CustomEvent("inbox-item", { detail: message }));
      }
    },
  });
}
