"""The run page's graph with a declared schema: declared nodes and edges with what the run
did on them, what it did outside them, and the fallback when the schema is unreadable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.test import Client

from tests.visualizer.conftest import page_data
from traces.demo import RESEARCH_SCHEMA
from traces.graph_schema import read_graph_schema
from traces.ingest import ingest_trace
from traces.models import Project
from traces.trace import ExecutionTrace
from visualizer.graph_chart import UNUSED_LINE, WARN_COLOR, graph_figure
from visualizer.timeline import FAIL_COLOR


def steps(*nodes: str, failed: str | None = None) -> list[dict[str, Any]]:
    return [
        {"index": i, "node": n, "duration_ms": 10, "tokens_used": 0, "success": n != failed}
        for i, n in enumerate(nodes)
    ]


RUN = ("planner", "retriever", "reader", "critic", "retriever", "reader", "critic", "writer")
DECLARED = read_graph_schema({"graph_schema": RESEARCH_SCHEMA})


def trace(figure: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [t for t in figure["data"] if t["name"] == name]
    return found


def counts(figure: dict[str, Any], name: str) -> dict[tuple[str, str], int]:
    return {(a, b): n for a, b, n in trace(figure, name)["customdata"]}


def test_declared_edges_carry_how_often_the_run_took_them_zero_for_never() -> None:
    figure = graph_figure(steps(*RUN), DECLARED)

    assert counts(figure, "transitions") == {
        ("__start__", "planner"): 1,
        ("planner", "retriever"): 1,
        ("retriever", "reader"): 2,
        ("reader", "critic"): 2,
        ("critic", "retriever"): 1,
        ("critic", "human_review"): 0,
        ("critic", "writer"): 1,
        ("human_review", "writer"): 0,
        ("writer", "__end__"): 1,
    }
    never = [s for s in figure["layout"]["shapes"] if s["line"].get("dash") == "dot"]
    assert len(never) == 2
    assert {s["line"]["color"] for s in never} == {UNUSED_LINE}
    hover = trace(figure, "transitions")["hovertext"]
    assert "critic → human_review<br>never taken<br>conditional · branch doubt" in hover


def test_a_declared_node_never_visited_is_drawn_faint_with_a_count_of_zero() -> None:
    figure = graph_figure(steps(*RUN), DECLARED)

    assert trace(figure, "never visited")["customdata"] == ["human_review"]
    assert trace(figure, "visited")["customdata"] == [
        "planner", "retriever", "reader", "critic", "writer"
    ]  # fmt: skip
    labels = {a["text"] for a in figure["layout"]["annotations"]}
    assert {"human_review \u00d70", "retriever \u00d72", "start", "end"} <= labels
    assert "not in the schema" not in json.dumps(figure["data"])
    title = figure["layout"]["title"]["text"]
    assert title.startswith("Declared graph · 5 of 6 nodes visited · 7 of 9 edges taken")
    assert "1 never visited" in title
    # Laid out by first visit; the unvisited node sits right after its predecessor.
    x = {
        n: x
        for t in figure["data"]
        if t["name"] in ("visited", "never visited", "start / end")
        for n, x in zip(t["customdata"], t["x"], strict=True)
    }
    order = sorted(x, key=x.__getitem__)
    assert order == [
        "__start__", "planner", "retriever", "reader", "critic", "human_review", "writer", "__end__"
    ]  # fmt: skip


def test_visits_and_transitions_outside_the_schema_are_marked_in_the_warning_colour() -> None:
    figure = graph_figure(steps("planner", "cache", "retriever", "writer"), DECLARED)

    off = trace(figure, "not in the schema")
    assert off["customdata"] == ["cache"]
    assert off["showlegend"] is True
    assert set(off["marker"]["line"]["color"]) == {WARN_COLOR}
    assert counts(figure, "off-schema transitions") == {
        ("planner", "cache"): 1,
        ("cache", "retriever"): 1,
        ("retriever", "writer"): 1,
    }
    assert counts(figure, "transitions")["planner", "retriever"] == 0
    warned = [s for s in figure["layout"]["shapes"] if s["line"]["color"] == WARN_COLOR]
    assert len(warned) == 3
    assert "4 not in the schema" in figure["layout"]["title"]["text"]
    assert figure["layout"]["showlegend"] is True


def test_a_run_that_starts_elsewhere_or_fails_last_is_said_so_at_start_and_end() -> None:
    figure = graph_figure(steps("retriever", "reader", "writer", failed="writer"), DECLARED)

    assert counts(figure, "off-schema transitions")[("__start__", "retriever")] == 1
    # The failing writer did not reach the end.
    assert counts(figure, "transitions")["writer", "__end__"] == 0
    [writer_line] = trace(figure, "visited")["marker"]["line"]["color"][-1:]
    assert writer_line == FAIL_COLOR


def test_an_unreadable_schema_falls_back_to_the_observed_graph_and_says_why() -> None:
    broken = read_graph_schema({"graph_schema_json": '{"edges": [["a"]]}'})

    figure = graph_figure(steps(*RUN), broken)

    assert figure["data"] == graph_figure(steps(*RUN))["data"]
    assert figure["layout"]["title"]["text"] == (
        "Observed transitions: the declared graph could not be read "
        "(graph_schema_json.edges[0]: expected [from, to])"
    )
    assert figure["layout"]["showlegend"] is False
    assert "title" not in graph_figure(steps(*RUN))["layout"]


def test_declared_names_and_branches_are_escaped_for_plotly() -> None:
    schema = read_graph_schema({"graph_schema": {"edges": [{"from": "<b>", "to": {"<i>": "x"}}]}})

    figure = graph_figure(steps("<b>", "x"), schema)

    shown = json.dumps(
        [[t["hovertext"] for t in figure["data"]], figure["layout"]], ensure_ascii=False
    )
    assert "<b>" not in shown
    assert "<i>" not in shown
    assert "&lt;b&gt; → x" in shown


def test_an_empty_run_draws_its_declared_graph_all_unvisited() -> None:
    figure = graph_figure([], DECLARED)

    assert len(trace(figure, "never visited")["customdata"]) == 6
    assert set(counts(figure, "transitions").values()) == {0}
    json.dumps(figure)


def test_the_run_page_and_its_refetch_carry_the_declared_graph(
    alice: Client, project: Project, fixtures_dir: Path
) -> None:
    raw = json.loads((fixtures_dir / "research_agent_success.json").read_text())
    raw["metadata"]["graph_schema_json"] = json.dumps(RESEARCH_SCHEMA)
    run = ExecutionTrace.from_json(json.dumps(raw).encode())
    ingest_trace(project, run)

    data = page_data(
        alice.get(f"/projects/acme/runs/{run.execution_id}/").content.decode(), "run-data"
    )
    refetched = alice.get(data["timeline_url"]).json()

    for graph in (data["graph"], refetched["graph"]):
        assert graph["layout"]["title"]["text"].startswith("Declared graph")
        assert trace(graph, "never visited")["customdata"] == ["human_review"]
