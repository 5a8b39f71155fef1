"""dashflow_producer, the stdlib client an agent streams a run with, and simulate_run.

Three kinds of server: the real one (Daphne in a subprocess, on the test database), a fake
one that fails on cue, and none at all (a dead port, a port that never answers).

The Daphne subprocess must see the test database. PostgreSQL's test database is shared by
nature; for SQLite, settings.py names a file test database
(``DATABASES["default"]["TEST"]["NAME"]``) for this purpose. An in-memory SQLite database
cannot be shared with another process, so ``daphne_url`` fails saying so rather than
testing against a database the test cannot see.
"""

from __future__ import annotations

import io
import json
import math
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest
from dashflow_producer import RunStreamer, StreamStats
from django.core.management import call_command
from django.db import connection

from traces import store
from traces.demo import research_run
from traces.management.commands.simulate_run import stream_trace
from traces.models import ApiKey, Project, Run, RunError, RunStatus
from traces.trace import ExecutionTrace

ROOT = Path(__file__).resolve().parent.parent.parent
real_server = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# -- the real server -----------------------------------------------------------------


def subprocess_database_url() -> str:
    """DATABASE_URL for the test database, as the Daphne subprocess must read it."""
    db = connection.settings_dict
    name = str(db["NAME"])
    if db["ENGINE"] == "django.db.backends.sqlite3":
        if name == ":memory:" or name.startswith("file:memorydb") or "mode=memory" in name:
            pytest.fail(
                f"the SQLite test database is in memory ({name!r}); a Daphne subprocess "
                "cannot share it: settings.DATABASES['default']['TEST']['NAME'] must be a file"
            )
        return "sqlite:///" + str(Path(name).resolve())
    user = urllib.parse.quote(db.get("USER") or "", safe="")
    password = urllib.parse.quote(db.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}{host}{port}/{urllib.parse.quote(name, safe='')}"


