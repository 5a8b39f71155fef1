"""Reliability with real processes: a Celery worker on a private Redis is killed with
SIGKILL in the middle of an export; another worker takes the export over within the
documented time (``CELERY_VISIBILITY_TIMEOUT`` + the 10 s restore scan) and it completes
exactly once, with a correct file and nothing partial left behind. The progress reaches a
websocket on Daphne from the worker process, through Redis. An export that runs longer
than the visibility timeout is delivered again while it runs, and still written once."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.servers import (
    ROOT,
    daphne,
    database_url,
    redis_server,
    server_env,
    session_cookie,
    wait_for,
)
from tests.traces.exports_support import expected_file, files, store_copies
from traces.models import Export, ExportStatus, Project

pytestmark = pytest.mark.django_db(transaction=True)

CELERY = ROOT / ".venv" / "bin" / "celery"
RUNS = 40
# The visibility timeout the kill test runs with (the default is 120 s: the same path,
# slower), and how often a worker scans for tasks past it (settings.py).
VISIBILITY = 10
RESTORE_SCAN = 10
# What a loaded machine may add to the documented bound (a worker's poll, the claim).
SLACK = 30


class Worker:
    """``celery -A dashflow_site worker`` in its own process group (main + pool child)."""

    def __init__(self, env: Mapping[str, str], name: str) -> None:
        handle, log = tempfile.mkstemp(prefix=f"celery-{name}-", suffix=".log")
        os.close(handle)
        self.log_path = Path(log)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(CELERY),
                    "-A",
                    "dashflow_site",
                    "worker",
                    "--concurrency",
                    "1",
                    "--loglevel",
                    "INFO",
                    "--hostname",
                    f"{name}@%h",
                    "--without-gossip",
                    "--without-mingle",
                ],
                cwd=ROOT,
                env=dict(env),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: SIGKILL reaches the pool child too
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        wait_for(lambda: " ready." in self.log() or self.proc.poll() is not None, 60, "worker")
        assert self.proc.poll() is None, self.log()

    def kill(self) -> None:
        """SIGKILL to the whole worker at once: no warm shutdown, no message returned."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        print(f"--- {self.log_path.name} ---\n{self.log()[-4000:]}")
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def export_row(export_id: str) -> Export:
    return Export.objects.get(pk=export_id)


def test_a_worker_killed_mid_export_is_replaced_and_the_export_completes_once(
    project: Project,
    member: Any,
    api_key: str,
    fixtures_dir: Path,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    runs = store_copies(project, fixtures_dir, "research_agent_success", RUNS)
    exports_dir = tmp_path / "exports"
    with redis_server() as redis:
        env = server_env(
            database_url(connection.settings_dict),
            redis.url,
            EXPORT_DIR=str(exports_dir),
            EXPORT_RUN_DELAY_MS="100",
            EXPORT_PROGRESS_EVERY="1",
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY),
        )
        first = Worker(env, "first")
        workers.append(first)
        with daphne(env) as server:
            first.wait_ready()
            with server.websocket("/ws/projects/acme/exports/", session_cookie(member)) as ws:
                assert ws.receive()["type"] == "exports"
                response = server.request(
                    "POST",
                    "/api/v1/exports",
                    {"format": "csv"},
                    {"Authorization": f"Bearer {api_key}"},
                )
                assert response.status == 202, response.body
                export_id = response.json()["id"]
                # Progress written by the worker process reaches the browser via Redis.
                wait_for(
                    lambda: (
                        (m := ws.receive(timeout=20))["export"]["runs_done"] >= 3
                        and m["export"]["status"] == "running"
                    ),
                    30,
                    "progress from the worker over the websocket",
                )

            wait_for(lambda: export_row(export_id).runs_done >= 8, 30, "the export to get going")
            first.kill()
            killed_at = time.time()
            killed = export_row(export_id)
            assert killed.status == ExportStatus.RUNNING
            assert 8 <= killed.runs_done < RUNS
            part = exports_dir / f"{export_id}.part"
            assert part.exists()  # the dead worker's partial file
            assert not (exports_dir / f"{export_id}.csv").exists()

            second = Worker(env, "second")
            workers.append(second)
            second.wait_ready()
            ready_at = time.time()
            # Redis hands the task on once it has been unacknowledged for VISIBILITY
            # seconds (counted from its delivery, before the kill) at the next scan of a
            # live worker: the second worker claims it (a new started_at) within this.
            bound = max(ready_at, killed_at) + VISIBILITY + RESTORE_SCAN + SLACK
            wait_for(
                lambda: export_row(export_id).started_at != killed.started_at,
                bound - time.time(),
                f"the export to be taken over within {VISIBILITY + RESTORE_SCAN} s (+ slack)",
            )
            taken_over = export_row(export_id).started_at
            assert taken_over is not None
            print(
                f"taken over {taken_over.timestamp() - killed_at:.1f} s after the kill, "
                f"{taken_over.timestamp() - ready_at:.1f} s after the second worker was ready"
            )
            wait_for(
                lambda: export_row(export_id).status == ExportStatus.DONE,
                60,
                "the export to finish",
            )

            done = export_row(export_id)
            expected, rows = expected_file("csv", runs)
            assert (done.runs_done, done.runs_total, done.row_count) == (RUNS, RUNS, rows)
            assert done.size_bytes == len(expected)
            assert files(exports_dir) == [f"{export_id}.csv"]
            assert (exports_dir / f"{export_id}.csv").read_bytes() == expected
            download = server.request(
                "GET",
                f"/api/v1/exports/{export_id}/download",
                headers={"Authorization": f"Bearer {api_key}"},
            )
            assert download.status == 200
            assert download.body == expected
        # The second worker wrote it once; the first never finished it.
        assert second.log().count("succeeded in") == 1
        assert "'done'" in second.log()
        assert "succeeded in" not in first.log()


