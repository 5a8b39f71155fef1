"""Export of a project's reviews, step verdicts and comments, as JSON or CSV, streamed.

Rows are read in primary-key batches (keyset, not OFFSET), so memory stays flat however
many there are and each batch is one indexed query. Steps are named by both their
DashFlow ``index`` and their ``position`` in ``nodes_executed`` (verdicts are keyed by
position, which survives re-ingestion).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, TypeVar

import msgspec
from django.db.models import Model, QuerySet

from . import csvcells
from .fields import iso
from .models import Comment, Project, RunReview, Step, StepVerdict

BATCH = 500
CHUNK_BYTES = 64 * 1024

CSV_COLUMNS = [
    "record",
    "execution_id",
    "step_index",
    "step_position",
    "node",
    "status",
    "assignee",
    "labels",
    "verdict",
    "reason",
    "path",
    "author",
    "body",
    "mentions",
    "created_at",
    "updated_at",
]

_json = msgspec.json.Encoder()
M = TypeVar("M", bound=Model)


def _batches(queryset: QuerySet[M], *fields: str) -> Iterator[list[dict[str, Any]]]:
    """``fields`` of the rows (plain values: no model instances, no unused columns) in
    primary-key batches."""
    last: Any = None
    while True:
        page = queryset.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        rows = list(page.values("pk", *fields)[:BATCH])
        if not rows:
            return
        yield rows
        last = rows[-1]["pk"]


def _steps(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, str]]:
    """(run id, position) → (index, node) of the step, for one batch."""
    if not pairs:
        return {}
    runs = {run for run, _ in pairs}
    positions = {position for _, position in pairs}
    steps = Step.objects.filter(run_id__in=runs, position__in=positions).values_list(
        "run_id", "position", "index", "node"
    )
    return {(run, position): (index, node) for run, position, index, node in steps}


def reviews(project: Project) -> Iterator[dict[str, Any]]:
    rows = RunReview.objects.filter(run__project=project)
    fields = ("run__execution_id", "run__status", "status", "assignee__username", "labels")
    for batch in _batches(rows, *fields, "updated_at"):
        for r in batch:
            yield {
                "execution_id": r["run__execution_id"],
                "run_status": r["run__status"],
                "status": r["status"],
                "assignee": r["assignee__username"],
                "labels": list(r["labels"]),
                "updated_at": iso(r["updated_at"]),
            }


def verdicts(project: Project) -> Iterator[dict[str, Any]]:
    rows = StepVerdict.objects.filter(run__project=project)
    fields = ("run_id", "run__execution_id", "step_position", "verdict", "reason")
    for batch in _batches(rows, *fields, "user__username", "updated_at"):
        steps = _steps({(v["run_id"], v["step_position"]) for v in batch})
        for v in batch:
            index, node = steps.get((v["run_id"], v["step_position"]), (None, None))
            yield {
                "execution_id": v["run__execution_id"],
                "step_index": index,
                "step_position": v["step_position"],
                "node": node,
                "verdict": v["verdict"],
                "reason": v["reason"],
                "user": v["user__username"],
                "updated_at": iso(v["updated_at"]),
            }


def comments(project: Project) -> Iterator[dict[str, Any]]:
    rows = Comment.objects.filter(run__project=project)
    fields = ("run_id", "run__execution_id", "step_position", "path", "author__username")
    for batch in _batches(rows, *fields, "body", "mentions", "created_at", "edited_at"):
        steps = _steps(
            {(c["run_id"], c["step_position"]) for c in batch if c["step_position"] is not None}
        )
        for c in batch:
            index, node = steps.get((c["run_id"], c["step_position"]), (None, None))
            yield {
                "id": c["pk"],
                "execution_id": c["run__execution_id"],
                "step_index": index,
                "step_position": c["step_position"],
                "node": node,
                "path": c["path"],
                "author": c["author__username"],
                "body": c["body"],
                "mentions": list(c["mentions"]),
                "created_at": iso(c["created_at"]),
                "edited_at": iso(c["edited_at"]),
            }


def json_chunks(project: Project) -> Iterator[bytes]:
    """``{"project", "reviews": [...], "verdicts": [...], "comments": [...]}``, in pieces."""
    yield b'{"project":' + _json.encode(project.slug)
    for name, rows in (
        ("reviews", reviews(project)),
        ("verdicts", verdicts(project)),
        ("comments", comments(project)),
    ):
        yield f',"{name}":['.encode()
        first = True
        for row in rows:
            yield (b"" if first else b",") + _json.encode(row)
            first = False
        yield b"]"
    yield b"}\n"


def csv_chunks(project: Project) -> Iterator[bytes]:
    """One CSV table; ``record`` says which kind each row is (review, verdict, comment).
    Labels are joined with "; " (a label cannot contain ";"), mentions with spaces. A text
    cell a spreadsheet would take for a formula starts with ``'`` (``csvcells.py``)."""
    buffer = io.StringIO()
    writer = csvcells.Writer(buffer)

    def flush() -> bytes:
        data = buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        return data

    def rows() -> Iterator[dict[str, Any]]:
        for row in reviews(project):
            yield {**row, "record": "review", "labels": "; ".join(row["labels"])}
        for row in verdicts(project):
            yield {**row, "record": "verdict", "author": row["user"]}
        for row in comments(project):
            yield {
                **row,
                "record": "comment",
                "mentions": " ".join(row["mentions"]),
                "updated_at": row["edited_at"],
            }

    writer.writerow(CSV_COLUMNS)
    for row in rows():
        writer.writerow(row.get(column, "") for column in CSV_COLUMNS)
        if buffer.tell() >= CHUNK_BYTES:
            yield flush()
    yield flush()
