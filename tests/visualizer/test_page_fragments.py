"""What the pages' scripts ask the server for instead of deciding themselves: a run's or a
failure group's row rendered as on the page, the step each error belongs to, and the
URLs each page hands its script (reversed, never written out)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from tests.visualizer.conftest import page_data
from traces.ingest import ingest_trace
from traces.models import FailureGroup, GroupStatus, Project, Run
from traces.trace import ExecutionTrace
from visualizer.run_data import error_rows, step_rows

TIMEOUT_RUN = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"


@pytest.fixture
def failed_run(project: Project, fixtures_dir: Path) -> Run:
    body = (fixtures_dir / "tool_timeout_failure.json").read_bytes()
    run, _ = ingest_trace(project, ExecutionTrace.from_json(body))
    return run


def test_run_rows_are_the_rows_the_page_renders_in_the_order_asked(
    alice: Client, failed_run: Run, project: Project, fixtures_dir: Path
) -> None:
    body = (fixtures_dir / "research_agent_success.json").read_bytes()
    other, _ = ingest_trace(project, ExecutionTrace.from_json(body))
    page = alice.get("/projects/acme/runs/").content.decode()

    response = alice.get(
        "/projects/acme/runs/rows.html",
        {"id": [other.execution_id, "no-such-run", failed_run.execution_id]},
    )

    assert response.status_code == 200
    html = response.content.decode()
    ids = re.findall(r'<tr data-execution-id="([^"]+)"', html)
    assert ids == [other.execution_id, failed_run.execution_id]
    first_row = re.search(r"<tr data-execution-id=.*?</tr>", html, re.S)
    assert first_row
    assert first_row.group(0) in page


def test_a_failure_row_comes_only_while_the_group_belongs_under_the_tab(
    alice: Client, failed_run: Run, project: Project
) -> None:
    group = FailureGroup.objects.get(project=project)
    url = f"/projects/acme/failures/rows.html?status=open&id={group.pk}"

    assert f'data-group-id="{group.pk}"' in alice.get(url).content.decode()
    FailureGroup.objects.filter(pk=group.pk).update(status=GroupStatus.RESOLVED)
    assert "data-group-id" not in alice.get(url).content.decode()
    resolved = f"/projects/acme/failures/rows.html?status=resolved&id={group.pk}"
    assert f'data-group-id="{group.pk}"' in alice.get(resolved).content.decode()
    assert alice.get("/projects/acme/failures/rows.html?id=x").status_code == 400


def test_each_error_names_its_step_the_named_one_else_the_latest_failure_of_its_node(
    failed_run: Run,
) -> None:
    steps = step_rows(failed_run)
    (error,) = error_rows(failed_run, steps)
    assert error["step_index"] == 4

    failed_run.errors.update(execution_index=None)
    (error,) = error_rows(failed_run, steps)
    assert error["step_index"] == 4  # the retriever's failed step
    failed_run.errors.update(node="writer")
    (error,) = error_rows(failed_run, steps)
    assert error["step_index"] is None


def test_step_rows_read_raw_columns_as_the_orm_would(failed_run: Run) -> None:
    # A u64 past 2**63 is stored wrapped (traces/fields.py); the list shows it whole.
    failed_run.steps.filter(index=1).update(duration_ms=2**64 - 1, tokens_used=2**63)

    rows = step_rows(failed_run)

    orm = list(failed_run.steps.order_by("position"))
    assert [r["index"] for r in rows] == [s.index for s in orm]
    assert [r["position"] for r in rows] == [s.position for s in orm]
    assert [(r["node"], r["error_message"]) for r in rows] == [
        (s.node, s.error_message) for s in orm
    ]
    assert [r["success"] for r in rows] == [s.success for s in orm]
    assert {type(r["success"]) for r in rows} == {bool}
    assert [r["tools_called"] for r in rows] == [s.tools_called for s in orm]
    assert [r["started_at"] for r in rows] == [s.started_at_text for s in orm]
    wrapped = next(r for r in rows if r["index"] == 1)
    assert (wrapped["duration_ms"], wrapped["tokens_used"]) == (2**64 - 1, 2**63)


def test_the_run_page_hands_its_script_reversed_urls_and_one_socket_path(
    alice: Client, failed_run: Run
) -> None:
    html = alice.get(f"/projects/acme/runs/{TIMEOUT_RUN}/").content.decode()
    data = page_data(html, "run-data")
    base = f"/projects/acme/runs/{TIMEOUT_RUN}/"
    assert data["step_url"] == f"{base}steps/{{index}}.json"
    assert data["errors_url"] == f"{base}errors.json"
    assert data["ws_path"] == f"/ws/runs/{TIMEOUT_RUN}/?project=acme"
    # The review panel opens no socket of its own: it names the page's.
    assert f'data-ws-path="/ws/runs/{TIMEOUT_RUN}/?project=acme"' in html
    assert (
        f'data-verdict-url="/api/v1/runs/{TIMEOUT_RUN}/steps/{{index}}/verdict?project=acme"'
        in html
    )
    assert 'data-comment-url="/api/v1/comments/{id}?project=acme"' in html
    errors = alice.get(data["errors_url"]).json()["errors"]
    assert [e["step_index"] for e in errors] == [4]