def test_an_export_longer_than_the_visibility_timeout_is_written_once(
    project: Project,
    api_key: str,
    fixtures_dir: Path,
    tmp_path: Path,
    workers: list[Worker],
) -> None:
    runs = store_copies(project, fixtures_dir, "research_agent_success", RUNS)
    exports_dir = tmp_path / "exports"
    with redis_server() as redis:
        env = server_env(
            database_url(connection.settings_dict),
            redis.url,
            EXPORT_DIR=str(exports_dir),
            # 40 runs x 0.5 s: 20 s, ten times the visibility timeout, so Redis delivers
            # the task again to the idle worker while the first one still writes it.
            EXPORT_RUN_DELAY_MS="500",
            CELERY_VISIBILITY_TIMEOUT="2",
        )
        first, second = Worker(env, "first"), Worker(env, "second")
        workers.extend([first, second])
        first.wait_ready()
        second.wait_ready()
        with daphne(env) as server:
            response = server.request(
                "POST", "/api/v1/exports", {"format": "csv"}, {"Authorization": f"Bearer {api_key}"}
            )
            assert response.status == 202, response.body
            export_id = response.json()["id"]
            wait_for(lambda: export_row(export_id).status == ExportStatus.RUNNING, 30, "a start")
            started_at = export_row(export_id).started_at
            # The redelivered copy finds the export's lock held and retries (1 s apart:
            # RETRY_COUNTDOWN_MAX is half the visibility timeout) instead of writing.
            wait_for(
                lambda: "retry: Retry in" in first.log() + second.log(),
                60,
                "the task delivered a second time while the export runs",
            )
            assert export_row(export_id).status == ExportStatus.RUNNING
            wait_for(lambda: export_row(export_id).status == ExportStatus.DONE, 90, "the export")
            done = export_row(export_id)
            # Claimed once: a second writer would have started it over.
            assert done.started_at == started_at
            expected, rows = expected_file("csv", runs)
            assert (done.runs_done, done.row_count) == (RUNS, rows)
            assert files(exports_dir) == [f"{export_id}.csv"]
            assert (exports_dir / f"{export_id}.csv").read_bytes() == expected
            # The copies still waiting when it finished find it done and stop.
            wait_for(
                lambda: "'skipped'" in first.log() + second.log(),
                60,
                "the last redelivered copy to drop itself",
            )
        logs = first.log() + second.log()
        assert logs.count("'done'") == 1
