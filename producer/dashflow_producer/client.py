"""Stream a DashFlow run to Trace Studio while it executes.

A standalone client: it imports nothing from Django or the server, only the standard
library, so an agent installs this package alone (``pip install ./producer`` from a Trace
Studio checkout). Usage::

    from dashflow_producer import RunStreamer

    with RunStreamer("http://127.0.0.1:8000", api_key) as stream:
        stream.run_started(thread_id="session-1", initial_state=state)
        stream.node_started("planner", 0)
        ...
        stream.node_finished(node_execution)  # a NodeExecution as a dict
        stream.run_finished(completed=True, final_state=state, total_tokens=1234)

The agent's calls never block and never raise: each one encodes the event, numbers it
(``seq`` 1, 2, 3, ...) and appends it to a bounded queue. A background thread posts the
queue in batches to ``POST /api/v1/runs/<execution_id>/events``. The server ignores a seq
it already stored, so a batch whose answer was lost is simply posted again.

What can go wrong is counted in ``stats`` and logged (logger ``dashflow.producer``), never
raised into the agent: a full queue drops the event, a 4xx answer (other than 408/429)
drops the batch, and a batch still failing after ``max_retries`` is dropped. A dropped
event leaves a gap the server reports as ``missing_seqs``.

One module past ~400 lines on purpose: it is one class, whose non-blocking calls and
background sender share one bounded queue, one lock and one connection; either half alone
would have to reach into the other's state.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

__all__ = ["RunStreamer", "StreamStats", "now_iso"]

logger = logging.getLogger("dashflow.producer")

# Statuses worth another try: the server (or a proxy) is overloaded, restarting or slow.
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_TOO_LARGE = 413
_ERROR_TEXT_LIMIT = 300


def now_iso() -> str:
    """The current time as DashFlow writes timestamps: RFC 3339, milliseconds, offset."""
    # timezone.utc, not 3.11's datetime.UTC: the package supports Python 3.10 agents too.
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")  # noqa: UP017


@dataclass(frozen=True)
class StreamStats:
    """Counters of one stream; ``RunStreamer.stats`` returns a snapshot of them.

    ``queued``: events accepted into the queue. ``sent``: events the server answered 2xx
    for (``duplicates`` of them it had already stored). ``batches``: successful posts.
    ``retried``: posts repeated after a retryable failure. ``dropped``: events given up
    (queue full, stream closed, refused by the server, or retries exhausted).
    ``last_error``: the latest failure, retried or not.
    """

    queued: int = 0
    sent: int = 0
    duplicates: int = 0
    batches: int = 0
    retried: int = 0
    dropped: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class _Outcome:
    """The result of one post: delivered, worth retrying, or hopeless."""

    delivered: bool = False
    retryable: bool = False
    status: int | None = None
    body: bytes = b""
    error: str = ""
    retry_after: float | None = None


class RunStreamer:
    """Streams the events of one run; see the module docstring.

    ``batch_size`` events at most per post; ``flush_interval`` seconds at most between an
    event and its post (the worker waits that long for company, unless ``flush`` or
    ``close`` asks it not to). The default is short, because people watch these events
    arrive: 5 ms catches a node's finish and the next node's start in one post, and the
    events emitted while a post is on the wire leave together in the next one, so batches
    grow with the rate on their own (at 200 events/s, 2-3 per post in benchmarks/live.py).
    ``max_queue`` bounds memory when the server is away.
    A batch is tried ``1 + max_retries`` times, waiting ``backoff_base * 2**n`` seconds
    (capped at ``backoff_max``, with jitter) between tries; ``timeout`` bounds each post.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        execution_id: str | None = None,
        *,
        batch_size: int = 50,
        flush_interval: float = 0.005,
        max_queue: int = 10_000,
        max_retries: int = 8,
        timeout: float = 10.0,
        backoff_base: float = 0.2,
        backoff_max: float = 10.0,
    ) -> None:
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be at least 1")
        url = urllib.parse.urlsplit(base_url)
        host = url.hostname
        if url.scheme not in ("http", "https") or not host:
            raise ValueError(f"base_url={base_url!r}: expected http(s)://host[:port][/prefix]")
        if not (api_key.isascii() and api_key.isprintable()):
            # Checked here because http.client would raise on it in the worker, later.
            raise ValueError("api_key: expected printable ASCII")
        self.execution_id = execution_id or str(uuid.uuid4())
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._scheme = url.scheme
        self._host = host
        self._port = url.port
        self._path = (
            url.path.rstrip("/")
            + "/api/v1/runs/"
            + urllib.parse.quote(self.execution_id, safe="")
            + "/events"
        )
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
        }
        self._conn: http.client.HTTPConnection | None = None
        # For run_finished's default totals.
        self._started: float | None = None
        self._tokens = 0
        # Our own generator: the agent seeding or drawing from the global one must not
        # change our jitter, and ours must not change its sequence.
        self._random = random.Random()

        # One condition guards the queue and the counters below. The agent's threads hold
        # it only to append and count, never across I/O, so their calls cannot stall.
        self._cond = threading.Condition()
        self._queue: deque[tuple[int, str]] = deque()
        self._next_seq = 1
        self._accepted = 0  # events ever appended to the queue
        self._settled = 0  # of those, events sent or dropped by the worker
        self._flush_waiters = 0
        self._closing = False
        self._overflowing = False
        self._stats = StreamStats()
        # Set when close() runs out of time: the worker stops retrying and drops the rest.
        self._abort = threading.Event()
        self._thread = threading.Thread(
            target=self._work, name=f"dashflow-producer-{self.execution_id[:8]}", daemon=True
        )
        self._thread.start()

    # The agent's side: cheap, non-blocking, never raising.

    def run_started(
        self,
        *,
        thread_id: str | None = None,
        parent_execution_id: str | None = None,
        root_execution_id: str | None = None,
        depth: int | None = None,
        started_at: str | None = None,
        metadata: dict[str, Any] | None = None,
        initial_state: Any = None,
    ) -> None:
        """The run began; ``started_at`` defaults to now."""
        data: dict[str, Any] = {
            "thread_id": thread_id,
            "parent_execution_id": parent_execution_id,
            "root_execution_id": root_execution_id,
            "depth": depth,
            "started_at": started_at or now_iso(),
            "metadata": metadata or {},
        }
        if initial_state is not None:
            data["initial_state"] = initial_state
        self._started = time.monotonic()
        self._emit("run_started", data)

    def node_started(self, node: str, index: int, started_at: str | None = None) -> None:
        """Node ``node`` began its ``index``-th execution of the run (counting from 0)."""
        self._emit(
            "node_started", {"node": node, "index": index, "started_at": started_at or now_iso()}
        )

    def node_finished(self, node_execution: dict[str, Any]) -> None:
        """A node ended: a NodeExecution as DashFlow serialises it (node, duration_ms,
        tokens_used, state_before, state_after, tools_called, success, ...)."""
        tokens = node_execution.get("tokens_used") if isinstance(node_execution, dict) else None
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            with self._cond:
                self._tokens += tokens
        self._emit("node_finished", node_execution)

    def error(self, error_trace: dict[str, Any]) -> None:
        """An ErrorTrace as DashFlow serialises it (node, message, error_type, ...)."""
        self._emit("error", error_trace)

    def run_finished(
        self,
        *,
        completed: bool,
        ended_at: str | None = None,
        final_state: Any = None,
        total_duration_ms: int | None = None,
        total_tokens: int | None = None,
    ) -> None:
        """The run ended; ``ended_at`` defaults to now.

        The server takes the run's totals from this event, so they default to what this
        streamer saw, not to 0: the tokens_used of the node_finished events it was given,
        and the time since run_started (0 without one).
        """
        if total_duration_ms is None:
            elapsed = 0.0 if self._started is None else time.monotonic() - self._started
            total_duration_ms = round(elapsed * 1000)
        self._emit(
            "run_finished",
            {
                "completed": completed,
                "ended_at": ended_at or now_iso(),
                "final_state": final_state,
                "total_duration_ms": total_duration_ms,
                "total_tokens": self._tokens if total_tokens is None else total_tokens,
            },
        )

    @property
    def stats(self) -> StreamStats:
        """A consistent snapshot of the counters."""
        with self._cond:
            return self._stats

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event emitted so far is sent or dropped; False on timeout.

        This one does block (for at most ``timeout``): call it where the agent can wait.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._accepted
            self._flush_waiters += 1
            self._cond.notify_all()  # the worker stops waiting for a fuller batch
            try:
                while self._settled < target:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
                return True
            finally:
                self._flush_waiters -= 1

    def close(self, timeout: float = 10.0) -> bool:
        """Send what is queued and stop; False if that took longer than ``timeout``.

        On timeout the worker stops retrying and what is still queued is dropped (and
        counted); a post already on the wire may still finish, within ``self.timeout``.
        Events emitted after close are dropped. Calling close again is harmless.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if not self._thread.is_alive():
            return True
        self._abort.set()
        with self._cond:
            count = len(self._queue)
            self._queue.clear()
            self._settled += count
            self._cond.notify_all()
        if count:
            self._count_dropped(count, "the stream closed before these events were sent")
        return False

    def __enter__(self) -> RunStreamer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _emit(self, type_: str, data: Any) -> None:
        # Encode now, in the caller's thread and outside the lock: the agent goes on
        # mutating its state, and the event must carry the state as it was at this call.
        # ``default=str`` turns a stray datetime or enum into text rather than losing it.
        try:
            encoded: str | None = json.dumps(
                data,
                default=str,
                allow_nan=False,  # NaN is not JSON; the server would refuse the whole batch
                separators=(",", ":"),
            )
            problem = ""
        except Exception as exc:
            # Broad on purpose, and not swallowed (counted, logged): ``default=str`` runs
            # the agent's own __str__, which may raise anything, and an observer must
            # never crash the run it observes.
            encoded, problem = None, f"not JSON-serialisable: {type(exc).__name__}: {exc}"
        with self._cond:
            # Numbered and queued under one lock, so seqs reach the queue in order even
            # when several agent threads emit. A dropped event keeps its seq: the gap
            # shows on the server as ``missing_seqs`` instead of passing unnoticed.
            seq = self._next_seq
            self._next_seq += 1
            if encoded is not None and not self._closing and len(self._queue) < self.max_queue:
                event = f'{{"seq":{seq},"type":"{type_}","data":{encoded}}}'
                self._queue.append((seq, event))
                self._accepted += 1
                self._stats = replace(self._stats, queued=self._stats.queued + 1)
                self._overflowing = False
                self._cond.notify_all()
                return
            if encoded is not None:
                problem = (
                    "the stream is closed"
                    if self._closing
                    else f"the queue is full ({self.max_queue} events)"
                )
            error = f"{type_} seq {seq}: {problem}"
            self._stats = replace(self._stats, dropped=self._stats.dropped + 1, last_error=error)
            # One warning per overflow, not one per event: an agent emitting into a full
            # queue would otherwise log thousands of lines while the server is away.
            warn = not self._overflowing
            self._overflowing = True
        if warn:
            logger.warning("run %s: dropped %s", self.execution_id, error)

    # The worker's side.

    def _work(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                try:
                    self._deliver(batch)
                finally:
                    with self._cond:
                        self._settled += len(batch)
                        self._cond.notify_all()
        finally:
            self._close_connection()

    def _next_batch(self) -> list[tuple[int, str]] | None:
        """The next events to post, or None once closing with nothing left."""
        with self._cond:
            while not self._queue:
                if self._closing or self._abort.is_set():
                    return None
                self._cond.wait()
            # Wait a little for more events, so a burst of node events shares one post;
            # flush() and close() cut the wait short.
            deadline = time.monotonic() + self.flush_interval
            while (
                len(self._queue) < self.batch_size and not self._closing and not self._flush_waiters
            ):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            count = min(self.batch_size, len(self._queue))
            return [self._queue.popleft() for _ in range(count)]

    def _deliver(self, batch: list[tuple[int, str]]) -> None:
        """Post one batch, retrying what may succeed later; counts the outcome."""
        body = ('{"events":[' + ",".join(encoded for _, encoded in batch) + "]}").encode()
        first, last = batch[0][0], batch[-1][0]
        seqs = f"seq {first}" if first == last else f"seq {first}-{last}"
        attempt = 0
        while True:
            if self._abort.is_set():
                self._count_dropped(len(batch), f"{seqs}: stream closed while retrying")
                return
            outcome = self._post(body)
            if outcome.delivered:
                duplicates = _duplicates(outcome.body)
                with self._cond:
                    self._stats = replace(
                        self._stats,
                        sent=self._stats.sent + len(batch),
                        duplicates=self._stats.duplicates + duplicates,
                        batches=self._stats.batches + 1,
                    )
                return
            error = f"{seqs}: {outcome.error}"
            if outcome.status == _TOO_LARGE and len(batch) > 1:
                # The server's body limit: halves may fit, so one huge state does not
                # take its neighbours down with it.
                middle = len(batch) // 2
                self._deliver(batch[:middle])
                self._deliver(batch[middle:])
                return
            if not outcome.retryable:
                self._count_dropped(len(batch), error)
                return
            if attempt >= self.max_retries:
                self._count_dropped(len(batch), f"{error} (gave up after {attempt} retries)")
                return
            attempt += 1
            with self._cond:
                self._stats = replace(
                    self._stats, retried=self._stats.retried + 1, last_error=error
                )
            logger.info("run %s: %s; retry %d", self.execution_id, error, attempt)
            # Waiting on the abort event, not sleeping, lets close() cut a backoff short
            # (the loop's top then drops the batch).
            self._abort.wait(self._backoff(attempt, outcome.retry_after))

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential with "equal jitter": half the delay fixed, half random, so many
        producers that failed together do not all come back at the same instant."""
        delay = min(self.backoff_max, self.backoff_base * 2.0 ** (attempt - 1))
        delay = delay / 2 + self._random.uniform(0, delay / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.backoff_max))
        return delay

    def _post(self, body: bytes) -> _Outcome:
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=self._headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            # Refused, reset, timed out, or a kept-alive connection the server had closed:
            # start a fresh connection next time. Re-posting is safe (seqs dedupe).
            self._close_connection()
            return _Outcome(retryable=True, error=f"{type(exc).__name__}: {exc}".rstrip(": "))
        if response.will_close:
            self._close_connection()
        status = response.status
        if 200 <= status < 300:
            return _Outcome(delivered=True, status=status, body=data)
        text = data[:_ERROR_TEXT_LIMIT].decode("utf-8", "replace")
        return _Outcome(
            retryable=status in _RETRY_STATUSES,
            status=status,
            body=data,
            error=f"HTTP {status}: {text}",
            retry_after=_retry_after(response.getheader("Retry-After")),
        )

    def _connection(self) -> http.client.HTTPConnection:
        # One kept-alive connection: a run posts every flush_interval, and a new TCP (and
        # TLS) handshake per batch would cost more than the batch.
        if self._conn is None:
            if self._scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
        return self._conn

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _count_dropped(self, count: int, error: str) -> None:
        with self._cond:
            self._stats = replace(
                self._stats, dropped=self._stats.dropped + count, last_error=error
            )
        logger.warning("run %s: dropped %d event(s): %s", self.execution_id, count, error)


def _duplicates(body: bytes) -> int:
    """The server's count of already-stored events in a batch (0 if it did not say)."""
    try:
        value = json.loads(body).get("duplicates", 0)
    except (ValueError, AttributeError):
        return 0
    return value if isinstance(value, int) else 0


def _retry_after(header: str | None) -> float | None:
    """``Retry-After`` in seconds; the HTTP-date form is rare on APIs and ignored."""
    if header is None:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        return None
