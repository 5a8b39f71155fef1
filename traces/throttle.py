"""Rate limits: failed sign-ins per username and per client address, and ingestion
requests per API key.

Counters live in the ``throttle`` cache (``settings.CACHES``): Redis when ``REDIS_URL`` is
set, so every server process counts together; otherwise memory of the one process (the
embedded mode serves from one process; the counters are lost when it restarts, and the
cache holds at most ``MAX_ENTRIES`` of them). When the cache cannot be reached the limits
are not applied (logged): a Redis outage must not lock everyone out.

Sign-in failures are counted in fixed windows of ``LOGIN_THROTTLE_WINDOW`` seconds (an
atomic increment); ingestion is a token bucket per key (``INGEST_RATE`` per second, up to
``INGEST_BURST`` at once), kept as its "theoretical arrival time" (GCRA), updated by one
Lua script on Redis so that concurrent processes cannot both take the last token.

Under Daphne the ingestion bucket is taken where the request's headers arrive
(``dashflow_site/bodylimit.py``), before Django's request machinery runs and before the
body is read, so a refused request costs the server as little as it can; the request it
lets through carries ``CHECKED_HEADER`` with this process's ``CHECKED_TOKEN`` (a secret a
client cannot forge), and ``api/request.py`` then takes no second token. Served any other
way (the test client), the view takes it.

Times come from ``clock``, which the tests advance instead of sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

from .models import hash_api_key

log = logging.getLogger(__name__)

clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Refused:
    """A request over a limit: ``limit`` names it, ``retry_after`` in whole seconds."""

    limit: str
    retry_after: int


def _cache() -> BaseCache:
    return caches["throttle"]


def _name(kind: str, value: str) -> str:
    # Hashed: any text (NUL bytes, 10 kB usernames) becomes a short, valid cache key.
    return f"{kind}:{hashlib.sha256(value.encode('utf-8', 'replace')).hexdigest()[:32]}"


def _seconds(value: float) -> int:
    return max(1, math.ceil(value))


# --- Sign-in failures ----------------------------------------------------------------


def _window() -> tuple[str, int]:
    """The current window's id and the seconds left in it."""
    window: int = settings.LOGIN_THROTTLE_WINDOW
    now = clock()
    number = int(now // window)
    return str(number), _seconds((number + 1) * window - now)


def _login_keys(username: str, address: str) -> tuple[str, str]:
    return _name("login-user", username.casefold()), _name("login-addr", address)


def login_refused(username: str, address: str) -> Refused | None:
    """Whether a sign-in as ``username`` from ``address`` is refused before the password
    is checked: either has had too many failures in the current window."""
    window, left = _window()
    user_key, address_key = _login_keys(username, address)
    try:
        counts = _cache().get_many([f"{user_key}:{window}", f"{address_key}:{window}"])
    except RedisError as exc:
        log.warning("login throttle unavailable, not applied: %s", exc)
        return None
    if counts.get(f"{user_key}:{window}", 0) >= settings.LOGIN_MAX_FAILURES_PER_USER:
        return Refused("LOGIN_MAX_FAILURES_PER_USER", left)
    if counts.get(f"{address_key}:{window}", 0) >= settings.LOGIN_MAX_FAILURES_PER_ADDRESS:
        return Refused("LOGIN_MAX_FAILURES_PER_ADDRESS", left)
    return None


def login_failed(username: str, address: str) -> None:
    """Count one failed sign-in for the username and for the address."""
    window, _ = _window()
    cache = _cache()
    try:
        for key in _login_keys(username, address):
            counter = f"{key}:{window}"
            # add then incr: both atomic, so concurrent failures are all counted.
            cache.add(counter, 0, timeout=settings.LOGIN_THROTTLE_WINDOW + 60)
            cache.incr(counter)
    except (RedisError, ValueError) as exc:  # ValueError: evicted between add and incr
        log.warning("login throttle unavailable, failure not counted: %s", exc)


def login_succeeded(username: str) -> None:
    """A successful sign-in clears the username's failures (not the address's)."""
    window, _ = _window()
    user_key, _ = _login_keys(username, "")
    try:
        _cache().delete(f"{user_key}:{window}")
    except RedisError as exc:
        log.warning("login throttle unavailable, failures not cleared: %s", exc)


# --- Ingestion per API key -----------------------------------------------------------

# KEYS[1] the bucket; ARGV now, seconds per token, seconds of burst. Returns the seconds
# to wait as a string ("0": taken). The bucket expires when it would be full again.
_TAKE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local after = tat + interval
local over = after - now - burst
if over > 0 then return tostring(over) end
redis.call('SET', KEYS[1], tostring(after), 'PX', math.ceil((after - now) * 1000) + 1000)
return '0'
"""
_local_lock = threading.Lock()


def _take(key: str, now: float, interval: float, burst: float) -> float:
    """Take one token from the bucket ``key``; seconds to wait if there is none."""
    cache = _cache()
    if isinstance(cache, RedisCache):
        name = cache.make_and_validate_key(key)
        client = cache._cache.get_client(name, write=True)
        return float(client.eval(_TAKE, 1, name, now, interval, burst))
    # One process holds this cache: a lock makes the read and the write one step.
    with _local_lock:
        tat = max(float(cache.get(key, 0.0)), now)
        after = tat + interval
        over = after - now - burst
        if over > 0:
            return over
        cache.set(key, after, timeout=math.ceil(after - now) + 1)
        return 0.0


def ingest_refused(key_hash: str) -> Refused | None:
    """Whether one more ingestion request with this API key (by its stored hash) is over
    the key's rate; each key has its own bucket, so one key's flood never slows
    another's."""
    rate: int = settings.INGEST_RATE
    if not rate:
        return None
    interval = 1.0 / rate
    try:
        wait = _take(_name("ingest", key_hash), clock(), interval, settings.INGEST_BURST * interval)
    except RedisError as exc:
        log.warning("ingest rate limit unavailable, not applied: %s", exc)
        return None
    if wait <= 0:
        return None
    return Refused("INGEST_RATE", _seconds(wait))


def ingest_refusal(refused: Refused) -> str:
    """What a 429 from the ingestion rate limit says (the view's and Daphne's)."""
    return (
        f"over this API key's ingestion rate ({refused.limit}: "
        f"{settings.INGEST_RATE} requests per second, bursts of {settings.INGEST_BURST})."
    )


# The header, and its value in this process, of a request whose token was taken already.
CHECKED_HEADER = "x-dashflow-rate-checked"
CHECKED_TOKEN = secrets.token_urlsafe(24)


def checked(value: str | None) -> bool:
    """Whether a request's ``CHECKED_HEADER`` says its token was taken in this process."""
    return value is not None and hmac.compare_digest(value, CHECKED_TOKEN)


def header_refused(authorization: str) -> Refused | None:
    """``ingest_refused`` for the key an ``Authorization: Bearer`` header presents, without
    looking the key up: its bucket is named by the key's hash as stored, so a live key
    shares its bucket with the view's check, and a forged one has a bucket of its own
    (the view refuses it with 401 afterwards)."""
    scheme, _, raw = authorization.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        return None
    return ingest_refused(hash_api_key(raw))
