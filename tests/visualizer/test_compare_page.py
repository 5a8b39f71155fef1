"""The compare page, its pair endpoint, its entry points, and the two-lane timeline
builder (a pure function)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.test import Client

from tests.visualizer.conftest import page_data
from traces.ingest import ingest_trace
from traces.models import Project, Run
from traces.trace import ExecutionTrace
from visualizer.compare_charts import compare_timeline_figure
from visualizer.timeline import TIMELINE_BAR_BUDGET


def research_runs(project: Project, fixtures_dir: Path) -> tuple[Run, Run]:
    runs = []
    for name in ("tool_timeout_failure", "research_agent_success"):
        trace = ExecutionTrace.from_json((fixtures_dir / f"{name}.json").read_bytes())
        runs.append(ingest_trace(project, trace)[0])
    return runs[0], runs[1]


def test_the_page_lists_aligned_rows_and_names_the_divergence(
    alice: Client, project: Project, fixtures_dir: Path
) -> None:
    bad, good = research_runs(project, fixtures_dir)
    response = alice.get(f"/projects/acme/compare/?a={bad.execution_id}&b={good.execution_id}")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="jump-divergence"' in html
    data = page_data(html, "compare-data")
    assert data["row_count"] == 11
    assert data["divergence"]["row"] == 0
    # The rows as columns (a 10,000-row comparison stays small); a side's step by index.
    assert len(data["rows"]["kind"]) == len(data["rows"]["a"]) == 11
    assert data["rows"]["a"][0] == 0
    assert data["rows"]["a_ok"][0] is True
    alone = data["rows"]["kind"].index("inserted")
    assert data["rows"]["a"][alone] is None
    assert data["step_link"]["b"] == f"/projects/acme/runs/{good.execution_id}/#step={{index}}"
    assert data["timeline"]["data"][-1]["name"] == "divergence"


def test_the_pair_endpoint_diffs_the_two_runs_states(
    alice: Client, project: Project, fixtures_dir: Path
) -> None:
    bad, good = research_runs(project, fixtures_dir)
    ids = f"a={bad.execution_id}&b={good.execution_id}"
    view = alice.get(f"/projects/acme/compare/pair.json?{ids}&ai=0&bi=0&at=before").json()
    assert view["at"] == "before"
    assert view["has_both_states"] is True
    assert "/question" in [c["path"] for c in view["changes"]]
    # The failing retriever left no state after: nothing to diff, said so.
    failed = alice.get(f"/projects/acme/compare/pair.json?{ids}&ai=4&bi=4").json()
    assert failed["has_both_states"] is False
    refused = alice.get(f"/projects/acme/compare/pair.json?{ids}&ai=x&bi=0")
    assert refused.status_code == 400
    assert refused.json()["path"] == "ai"


def test_bad_or_foreign_ids_are_refused(
    alice: Client, project: Project, other_project: Project, fixtures_dir: Path
) -> None:
    bad, _ = research_runs(project, fixtures_dir)
    missing_b = alice.get(f"/projects/acme/compare/?a={bad.execution_id}")
    assert missing_b.status_code == 400
    assert "required" in missing_b.content.decode()
    assert alice.get("/projects/acme/compare/").status_code == 200  # the empty form
    trace = ExecutionTrace.from_json((fixtures_dir / "research_agent_success.json").read_bytes())
    trace.execution_id = "theirs"
    ingest_trace(other_project, trace)
    assert alice.get(f"/projects/acme/compare/?a={bad.execution_id}&b=theirs").status_code == 404
    assert alice.get("/projects/other/compare/?a=theirs&b=theirs").status_code == 404


def test_a_failed_runs_page_offers_its_last_success_and_the_list_offers_select_two(
    alice: Client, project: Project, fixtures_dir: Path
) -> None:
    bad, good = research_runs(project, fixtures_dir)
    html = alice.get(f"/projects/acme/runs/{bad.execution_id}/").content.decode()
    assert f"?a={bad.execution_id}&amp;b={good.execution_id}" in html
    assert "Compare with last success" in html
    listing = alice.get("/projects/acme/runs/").content.decode()
    assert listing.count('class="compare-pick"') == 2
    assert page_data(listing, "runs-data")["compare_url"] == "/projects/acme/compare/"


def side(index: int, ok: bool = True, ms: int = 10) -> dict[str, Any]:
    return {"index": index, "duration_ms": ms, "tokens_used": 1, "success": ok, "started_at": None}


def test_the_timeline_has_a_lane_per_run_and_marks_the_divergence() -> None:
    rows = [
        {"node": "plan", "a": side(0), "b": side(0)},
        {"node": "fetch", "a": side(1, ok=False), "b": side(1)},
        {"node": "write", "a": None, "b": side(2)},
    ]
    figure = compare_timeline_figure(rows, {"row": 1, "at": "after"})
    by_name = {t["name"]: t for t in figure["data"]}
    assert set(by_name) == {"a ok", "a failed", "b ok", "divergence"}
    assert by_name["b ok"]["customdata"] == [0, 1, 2]
    assert by_name["b ok"]["base"] == [0.0, 10.0, 20.0]
    assert by_name["a failed"]["y"] == ["run a"]
    # The diamond sits at the end of the diverging step in each lane.
    assert by_name["divergence"]["x"] == [20.0, 20.0]
    assert by_name["divergence"]["customdata"] == [1, 1]
    json.dumps(figure)


def test_a_long_comparison_aggregates_bars_within_the_budget() -> None:
    rows = [{"node": "loop", "a": side(i), "b": side(i, ok=i % 100 != 0)} for i in range(10_000)]
    figure = compare_timeline_figure(rows, None)
    bars = sum(len(t["x"]) for t in figure["data"])
    assert bars <= TIMELINE_BAR_BUDGET
    assert any(t["name"] == "b failed" for t in figure["data"])
