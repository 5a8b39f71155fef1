"""``manage.py simulate_run``: stream realistic runs live, the way an agent would.

The content comes from ``traces.demo.research_run`` (loops, tools, tokens, a growing state,
optionally a failure); the transport is ``dashflow_producer.RunStreamer`` over HTTP, so the
run goes through the same API, live events and pages a real producer's would.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from dashflow_producer import RunStreamer, StreamStats
from django.core.management.base import BaseCommand, CommandError, CommandParser

from traces.demo import research_run
from traces.models import ApiKey, Project
from traces.trace import UNSET, ErrorTrace, ExecutionTrace

# How long the last events may take to reach the server once a run is over.
CLOSE_TIMEOUT = 15.0


def stream_trace(
    streamer: RunStreamer,
    trace: ExecutionTrace,
    speed: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Emit ``trace`` as live events, spending each node's duration divided by ``speed``.

    The events carry the trace's own timestamps, so the stored run's clock agrees with its
    durations whatever the speed.
    """
    first = trace.nodes_executed[0] if trace.nodes_executed else None
    streamer.run_started(
        thread_id=trace.thread_id,
        started_at=trace.started_at,
        metadata=trace.metadata,
        initial_state=first.state_before if first else None,
    )
    # An error follows the node it happened in, as it would in a real run.
    errors: dict[int | None, list[ErrorTrace]] = {}
    for error in trace.errors:
        errors.setdefault(error.execution_index, []).append(error)
    state = first.state_before if first else None
    try:
        for position, node in enumerate(trace.nodes_executed):
            index = position if node.index is UNSET else int(node.index)
            streamer.node_started(node.node, index, started_at=node.started_at)
            sleep(node.duration_ms / 1000 / speed)
            streamer.node_finished(msgspec.to_builtins(node))
            if node.success:
                state = node.state_after
            for error in errors.pop(index, []):
                streamer.error(msgspec.to_builtins(error))
    except KeyboardInterrupt:
        # End the run (incomplete, totals so far), so it does not show as running forever.
        streamer.run_finished(completed=False, final_state=state)
        raise
    for rest in errors.values():
        for error in rest:
            streamer.error(msgspec.to_builtins(error))
    streamer.run_finished(
        completed=trace.completed,
        ended_at=trace.ended_at,
        final_state=trace.final_state,
        total_duration_ms=trace.total_duration_ms,
        total_tokens=trace.total_tokens,
    )


def describe(stats: StreamStats) -> str:
    text = (
        f"sent {stats.sent} events in {stats.batches} batches, "
        f"{stats.retried} retries, {stats.dropped} dropped"
    )
    if stats.last_error:
        text += f"; last error: {stats.last_error}"
    return text


class Command(BaseCommand):
    help = (
        "Stream simulated research-agent runs to a running server, live, through the "
        "producer client (creates a key for the project unless --key is given)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="project slug (the key's project)")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server")
        parser.add_argument(
            "--speed", type=float, default=1.0, help="1 = real node durations, 10 = 10x faster"
        )
        parser.add_argument("--fail", action="store_true", help="make each run fail")
        parser.add_argument(
            "--fail-rate",
            type=float,
            default=0.0,
            help="the chance (0 to 1) that a run fails, for a mixed stream with --forever",
        )
        parser.add_argument("--loops", type=int, default=2, help="retrieve/read/critic loops")
        count = parser.add_mutually_exclusive_group()
        count.add_argument("--repeat", type=int, default=1, help="how many runs")
        count.add_argument("--forever", action="store_true", help="runs until Ctrl-C")
        parser.add_argument("--pause", type=float, default=1.0, help="seconds between runs")
        parser.add_argument("--key", help="an API key of the project (default: issue one)")
        parser.add_argument("--seed", type=int, help="random seed, for repeatable runs")

    def handle(self, *args: Any, **options: Any) -> None:
        speed: float = options["speed"]
        if not speed > 0:
            raise CommandError(f"--speed={speed}: must be above 0")
        if not 0 <= options["fail_rate"] <= 1:
            raise CommandError(f"--fail-rate={options['fail_rate']}: must be from 0 to 1")
        if options["loops"] < 1 or options["repeat"] < 1 or options["pause"] < 0:
            raise CommandError("--loops and --repeat must be at least 1, --pause at least 0")
        slug: str = options["project"]
        url: str = options["url"].rstrip("/")
        key: str = options["key"] or self.issue_key(slug)
        rng = random.Random(options["seed"])
        done = 0
        try:
            while options["forever"] or done < options["repeat"]:
                if done:
                    time.sleep(options["pause"])
                fail = options["fail"] or rng.random() < options["fail_rate"]
                self.simulate(rng, url, key, slug, speed, options["loops"], fail)
                done += 1
        except KeyboardInterrupt:
            # Ctrl-C is how --forever ends: not an error.
            self.stdout.write(f"interrupted after {done} complete run(s)")

    def issue_key(self, slug: str) -> str:
        project, _ = Project.objects.get_or_create(slug=slug, defaults={"name": slug})
        return ApiKey.issue(project, name="simulate_run")[1]

    def simulate(
        self,
        rng: random.Random,
        url: str,
        key: str,
        slug: str,
        speed: float,
        loops: int,
        fail: bool,
    ) -> None:
        trace = research_run(
            rng,
            started=datetime.now(UTC),
            loops=loops,
            fail=fail,
            thread_id=f"sim-{rng.randrange(100, 130)}",
        )
        try:
            streamer = RunStreamer(url, key, trace.execution_id)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"run {trace.execution_id}: {url}/projects/{slug}/runs/{trace.execution_id}/"
        )
        try:
            stream_trace(streamer, trace, speed)
        finally:
            delivered = streamer.close(CLOSE_TIMEOUT)
            stats = streamer.stats
            self.stdout.write(f"run {trace.execution_id}: {describe(stats)}")
            if not delivered or stats.dropped:
                self.stderr.write(f"run {trace.execution_id}: some events did not reach {url}")
