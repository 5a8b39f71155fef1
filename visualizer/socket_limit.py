"""How many websockets one user (or one address without a session) has open, per process.

Each open socket costs the server a consumer, a channel-layer subscription and buffers, so
one account must not open thousands: ``WS_MAX_SOCKETS_PER_USER`` signed-in sockets per user,
``WS_MAX_SOCKETS_PER_ADDRESS`` per client address for handshakes without a session (which
the consumers then close with 4401; the count covers the moments before that close is
done). Counted in this process only: with several Daphne processes behind a balancer a
user may hold the limit in each (a shared count would cost a Redis round trip per
handshake and leak on a crash). A consumer holds a slot from its handshake to its
disconnect; the slots are weak references, so a consumer that ends without a disconnect
(cancelled by Daphne) lets go of its slot too.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from weakref import WeakSet

from django.conf import settings

_open: defaultdict[str, WeakSet[Any]] = defaultdict(WeakSet)
_PRUNE_ABOVE = 10_000


def holder(scope: dict[str, Any]) -> tuple[str, int]:
    """Whom a handshake counts against, and that holder's limit: the signed-in user, else
    the client's address."""
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}", settings.WS_MAX_SOCKETS_PER_USER
    client = scope.get("client") or ("unknown", 0)
    return f"address:{client[0]}", settings.WS_MAX_SOCKETS_PER_ADDRESS


def take(consumer: Any) -> bool:
    """Count ``consumer``'s socket against its holder; False (not counted) when the holder
    has its limit open already."""
    name, limit = holder(consumer.scope)
    if len(_open) > _PRUNE_ABOVE:
        # Holders whose consumers all ended without a disconnect (their weak references
        # are gone) would otherwise stay as empty entries.
        for empty in [key for key, held in _open.items() if not held]:
            del _open[empty]
    sockets = _open[name]
    if len(sockets) >= limit:
        return False
    sockets.add(consumer)
    return True


def release(consumer: Any) -> None:
    """The socket of ``consumer`` closed: its slot is free."""
    name, _ = holder(consumer.scope)
    sockets = _open.get(name)
    if sockets is None:
        return
    sockets.discard(consumer)
    if not sockets:
        del _open[name]