@pytest.fixture(scope="module")
def daphne_url(django_db_setup: None) -> Iterator[str]:
    """A real Daphne on a free port, serving the test database, for this module."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "DJANGO_SETTINGS_MODULE": "dashflow_site.settings",
    }
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "dashflow_site.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_up(proc, port, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until_up(proc: subprocess.Popen[bytes], port: int, log: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"daphne exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    log.seek(0)
    pytest.fail(f"daphne did not listen on {port} within 30 s:\n{log.read()[-3000:]}")


@pytest.fixture
def sim_key(transactional_db: None) -> str:
    project = Project.objects.create(slug="sim", name="Sim")
    return ApiKey.issue(project)[1]


def stream(streamer: RunStreamer, trace: ExecutionTrace) -> int:
    """Emit ``trace`` as a producer would; returns the number of events emitted."""
    streamer.run_started(
        thread_id=trace.thread_id,
        started_at=trace.started_at,
        metadata=trace.metadata,
        initial_state=trace.nodes_executed[0].state_before,
    )
    count = 1
    for node in trace.nodes_executed:
        assert isinstance(node.index, int)
        streamer.node_started(node.node, node.index, started_at=node.started_at)
        streamer.node_finished(msgspec.to_builtins(node))
        count += 2
    for error in trace.errors:
        streamer.error(msgspec.to_builtins(error))
        count += 1
    streamer.run_finished(
        completed=trace.completed,
        ended_at=trace.ended_at,
        final_state=trace.final_state,
        total_duration_ms=trace.total_duration_ms,
        total_tokens=trace.total_tokens,
    )
    return count + 1


@real_server
@pytest.mark.parametrize("fail", [False, True], ids=["completed", "failed"])
def test_a_streamed_run_is_stored_whole_by_the_real_server(
    daphne_url: str, sim_key: str, fail: bool
) -> None:
    trace = research_run(
        random.Random(11), started=datetime.now(UTC), loops=3, fail=fail, thread_id="t-1"
    )
    # Small batches, so the run arrives in several posts like a live one.
    streamer = RunStreamer(daphne_url, sim_key, trace.execution_id, batch_size=4)
    emitted = stream(streamer, trace)

    assert streamer.close(10)
    stats = streamer.stats
    assert (stats.sent, stats.dropped, stats.retried) == (emitted, 0, 0)
    assert stats.batches >= emitted // 4
    run = Run.objects.get(execution_id=trace.execution_id)
    assert run.project.slug == "sim"
    assert (run.last_seq, run.event_count, run.missing_seqs) == (emitted, emitted, 0)
    assert run.status == (RunStatus.FAILED if fail else RunStatus.COMPLETED)
    stored = store.load_trace(run)
    assert stored.nodes_executed == trace.nodes_executed
    assert stored.errors == trace.errors
    assert len(stored.errors) == (1 if fail else 0)
    assert stored.final_state == trace.final_state
    assert (stored.total_tokens, stored.completed) == (trace.total_tokens, not fail)


@real_server
def test_simulate_run_streams_a_completed_run_creating_project_and_key(daphne_url: str) -> None:
    out = io.StringIO()
    call_command(
        "simulate_run",
        *("--project", "fresh", "--url", daphne_url, "--speed", "50", "--loops", "1"),
        stdout=out,
    )

    lines = out.getvalue().splitlines()
    execution_id = lines[0].split()[1].rstrip(":")
    assert lines[0].endswith(f"{daphne_url}/projects/fresh/runs/{execution_id}/")
    assert re.search(r"sent 12 events in \d+ batches, 0 retries, 0 dropped$", lines[1])
    run = Run.objects.get(execution_id=execution_id)
    assert run.project.slug == "fresh"
    assert ApiKey.objects.filter(project=run.project).count() == 1
    # planner, one retriever/reader/critic loop, writer: 5 nodes, 12 events.
    assert (run.status, run.node_count, run.error_count) == (RunStatus.COMPLETED, 5, 0)
    assert (run.last_seq, run.missing_seqs) == (12, 0)
    assert run.final_state_id is not None


@real_server
def test_simulate_run_with_fail_stores_a_failed_run_with_its_error(
    daphne_url: str, sim_key: str
) -> None:
    out = io.StringIO()
    call_command(
        "simulate_run",
        *("--project", "sim", "--url", daphne_url, "--speed", "50", "--loops", "1"),
        *("--fail", "--key", sim_key, "--repeat", "2", "--pause", "0"),
        stdout=out,
    )

    ids = [line.split()[1].rstrip(":") for line in out.getvalue().splitlines()[::2]]
    assert len(set(ids)) == 2
    assert ApiKey.objects.count() == 1  # --key: no new key
    for execution_id in ids:
        run = Run.objects.get(execution_id=execution_id)
        assert run.status == RunStatus.FAILED
        assert not run.completed
        error = RunError.objects.get(run=run)
        assert error.node == run.first_error_node
        assert not run.steps.order_by("-position").first().success  # type: ignore[union-attr]
        assert run.missing_seqs == 0


# -- a fake server that fails on cue -------------------------------------------------


class FakeServer:
    """Answers each POST with the next status of ``script`` (200 once it runs out) and
    records what it received. ``hold`` makes the first post wait until it is set."""

    def __init__(self, script: list[int], hold: threading.Event | None = None) -> None:
        self.script = list(script)
        self.hold = hold
        self.arrived = threading.Event()
        self.posts: list[tuple[float, int, list[dict[str, Any]]]] = []
        self.retry_after: str | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects
            # Headers and body go out in two writes; with Nagle on, the second waits for
            # the client's delayed ACK, 40 ms a post.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                events = json.loads(body)["events"]
                fake.arrived.set()
                if fake.hold is not None:
                    fake.hold.wait(10)
                    fake.hold = None
                status = fake.script.pop(0) if fake.script else 200
                fake.posts.append((time.monotonic(), status, events))
                if status == 200:
                    answer = {"accepted": len(events), "duplicates": 0, "status": "running"}
                else:
                    answer = {"path": "$.events[0].data.node", "rule": "expected `str`"}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status != 200 and fake.retry_after is not None:
                    self.send_header("Retry-After", fake.retry_after)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def stored_seqs(self) -> list[int]:
        """Seqs of the events in posts answered 200, in arrival order."""
        return [e["seq"] for _, status, events in self.posts if status == 200 for e in events]

    def stop(self) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[Any]:
    servers: list[FakeServer] = []

    def start(script: list[int], hold: threading.Event | None = None) -> FakeServer:
        servers.append(FakeServer(script, hold))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def quick() -> Iterator[Any]:
    """Makes streamers with millisecond backoffs. flush_interval is long on purpose, so
    what is emitted before a flush() goes out in one batch. Each streamer is stopped at
    the end, so none goes on retrying into the next test."""
    made: list[RunStreamer] = []

    def make(url: str, **options: Any) -> RunStreamer:
        settings: dict[str, Any] = {"flush_interval": 5.0, "backoff_base": 0.01, "timeout": 2.0}
        made.append(RunStreamer(url, "dfk_test", "run-1", **{**settings, **options}))
        return made[-1]

    yield make
    for streamer in made:
        streamer.close(0)


def emit(streamer: RunStreamer, count: int) -> list[float]:
    """``count`` node_started events; how long each call took."""
    took = []
    for i in range(count):
        start = time.perf_counter()
        streamer.node_started("planner", i)
        took.append(time.perf_counter() - start)
    return took


def assert_never_blocked(took: list[float]) -> None:
    """The agent's calls only queue; a call that waited on the network would take a
    post's timeout, 2 s in every test here (or wait for ever on a held server). The bound
    sits far from both, so a busy machine cannot fail it and a blocking call cannot pass."""
    assert max(took) < 1.0, f"slowest call {max(took) * 1e3:.1f} ms"


def test_503s_are_retried_until_accepted_and_each_event_arrives_once(fake: Any, quick: Any) -> None:
    server = fake([503, 503])
    streamer = quick(server.url)
    emit(streamer, 5)

    assert streamer.flush(5)
    assert [status for _, status, _ in server.posts] == [503, 503, 200]
    assert server.stored_seqs() == [1, 2, 3, 4, 5]
    stats = streamer.stats
    assert (stats.sent, stats.retried, stats.dropped, stats.batches) == (5, 2, 0, 1)
    assert stats.last_error is not None
    assert "HTTP 503" in stats.last_error
    assert streamer.close(1)


def test_a_429_waits_at_least_its_retry_after(fake: Any, quick: Any) -> None:
    server = fake([429])
    server.retry_after = "0.3"
    streamer = quick(server.url)
    emit(streamer, 1)

    assert streamer.flush(5)
    (refused, _, _), (accepted, _, _) = server.posts
    assert accepted - refused >= 0.29
    assert (streamer.stats.sent, streamer.stats.retried) == (1, 1)


def test_a_400_drops_the_batch_counts_it_and_the_stream_goes_on(fake: Any, quick: Any) -> None:
    server = fake([400])
    streamer = quick(server.url)
    emit(streamer, 3)
    assert streamer.flush(5)

    stats = streamer.stats
    assert (stats.sent, stats.retried, stats.dropped) == (0, 0, 3)
    assert stats.last_error is not None
    assert "seq 1-3: HTTP 400" in stats.last_error
    assert "expected `str`" in stats.last_error
    assert len(server.posts) == 1  # never retried: it cannot succeed

    emit(streamer, 1)
    assert streamer.flush(5)
    assert server.stored_seqs() == [4]
    assert (streamer.stats.sent, streamer.stats.dropped) == (1, 3)


def test_retries_give_up_after_max_retries_and_count_the_drop(fake: Any, quick: Any) -> None:
    server = fake([500, 500, 500, 500])
    streamer = quick(server.url, max_retries=2)
    emit(streamer, 2)
    assert streamer.flush(5)

    assert len(server.posts) == 3
    stats = streamer.stats
    assert (stats.sent, stats.retried, stats.dropped) == (0, 2, 2)
    assert stats.last_error is not None
    assert "gave up after 2 retries" in stats.last_error


def test_a_dead_server_never_blocks_or_raises_in_the_agents_calls(quick: Any) -> None:
    node = msgspec.to_builtins(
        research_run(random.Random(3), started=datetime.now(UTC)).nodes_executed[-1]
    )
    streamer = quick(f"http://127.0.0.1:{free_port()}", batch_size=25, max_retries=2)

    took = emit(streamer, 100)
    for _ in range(100):
        start = time.perf_counter()
        streamer.node_finished(node)
        took.append(time.perf_counter() - start)

    assert_never_blocked(took)
    assert streamer.close(10)
    stats = streamer.stats
    assert (stats.queued, stats.sent, stats.dropped) == (200, 0, 200)
    assert stats.retried == 8 * 2  # 8 batches, each tried 3 times
    assert stats.last_error is not None
    assert "ConnectionRefused" in stats.last_error


def test_a_server_that_never_answers_times_out_and_close_gives_up_in_time(quick: Any) -> None:
    with socket.socket() as silent:
        # Listening but never accepting: connections complete, answers never come.
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        streamer = quick(
            f"http://127.0.0.1:{silent.getsockname()[1]}",
            flush_interval=0,
            timeout=2.0,
            max_retries=1000,
        )
        assert_never_blocked(emit(streamer, 3))
        wait_for(lambda: streamer.stats.retried >= 1, timeout=30)  # the first post timed out
        assert_never_blocked(emit(streamer, 100))

        start = time.monotonic()
        assert not streamer.close(0.5)
        # close gives up at its deadline, not after the post on the wire (2 s) and its
        # 1,000 retries.
        assert time.monotonic() - start < 1.5
        # The post on the wire ends within its timeout; then the batch is counted.
        wait_for(lambda: streamer.stats.dropped == 103, timeout=30)
    stats = streamer.stats
    assert stats.sent == 0
    assert stats.retried >= 1
    assert stats.last_error is not None
    assert "closed" in stats.last_error


def test_a_full_queue_drops_new_events_and_counts_them(fake: Any, quick: Any) -> None:
    hold = threading.Event()
    server = fake([], hold=hold)
    streamer = quick(server.url, batch_size=1, flush_interval=0, max_queue=5)
    emit(streamer, 1)
    assert server.arrived.wait(5)  # the worker is now stuck posting seq 1

    took = emit(streamer, 20)
    stats = streamer.stats
    assert (stats.queued, stats.dropped) == (6, 15)
    assert stats.last_error is not None
    assert "queue is full (5 events)" in stats.last_error
    assert_never_blocked(took)

    hold.set()
    assert streamer.flush(5)
    assert server.stored_seqs() == [1, 2, 3, 4, 5, 6]
    assert (streamer.stats.sent, streamer.stats.dropped) == (6, 15)


def test_an_event_carries_the_state_as_it_was_when_emitted(fake: Any, quick: Any) -> None:
    server = fake([])
    streamer = quick(server.url)
    state: dict[str, Any] = {"notes": ["first"], "at": datetime(2025, 1, 2, tzinfo=UTC)}
    streamer.node_finished({"node": "reader", "duration_ms": 5, "state_after": state})
    state["notes"].append("second")  # the agent goes on with its state

    assert streamer.flush(5)
    [(_, _, [event])] = server.posts
    assert event["data"]["state_after"] == {"notes": ["first"], "at": "2025-01-02 00:00:00+00:00"}


def test_an_unencodable_event_is_dropped_alone_and_keeps_its_seq(fake: Any, quick: Any) -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    server = fake([])
    streamer = quick(server.url)
    streamer.node_finished({"node": "a", "duration_ms": 1, "state_after": {"x": math.nan}})
    streamer.node_finished({"node": "b", "duration_ms": 1, "state_after": Hostile()})
    streamer.node_finished({"node": "c", "duration_ms": 1})

    assert streamer.flush(5)
    # Seqs 1 and 2 are gone, so the server sees a gap rather than nothing.
    assert server.stored_seqs() == [3]
    stats = streamer.stats
    assert (stats.sent, stats.dropped) == (1, 2)
    assert stats.last_error is not None
    assert "RuntimeError: no" in stats.last_error


def test_leaving_the_block_sends_what_is_queued_and_later_events_are_dropped(
    fake: Any, quick: Any
) -> None:
    server = fake([])
    with quick(server.url) as streamer:  # a 5 s flush_interval: only close() sends now
        emit(streamer, 3)
    assert server.stored_seqs() == [1, 2, 3]

    streamer.node_started("late", 3)
    assert streamer.stats == StreamStats(
        queued=3,
        sent=3,
        batches=1,
        dropped=1,
        last_error=("node_started seq 4: the stream is closed"),
    )


def test_events_from_many_threads_arrive_each_once_with_distinct_seqs(
    fake: Any, quick: Any
) -> None:
    server = fake([])
    streamer = quick(server.url, flush_interval=0.01, batch_size=7)
    threads = [threading.Thread(target=emit, args=(streamer, 50)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert streamer.close(5)
    # Numbered and queued under one lock: in order, whichever thread emitted.
    assert server.stored_seqs() == list(range(1, 201))
    assert streamer.stats.sent == 200


def test_run_finished_defaults_to_the_totals_the_streamer_saw(fake: Any, quick: Any) -> None:
    server = fake([])
    streamer = quick(server.url)
    streamer.run_started()
    streamer.node_finished({"node": "a", "duration_ms": 1, "tokens_used": 50})
    streamer.node_finished({"node": "b", "duration_ms": 1, "tokens_used": 70})
    time.sleep(0.02)
    streamer.run_finished(completed=True)

    assert streamer.flush(5)
    finished = server.posts[-1][2][-1]
    assert finished["type"] == "run_finished"
    assert finished["data"]["total_tokens"] == 120
    assert finished["data"]["total_duration_ms"] >= 20


def test_an_interrupted_simulation_ends_its_run_incomplete(fake: Any, quick: Any) -> None:
    server = fake([])
    streamer = quick(server.url)
    trace = research_run(random.Random(5), started=datetime.now(UTC), loops=2)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        if len(sleeps) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the third node
        sleeps.append(seconds)

    with pytest.raises(KeyboardInterrupt):
        stream_trace(streamer, trace, speed=10, sleep=sleep)

    assert streamer.flush(5)
    events = [e for _, _, batch in server.posts for e in batch]
    assert [e["type"] for e in events] == [
        "run_started",
        *["node_started", "node_finished"] * 2,
        "node_started",
        "run_finished",
    ]
    done = trace.nodes_executed[:2]
    assert sleeps == [n.duration_ms / 1000 / 10 for n in done]
    assert events[-1]["data"]["completed"] is False
    assert events[-1]["data"]["total_tokens"] == sum(n.tokens_used for n in done)
    assert events[-1]["data"]["final_state"] == done[-1].state_after
