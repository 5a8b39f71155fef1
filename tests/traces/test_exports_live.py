"""Export progress pushed over a real websocket from a real Daphne: a viewer of the
project's exports page sees the export queued, running with its progress growing, and
done; strangers and anonymous clients are refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from tests.servers import Daphne, daphne, database_url, free_port, server_env, session_cookie
from tests.traces.exports_support import store_copies
from traces.models import Export, ExportStatus, Membership, Project, Role

pytestmark = pytest.mark.django_db(transaction=True)

RUNS = 20


@pytest.fixture(scope="module")
def exports_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def server(django_db_setup: None, exports_dir: Path) -> Iterator[Daphne]:
    # Embedded Celery (the task runs in Daphne's process) with a pause per run, so the
    # export lasts long enough to report progress several times.
    env = server_env(
        database_url(connection.settings_dict),
        EXPORT_DIR=str(exports_dir),
        EXPORT_RUN_DELAY_MS="60",
        EXPORT_PROGRESS_EVERY="1",
    )
    with daphne(env) as live:
        yield live


def test_progress_reaches_the_exports_page_over_the_websocket(
    server: Daphne, project: Project, member: Any, api_key: str, fixtures_dir: Path
) -> None:
    nodes = store_copies(project, fixtures_dir, "research_agent_success", RUNS)[0].node_count
    with server.websocket("/ws/projects/acme/exports/", session_cookie(member)) as ws:
        assert ws.receive() == {"type": "exports", "exports": []}
        answers: list[Any] = []
        poster = threading.Thread(
            target=lambda: answers.append(
                server.request(
                    "POST",
                    "/api/v1/exports",
                    {"format": "csv", "filters": {"status": "completed"}},
                    {"Authorization": f"Bearer {api_key}"},
                )
            )
        )
        poster.start()
        seen: list[dict[str, Any]] = []
        while not seen or seen[-1]["status"] not in ("done", "failed"):
            message = ws.receive(timeout=30)
            assert message["type"] == "export", message
            seen.append(message["export"])
        poster.join(30)

    assert answers[0].status == 202, answers[0].body
    export_id = answers[0].json()["id"]
    assert {e["id"] for e in seen} == {export_id}
    statuses = [e["status"] for e in seen]
    assert statuses[0] == "queued"
    assert statuses[-1] == "done"
    running = [e for e in seen if e["status"] == "running"]
    progress = [e["progress"] for e in running]
    assert len([p for p in progress if 0 < p < 100]) >= 3, progress
    assert progress == sorted(progress)
    assert [e["runs_done"] for e in running] == sorted(e["runs_done"] for e in running)
    done = seen[-1]
    export = Export.objects.get(pk=export_id)
    assert export.status == ExportStatus.DONE
    assert (done["runs_total"], done["runs_done"], done["progress"]) == (RUNS, RUNS, 100)
    assert done["row_count"] == export.row_count == RUNS * nodes
    assert done["size"] == export.size_bytes > 0
    assert done["download_url"] == f"/api/v1/exports/{export_id}/download"


def test_a_new_viewer_gets_the_exports_so_far_first(
    server: Daphne, project: Project, member: Any
) -> None:
    export = Export.objects.create(project=project, format="csv", status=ExportStatus.DONE)
    with server.websocket("/ws/projects/acme/exports/", session_cookie(member)) as ws:
        snapshot = ws.receive()
    assert snapshot["type"] == "exports"
    assert [e["id"] for e in snapshot["exports"]] == [str(export.pk)]


def test_strangers_and_anonymous_clients_are_refused(
    server: Daphne, project: Project, other_project: Project
) -> None:
    mallory = get_user_model().objects.create_user("mallory", password="pw-mallory-123")
    Membership.objects.create(project=other_project, user=mallory, role=Role.ADMIN)
    with server.websocket("/ws/projects/acme/exports/", session_cookie(mallory)) as ws:
        assert ws.close_code() == 4403
    with server.websocket("/ws/projects/acme/exports/") as ws:
        assert ws.close_code() == 4401


def test_an_export_whose_task_cannot_be_queued_says_so(
    project: Project, api_key: str, exports_dir: Path
) -> None:
    # A broker that is down: nothing listens on this port.
    broker = f"redis://127.0.0.1:{free_port()}/0"
    env = server_env(database_url(connection.settings_dict), broker, EXPORT_DIR=str(exports_dir))
    with daphne(env) as server:
        response = server.request(
            "POST", "/api/v1/exports", {"format": "csv"}, {"Authorization": f"Bearer {api_key}"}
        )
        assert response.status == 202, response.body
        body = response.json()
        assert body["status"] == "failed"
        assert body["error"].startswith("could not queue the task")
        assert Export.objects.get(pk=body["id"]).status == ExportStatus.FAILED
        # The server keeps serving.
        listed = server.request(
            "GET", "/api/v1/exports", headers={"Authorization": f"Bearer {api_key}"}
        )
        assert listed.status == 200
