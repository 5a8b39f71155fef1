// The page's websocket: every page opens its one socket through here. It reconnects with
// backoff and resumes where it left off (?after=<last seq seen>), drops any seq it has
// already delivered, acknowledges what it delivered, and stops on the close codes that
// say "not allowed" or "too far behind" (the page reloads instead), and waits long on the
// one that says "too many sockets open" (4429).
//
// One socket per path: a second liveSocket() call for the same path (the run page's
// review panel, the navigation's inbox badge) gets the same socket and adds its callbacks
// to it; a page may also open another path (the badge's project socket on the run page).
// onEvent(event) gets each live event ({seq, type, data}) once, in order received;
// onMessage(message) each message without a seq; onState("open" | "closed", code) the
// connection's state, "open" at once when it is open already. A project socket's
// {"type": "subscribed"} message reaches a listener that joins after it arrived too (the
// navigation's badge may open the socket before the page's own script has loaded).
//
// Pushes are lost while the server's channel layer (Redis) is down, with the socket open
// or not; a run that ended then would look live until a reload. So onCheck() is called
// every `checkEvery` ms (the page's live_check_ms) and each time the socket opens again
// after a close: the page asks the server whether it missed anything (the run page sends
// {"type": "sync"}, and the server replays from the database; the run list fetches its
// running rows again).

const sockets = new Map();

export function liveSocket(path, { after = 0, checkEvery = 0, onEvent, onMessage, onState, onCheck } = {}) {
  if (!sockets.has(path)) sockets.set(path, open(path, after));
  const socket = sockets.get(path);
  socket.listen({ onEvent, onMessage, onState, onCheck }, checkEvery);
  return socket;
}

function open(path, after) {
  const listeners = { onEvent: [], onMessage: [], onState: [], onCheck: [] };
  const emit = (kind, ...args) => listeners[kind].forEach((fn) => fn(...args));
  let lastSeq = after;
  let ackSeq = after; // the highest seq received on this connection: what an ack names
  const seen = new Set();
  let socket = null;
  let delay = 500;
  let stopped = false;
  let unacked = 0;
  let unackedBytes = 0;
  let ackTimer = null;
  let opened = false;
  let checkTimer = null;
  let subscribed = null; // this connection's "subscribed" message, for late listeners

  // Acknowledge what was processed, so the server keeps sending: it replays only so many
  // bytes (WS_MAX_PENDING_BYTES) ahead of the acks, and tells a client that far behind
  // when live events come to resync. Every 50 events or 1 MB, or half a second after one.
  function ack() {
    clearTimeout(ackTimer);
    ackTimer = null;
    unacked = 0;
    unackedBytes = 0;
    send({ type: "ack", seq: ackSeq });
  }

  function send(message) {
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function url() {
    const sep = path.includes("?") ? "&" : "?";
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}${path}${sep}after=${lastSeq}`;
  }

  function connect() {
    socket = new WebSocket(url());
    ackSeq = lastSeq;
    subscribed = null;
    socket.onopen = () => {
      delay = 500;
      emit("onState", "open");
      if (opened) emit("onCheck"); // open again: what happened while it was closed?
      opened = true;
    };
    socket.onmessage = (message) => {
      const parsed = JSON.parse(message.data);
      let events = 0;
      // A frame is one message, or an array of events (one ingested batch, or a replay).
      for (const data of Array.isArray(parsed) ? parsed : [parsed]) {
        if (typeof data.seq === "number") {
          events += 1;
          ackSeq = Math.max(ackSeq, data.seq);
          if (data.seq <= after || seen.has(data.seq)) continue;
          seen.add(data.seq);
          // Resume after the highest contiguous seq: a gap is refilled on reconnect.
          while (seen.has(lastSeq + 1)) lastSeq += 1;
          emit("onEvent", data);
        } else {
          if (data.type === "subscribed") subscribed = data;
          emit("onMessage", data);
        }
      }
      if (!events) return;
      unacked += events;
      unackedBytes += message.data.length;
      if (unacked >= 50 || unackedBytes >= 1048576) ack();
      else if (!ackTimer) ackTimer = setTimeout(ack, 500);
    };
    socket.onclose = (event) => {
      subscribed = null;
      emit("onState", "closed", event.code);
      // 4400/4401/4403: not allowed; 4409: too far behind, the page reloads instead.
      if (stopped || [4400, 4401, 4403, 4409].includes(event.code)) return;
      // 1013: the server's channel layer is down (it sent what it had); not before 5 s.
      if (event.code === 1013) delay = Math.max(delay, 5000);
      // 4429: this user has too many sockets open (other tabs); try again, slowly.
      if (event.code === 4429) delay = Math.max(delay, 30000);
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, event.code === 4429 ? 120000 : 10000);
    };
  }

  connect();
  return {
    path,
    send,
    listen(callbacks, checkEvery = 0) {
      for (const [kind, fn] of Object.entries(callbacks)) if (fn) listeners[kind].push(fn);
      if (checkEvery > 0 && !checkTimer) checkTimer = setInterval(() => emit("onCheck"), checkEvery);
      // After the caller has its socket in hand (it may send on "open").
      if (socket?.readyState === WebSocket.OPEN) {
        const late = subscribed;
        queueMicrotask(() => {
          callbacks.onState?.("open");
          if (late) callbacks.onMessage?.(late);
        });
      }
    },
    close() { stopped = true; clearInterval(checkTimer); socket?.close(); },
    get lastSeq() { return lastSeq; },
  };
}

// fn, run once `ms` after the first of any calls in between: live changes arrive in bursts,
// and each burst is worth one request.
export function coalesce(ms, fn) {
  let timer = null;
  return () => {
    if (!timer) timer = setTimeout(() => { timer = null; fn(); }, ms);
  };
}
