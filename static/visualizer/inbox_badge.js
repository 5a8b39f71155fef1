// The navigation's inbox badge: the unread count, updated when an item arrives on the
// project's socket (the server relays an item only to its own user).
import { liveSocket } from "./live.js";

const link = document.getElementById("inbox-link");
const badge = document.getElementById("inbox-unread");
if (link && badge) {
  liveSocket(link.dataset.wsPath, {
    onMessage(message) {
      if (message.type !== "inbox") return;
      badge.textContent = String(message.unread);
      badge.hidden = message.unread === 0;
      document.dispatchEvent(new CustomEvent("inbox-item", { detail: message }));
    },
  });
}
