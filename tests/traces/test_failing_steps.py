"""Where a link to a failed run opens (``traces.error_steps.failing_steps``): the run
list, the review queue and the home page link a failed run at this step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from traces.error_steps import failing_steps
from traces.ingest import ingest_trace
from traces.models import Project, Run
from traces.parsing import parse_trace

pytestmark = pytest.mark.django_db

FAILURE = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"
SUCCESS = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01"


def ingest(project: Project, doc: dict[str, Any]) -> Run:
    run, _ = ingest_trace(project, parse_trace(json.dumps(doc).encode()))
    return run


def fixture(fixtures_dir: Path, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((fixtures_dir / f"{name}.json").read_text())
    return doc


def test_a_failed_run_opens_at_the_step_its_first_error_names(
    project: Project, fixtures_dir: Path
) -> None:
    failed = ingest(project, fixture(fixtures_dir, "tool_timeout_failure"))
    ok = ingest(project, fixture(fixtures_dir, "research_agent_success"))
    assert failing_steps([failed, ok]) == {failed.pk: 4}


def test_without_an_error_naming_its_step_the_first_failed_step(
    project: Project, fixtures_dir: Path
) -> None:
    doc = fixture(fixtures_dir, "tool_timeout_failure")
    doc["execution_id"] = "no-index"
    for error in doc["errors"]:
        error["execution_index"] = None
    # Two failed steps: the link opens the first.
    doc["nodes_executed"][2]["success"] = False
    run = ingest(project, doc)
    assert failing_steps([run]) == {run.pk: 2}


def test_the_run_list_the_queue_and_home_link_a_failed_run_at_its_failing_step(
    project: Project, member: Any, fixtures_dir: Path
) -> None:
    ingest(project, fixture(fixtures_dir, "tool_timeout_failure"))
    ingest(project, fixture(fixtures_dir, "research_agent_success"))
    client = Client()
    assert client.login(username="alice", password="pw-alice-123")
    failed = f'href="/projects/{project.slug}/runs/{FAILURE}/#step=4"'
    ok = f'href="/projects/{project.slug}/runs/{SUCCESS}/"'
    for url in (f"/projects/{project.slug}/runs/", "/"):
        page = client.get(url).content.decode()
        assert failed in page, url
        assert ok in page, url
    rows = client.get(f"/projects/{project.slug}/runs/rows.html?id={FAILURE}").content.decode()
    assert failed in rows
    queue = client.get(f"/projects/{project.slug}/review/?tab=unreviewed").content.decode()
    assert f'data-url="/projects/{project.slug}/runs/{FAILURE}/#step=4"' in queue
