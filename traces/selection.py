"""Which runs and steps an export reads: the selection, from an export's ``filters``.

It takes the run list's own filters (``traces/filters.py``: same names, parsed by the same
function, so a filter added there works here too) plus ``execution_ids``, a failure
``group``, a review ``verdict`` and ``nodes``. Every refusal is a 400 naming
``filters.<name>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db.models import Exists, OuterRef
from django.http import QueryDict

from .errors import InputError
from .filters import FILTER_NAMES, RunFilter, parse_run_filter
from .models import (
    ExportFormat,
    Failure,
    FailureGroup,
    Project,
    Run,
    RunQuerySet,
    Step,
    StepVerdict,
    Verdict,
)
from .trace import ExecutionTrace

# Filters of exports only, beside the run list's FILTER_NAMES.
EXPORT_FILTER_NAMES: tuple[str, ...] = ("execution_ids", "group", "verdict", "nodes")
# Runs of one graph (metadata.graph_name), until the run list has a filter of that name.
if "graph" not in FILTER_NAMES:
    EXPORT_FILTER_NAMES += ("graph",)
VERDICTS = (*Verdict.values, "any")
MAX_LIST = 10_000  # most execution ids or node names in one selection


def _bad(field: str, rule: str) -> InputError:
    return InputError(f"filters.{field}", rule)


@dataclass(frozen=True)
class Selection:
    """Which runs an export reads, and which of their steps."""

    run_filter: RunFilter
    execution_ids: tuple[str, ...] | None = None
    group: int | None = None
    verdict: str | None = None
    nodes: frozenset[str] | None = None
    graph: str | None = None

    def runs(self, project: Project) -> RunQuerySet:
        """The selected runs, in the run filter's order or oldest first."""
        runs = self.run_filter.apply(Run.objects.filter(project=project))
        if self.execution_ids is not None:
            runs = runs.filter(execution_id__in=self.execution_ids)
        if self.group is not None:
            runs = runs.filter(
                Exists(Failure.objects.filter(run=OuterRef("pk"), group_id=self.group))
            )
        if self.verdict is not None:
            verdicts = StepVerdict.objects.filter(run=OuterRef("pk"))
            if self.verdict != "any":
                verdicts = verdicts.filter(verdict=self.verdict)
            runs = runs.filter(Exists(verdicts))
        if self.graph is not None:
            runs = runs.filter(graph_name=self.graph)
        if self.nodes is not None:
            runs = runs.filter(Exists(Step.objects.filter(run=OuterRef("pk"), node__in=self.nodes)))
        if not runs.ordered:
            runs = runs.order_by("started_at", "id")
        return runs

    def steps_of(self, trace: ExecutionTrace, verdicts: Mapping[int, str]) -> frozenset[int] | None:
        """Positions of the run's steps to export; None: all of them."""
        keep: frozenset[int] | None = None
        if self.verdict is not None:
            keep = frozenset(
                p for p, v in verdicts.items() if self.verdict == "any" or v == self.verdict
            )
        if self.nodes is not None:
            nodes = self.nodes
            by_node = frozenset(i for i, n in enumerate(trace.nodes_executed) if n.node in nodes)
            keep = by_node if keep is None else keep & by_node
        return keep


def _string_list(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in (part.strip() for part in value.split(",")) if v]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(field, "expected a list of non-empty strings")
    if not value:
        raise _bad(field, "expected at least one value")
    if len(value) > MAX_LIST:
        raise _bad(field, f"expected at most {MAX_LIST} values, got {len(value)}")
    return tuple(dict.fromkeys(value))


def parse_selection(
    project: Project, raw: Any, *, strict: bool = True
) -> tuple[Selection, dict[str, Any]]:
    """Validate an export's ``filters``; the selection and the filters as stored.

    An empty value means "no filter". Unknown names and bad values raise a 400 that names
    ``filters.<name>``. ``strict=False`` (the export running later) lets execution ids
    name runs deleted since: they are simply not exported.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError("filters", "expected an object")
    known = (*FILTER_NAMES, *EXPORT_FILTER_NAMES)
    for name in raw:
        if name not in known:
            raise _bad(name, f"unknown filter; expected one of {', '.join(known)}")
    stored: dict[str, Any] = {}
    params = QueryDict(mutable=True)
    for name in FILTER_NAMES:
        value = raw.get(name)
        if value is None or value == "" or value == []:
            continue
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) for v in values):
            raise _bad(name, "expected a string")
        params.setlist(name, values)
        stored[name] = value
    try:
        run_filter = parse_run_filter(params)
    except InputError as exc:
        raise _bad(exc.path, exc.rule) from None

    execution_ids = nodes = None
    if raw.get("execution_ids") not in (None, "", []):
        execution_ids = _string_list("execution_ids", raw["execution_ids"])
        stored["execution_ids"] = list(execution_ids)
        found = (
            set(
                Run.objects.filter(project=project, execution_id__in=execution_ids).values_list(
                    "execution_id", flat=True
                )
            )
            if strict
            else set(execution_ids)
        )
        unknown = [e for e in execution_ids if e not in found]
        if unknown and strict:
            shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise _bad("execution_ids", f"{len(unknown)} not runs of this project: {shown}")
    if raw.get("nodes") not in (None, "", []):
        nodes = _string_list("nodes", raw["nodes"])
        stored["nodes"] = list(nodes)

    graph = None
    if "graph" in EXPORT_FILTER_NAMES and raw.get("graph") not in (None, ""):
        graph = raw["graph"]
        if not isinstance(graph, str):
            raise _bad("graph", "expected a graph name (a string)")
        stored["graph"] = graph

    group = None
    if raw.get("group") not in (None, ""):
        value = raw["group"]
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad("group", "expected a failure group id (an integer)")
        if not FailureGroup.objects.filter(project=project, pk=value).exists():
            raise _bad("group", f"no failure group {value} in this project")
        group = value
        stored["group"] = value

    verdict = None
    if raw.get("verdict") not in (None, ""):
        verdict = raw["verdict"]
        if verdict not in VERDICTS:
            raise _bad("verdict", f"expected one of {', '.join(VERDICTS)}, got {verdict!r}")
        stored["verdict"] = verdict

    selection = Selection(
        run_filter=run_filter,
        execution_ids=execution_ids,
        group=group,
        verdict=verdict,
        nodes=frozenset(nodes) if nodes is not None else None,
        graph=graph,
    )
    return selection, stored


def parse_format(raw: Any) -> str:
    if raw not in ExportFormat.values:
        allowed = ", ".join(ExportFormat.values)
        raise InputError("format", f"expected one of {allowed}, got {raw!r}")
    fmt: str = raw
    return fmt
