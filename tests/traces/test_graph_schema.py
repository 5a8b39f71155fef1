"""DashFlow's graph schema read from a run's metadata: each accepted shape, and the
problem named (never an exception) for each malformed one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from traces.demo import RESEARCH_SCHEMA, demo_runs
from traces.graph_schema import (
    END,
    START,
    DeclaredEdge,
    parse_graph_schema,
    read_graph_schema,
)


def pairs(schema: Any) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in schema.edges}


@pytest.mark.parametrize(
    "edges",
    [
        [{"from": "a", "to": "b"}, {"from": "b", "to": "END"}],
        [{"source": "a", "target": "b"}, {"source": "b", "target": "__end__"}],
        [["a", "b"], ["b", "END"]],
    ],
    ids=["from-to", "source-target", "pairs"],
)
def test_each_edge_shape_reads_as_the_same_graph(edges: list[Any]) -> None:
    schema = parse_graph_schema({"nodes": ["a", "b"], "edges": edges, "entry_point": "a"})

    assert schema.nodes == (START, "a", "b", END)
    assert pairs(schema) == {(START, "a"), ("a", "b"), ("b", END)}
    assert schema.entry_point == "a"


def test_nodes_may_be_objects_with_name_or_id_or_an_object_keyed_by_name() -> None:
    listed = parse_graph_schema({"nodes": [{"name": "a"}, {"id": "b"}, "c"], "edges": []})
    keyed = parse_graph_schema({"nodes": {"a": {}, "b": {"kind": "llm"}}, "edges": []})

    assert listed.nodes == ("a", "b", "c")
    assert keyed.nodes == ("a", "b")


def test_conditional_edges_are_one_edge_per_branch_labelled_by_condition() -> None:
    schema = parse_graph_schema(
        {
            "nodes": ["critic", "retriever", "writer", "review"],
            "edges": [{"from": "critic", "to": {"more": "retriever", "done": "writer"}}],
            "conditional_edges": [
                {"source": "critic", "targets": ["review"]},
                {"from": "review", "to": "writer"},
            ],
        }
    )

    assert DeclaredEdge("critic", "retriever", True, "more") in schema.edges
    assert DeclaredEdge("critic", "writer", True, "done") in schema.edges
    assert DeclaredEdge("critic", "review", True) in schema.edges
    assert DeclaredEdge("review", "writer", True) in schema.edges


def test_a_plain_edge_wins_over_a_conditional_one_between_the_same_nodes() -> None:
    schema = parse_graph_schema(
        {"edges": [{"from": "a", "to": ["b"]}, {"from": "a", "to": "b"}, ["a", "b"]]}
    )

    assert schema.edges == (DeclaredEdge("a", "b"),)
    assert schema.nodes == ("a", "b")  # named only by edges, still declared


def test_the_schema_is_read_from_an_object_or_from_dashstreams_json_string() -> None:
    as_object = read_graph_schema({"graph_schema": RESEARCH_SCHEMA})
    as_text = read_graph_schema({"graph_schema_json": json.dumps(RESEARCH_SCHEMA)})

    assert as_object.problem is None
    assert as_object == as_text
    assert as_object.schema is not None
    assert "human_review" in as_object.schema.nodes
    assert read_graph_schema({"graph_name": "g"}).schema is None
    assert read_graph_schema({"graph_name": "g"}).problem is None
    assert read_graph_schema(None).problem is None


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"graph_schema_json": "{nodes"}, "graph_schema_json: is not valid JSON"),
        ({"graph_schema_json": 3}, "graph_schema_json: expected a JSON string"),
        ({"graph_schema": []}, "graph_schema: expected an object"),
        ({"graph_schema": {}}, "graph_schema: declares no nodes"),
        ({"graph_schema": {"nodes": "a,b"}}, "graph_schema.nodes: expected a list"),
        ({"graph_schema": {"nodes": [{"kind": "x"}]}}, "graph_schema.nodes[0]: expected a node"),
        ({"graph_schema": {"nodes": [""]}}, "graph_schema.nodes[0]: expected a node"),
        ({"graph_schema": {"edges": {"a": "b"}}}, "graph_schema.edges: expected a list"),
        ({"graph_schema": {"edges": [["a"]]}}, "graph_schema.edges[0]: expected [from, to]"),
        ({"graph_schema": {"edges": ["a"]}}, "graph_schema.edges[0]: expected an edge"),
        ({"graph_schema": {"edges": [{"from": "a"}]}}, "graph_schema.edges[0].to: expected"),
        (
            {"graph_schema": {"edges": [{"from": "a", "to": {"x": 1}}]}},
            "graph_schema.edges[0].to.x: expected a node",
        ),
        ({"graph_schema": {"nodes": ["a"], "entry_point": 7}}, "graph_schema.entry_point:"),
        (
            {"graph_schema": {"nodes": [str(i) for i in range(201)]}},
            "graph_schema.nodes: declares more than 200 nodes",
        ),
        ({"graph_schema_json": "[" * 100_000}, "graph_schema_json: is not valid JSON"),
    ],
)
def test_a_malformed_schema_is_a_problem_naming_the_part_never_an_exception(
    metadata: dict[str, Any], problem: str
) -> None:
    reading = read_graph_schema(metadata)

    assert reading.schema is None
    assert reading.problem is not None
    assert reading.problem.startswith(problem)


def test_the_demos_runs_declare_a_review_node_none_of_them_visits() -> None:
    for run in demo_runs(12):
        reading = read_graph_schema(run.metadata)
        assert reading.schema is not None
        assert "human_review" in reading.schema.nodes
        assert "human_review" not in {n.node for n in run.nodes_executed}
        assert {n.node for n in run.nodes_executed} <= set(reading.schema.nodes)
