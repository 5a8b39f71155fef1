"""A run's declared graph: the nodes and edges DashFlow's graph schema says the agent has.

DashFlow's DashStream GRAPH_START event may carry ``graph_schema_json``; a trace's
metadata carries the same as ``graph_schema`` (an object) or ``graph_schema_json`` (a
JSON string). This module reads either into one plain ``GraphSchema``, or says why it
cannot; it never touches rows, so the run page, and later a DashStream ingest, share it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError

START = "__start__"
END = "__end__"
# DashFlow (like LangGraph) spells the terminal node several ways; one name is drawn.
ALIASES = {"END": END, "__END__": END, "START": START, "__START__": START}
# A schema is drawn node by node: past these it would not read as a graph anyway, and a
# run's metadata must not make the page build an unbounded figure.
MAX_NODES = 200
MAX_EDGES = 1000


@dataclass(frozen=True)
class DeclaredEdge:
    source: str
    target: str
    # A conditional edge is one branch of a routing decision; ``label`` names the branch
    # when the schema maps conditions to targets.
    conditional: bool = False
    label: str | None = None


@dataclass(frozen=True)
class GraphSchema:
    """Nodes in declaration order (``__start__`` first and ``__end__`` last when present)
    and edges, each pair once (a plain edge wins over a conditional one)."""

    nodes: tuple[str, ...]
    edges: tuple[DeclaredEdge, ...]
    entry_point: str | None = None


@dataclass(frozen=True)
class SchemaReading:
    """What a run's metadata says about its declared graph: a schema, nothing (no schema
    given), or a problem (a schema was given and could not be read: ``problem`` says
    where and why, in words for the page)."""

    schema: GraphSchema | None = None
    problem: str | None = None


def _name(value: Any, path: str) -> str:
    if isinstance(value, Mapping):
        value = value.get("name", value.get("id"))
    if not isinstance(value, str) or not value:
        raise InputError(
            path, "expected a node name (a non-empty string, or an object with name or id)"
        )
    return ALIASES.get(value, value)


def _edges(value: Any, path: str, conditional: bool) -> list[DeclaredEdge]:
    """One declared edge entry as edges: ``{"from", "to"}``, ``{"source", "target"}`` or
    ``[from, to]``; a conditional ``to`` may be a list of targets or a mapping of
    condition → target."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise InputError(path, "expected [from, to]")
        return [DeclaredEdge(_name(value[0], f"{path}[0]"), _name(value[1], f"{path}[1]"))]
    if not isinstance(value, Mapping):
        raise InputError(
            path, "expected an edge: an object with from/to or source/target, or [from, to]"
        )
    key = "from" if "from" in value else "source"
    source = _name(value.get(key), f"{path}.{key}")
    # LangGraph-style conditional edges name their targets "path_map" or "branches".
    key = next((k for k in ("to", "target", "targets", "branches", "path_map") if k in value), "to")
    target = value.get(key)
    conditional = conditional or bool(value.get("conditional")) or key not in ("to", "target")
    if isinstance(target, Mapping):
        return [
            DeclaredEdge(source, _name(t, f"{path}.{key}.{c}"), True, str(c))
            for c, t in target.items()
        ]
    if isinstance(target, list | tuple):
        return [
            DeclaredEdge(source, _name(t, f"{path}.{key}[{i}]"), True) for i, t in enumerate(target)
        ]
    return [DeclaredEdge(source, _name(target, f"{path}.{key}"), conditional)]


def parse_graph_schema(value: Any, path: str = "graph_schema") -> GraphSchema:
    """A DashFlow graph schema as a ``GraphSchema``; ``InputError`` (naming the part, from
    ``path``) when it is not one.

    Accepted shapes:

    - an object with ``nodes``: a list of names, of objects with ``name`` or ``id``, or an
      object keyed by node name;
    - ``edges``: a list of ``{"from", "to"}``, ``{"source", "target"}`` or ``[from, to]``;
      an edge whose ``to`` is a list of targets or a ``{"condition": target}`` object is
      conditional (one edge per target), as is one that names them ``targets``,
      ``branches`` or ``path_map``; ``"conditional": true`` marks one too;
    - optional ``conditional_edges``: the same entries, all conditional;
    - optional ``entry_point`` (or ``entry``): a node name; the graph then starts with a
      ``__start__`` → entry edge;
    - ``__start__``/``START`` and ``__end__``/``END`` are the graph's start and end; a node
      named only in an edge is declared too;
    - at most ``MAX_NODES`` nodes and ``MAX_EDGES`` edges.
    """
    if not isinstance(value, Mapping):
        raise InputError(path, "expected an object with nodes and edges")
    raw_nodes = value.get("nodes", [])
    if isinstance(raw_nodes, Mapping):
        raw_nodes = list(raw_nodes)
    if not isinstance(raw_nodes, list):
        raise InputError(f"{path}.nodes", "expected a list of nodes")
    nodes = [_name(n, f"{path}.nodes[{i}]") for i, n in enumerate(raw_nodes)]
    edges: list[DeclaredEdge] = []
    for field, conditional in (("edges", False), ("conditional_edges", True)):
        raw = value.get(field, [])
        if not isinstance(raw, list):
            raise InputError(f"{path}.{field}", "expected a list of edges")
        for i, edge in enumerate(raw):
            edges += _edges(edge, f"{path}.{field}[{i}]", conditional)
    entry = value.get("entry_point", value.get("entry"))
    entry_point = None if entry is None else _name(entry, f"{path}.entry_point")
    if entry_point is not None and entry_point != START:
        edges.insert(0, DeclaredEdge(START, entry_point))
    if not nodes and not edges:
        raise InputError(path, "declares no nodes and no edges")

    # A plain edge and a conditional one between the same pair are drawn as one.
    unique: dict[tuple[str, str], DeclaredEdge] = {}
    for edge in edges:
        known = unique.get((edge.source, edge.target))
        if known is None or (known.conditional and not edge.conditional):
            unique[edge.source, edge.target] = edge
    named = dict.fromkeys([*nodes, *(n for e in unique.values() for n in (e.source, e.target))])
    ordered = [n for n in named if n not in (START, END)]
    ordered = [START] * (START in named) + ordered + [END] * (END in named)
    if len(ordered) > MAX_NODES:
        raise InputError(f"{path}.nodes", f"declares more than {MAX_NODES} nodes")
    if len(unique) > MAX_EDGES:
        raise InputError(f"{path}.edges", f"declares more than {MAX_EDGES} edges")
    return GraphSchema(tuple(ordered), tuple(unique.values()), entry_point)


def read_graph_schema(metadata: Any) -> SchemaReading:
    """The declared graph in a run's metadata: ``graph_schema`` (an object) or
    ``graph_schema_json`` (that object as a JSON string, as DashStream's GRAPH_START
    attribute carries it). No key: an empty reading; a malformed one: its problem."""
    if not isinstance(metadata, Mapping):
        return SchemaReading()
    try:
        if metadata.get("graph_schema") is not None:
            return SchemaReading(parse_graph_schema(metadata["graph_schema"]))
        text = metadata.get("graph_schema_json")
        if text is None:
            return SchemaReading()
        if not isinstance(text, str):
            raise InputError("graph_schema_json", "expected a JSON string")
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            raise InputError("graph_schema_json", "is not valid JSON") from None
        return SchemaReading(parse_graph_schema(value, "graph_schema_json"))
    except InputError as error:
        return SchemaReading(problem=str(error))
