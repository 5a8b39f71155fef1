// A websocket that resumes where it left off: it reconnects with ?after=<last seq seen>
// (with backoff), drops any seq it has already delivered, and reports resync requests.

export function liveSocket(path, { after = 0, onEvent, onMessage, onState }) {
  let lastSeq = after;
  const seen = new Set();
  let socket = null;
  let delay = 500;
  let stopped = false;
  let unacked = 0;
  let ackTimer = null;

  // Acknowledge what was processed, so the server keeps relaying (it stops after
  // WS_MAX_UNACKED live events without an ack and asks for a resync).
  function ack() {
    ackTimer = null;
    unacked = 0;
    if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ack", seq: lastSeq }));
  }

  function url() {
    const sep = path.includes("?") ? "&" : "?";
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}${path}${sep}after=${lastSeq}`;
  }

  function open() {
    socket = new WebSocket(url());
    socket.onopen = () => { delay = 500; onState?.("open"); };
    socket.onmessage = (message) => {
      const parsed = JSON.parse(message.data);
      // A frame is one message, or an array of events (one ingested batch, or a replay).
      for (const data of Array.isArray(parsed) ? parsed : [parsed]) {
        if (typeof data.seq === "number") {
          if (data.seq <= after || seen.has(data.seq)) continue;
          seen.add(data.seq);
          // Resume after the highest contiguous seq: a gap is refilled on reconnect.
          while (seen.has(lastSeq + 1)) lastSeq += 1;
          onEvent?.(data);
          unacked += 1;
          if (unacked >= 50) ack();
          else if (!ackTimer) ackTimer = setTimeout(ack, 500);
        } else {
          onMessage?.(data);
        }
      }
    };
    socket.onclose = (event) => {
      onState?.("closed", event.code);
      // 4401/4403: not allowed; 4409: too far behind, the page reloads instead.
      if (stopped || [4400, 4401, 4403, 4409].includes(event.code)) return;
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  open();
  return { close() { stopped = true; socket?.close(); }, get lastSeq() { return lastSeq; } };
}
