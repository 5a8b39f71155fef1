"""A cap on what Daphne holds unsent for one websocket, enforced in Daphne's send path.

The consumers' flow control (``visualizer/consumers.py``) counts the bytes a client has
not acknowledged, but an ack is only a claim: a client that acks every seq it is sent
(seqs are consecutive, so it can guess them) without ever reading the socket passes that
check, and whatever the consumer sends then piles up in the connection's Twisted transport
(its write buffer), in server memory, for as long as the socket stays open. Project
sockets (run summaries, exports) have no acks at all. So the bound is kept where the bytes
wait: before each message Daphne sends, ``CappedWebSocketProtocol`` looks at what the
transport still holds unsent; if that plus the message would pass ``WS_MAX_UNSENT_BYTES``,
the message is dropped and the socket closed with 4409 (the "too far behind: resync" code
the pages already understand). The close frame queues behind the bytes the client has not
read; autobahn gives the client its close-handshake timeout (1 s) to read up to it and
answer, then aborts the connection, which frees the buffer. Every socket path goes through
this one protocol, whatever its consumer.

A message goes out whenever nothing is waiting, however large, so a socket holds at most
the cap or one message (a run socket's frames stop at 512 KB, ``FRAME_BYTES``).

Daphne builds its websocket factory when it starts serving, from ``daphne.server``'s
``WebSocketFactory``; ``install()`` (called by ``asgi.py``, as ``bodylimit.install``)
swaps in ``CappedWebSocketFactory``. A transport that does not expose Twisted's write
buffer (TLS, which Daphne serves only with Twisted's optional extras) is not capped.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

# The close code of a client too far behind (visualizer/consumers.py CLOSE_RESYNC).
CLOSE_RESYNC = 4409


def unsent_bytes(transport: Any) -> int:
    """The bytes a Twisted TCP transport holds that the kernel has not taken yet (its
    ``FileDescriptor`` write buffer: the buffer being written from the offset on, and the
    writes queued behind it); 0 for a transport without one."""
    buffer = getattr(transport, "dataBuffer", None)
    if buffer is None:
        return 0
    queued: int = getattr(transport, "_tempDataLen", 0)
    return len(buffer) - int(getattr(transport, "offset", 0)) + queued


def install() -> None:
    """Serve websockets with ``CappedWebSocketProtocol`` under Daphne (a no-op otherwise)."""
    server = sys.modules.get("daphne.server")
    if server is None:
        return
    server.WebSocketFactory = _factory()  # type: ignore[attr-defined]


def _factory() -> type:
    """Daphne's websocket factory with ``CappedWebSocketProtocol``; built only under Daphne
    (its modules install a Twisted reactor when imported)."""
    from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

    class CappedWebSocketProtocol(WebSocketProtocol):  # type: ignore[misc]
        """Daphne's websocket protocol, closing a socket whose client does not read."""

        over_cap = False

        def serverSend(self, content: str | bytes, binary: bool = False) -> None:
            if self.over_cap or self.state not in (self.STATE_OPEN, self.STATE_CONNECTING):
                # Closing or closed: what the consumer still sends has nowhere to go
                # (autobahn would raise on it, into the consumer).
                return
            waiting = unsent_bytes(self.transport)
            size = len(content)  # characters: at most the bytes, so never an overcount
            cap: int = settings.WS_MAX_UNSENT_BYTES
            if waiting and waiting + size > cap:
                self.over_cap = True
                log.warning(
                    "websocket %s %s: %d bytes unsent (WS_MAX_UNSENT_BYTES=%d); closing",
                    self.client_addr,
                    self.path,
                    waiting,
                    cap,
                )
                self.sendClose(code=CLOSE_RESYNC)
                return
            super().serverSend(content, binary)

    class CappedWebSocketFactory(WebSocketFactory):  # type: ignore[misc]
        protocol = CappedWebSocketProtocol

    return CappedWebSocketFactory
