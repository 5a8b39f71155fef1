"""Export of a project's reviews, step verdicts and comments, as JSON or CSV, streamed.

Rows are read in primary-key batches (keyset, not OFFSET), so memory stays flat however
many there are and each batch is one indexed query. Steps are named by both their
DashFlow ``index`` and their ``position`` in ``nodes_executed`` (verdicts are keyed by
position, which survives re-ingestion).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, TypeVar

import msgspec
from django.db.models import Model, QuerySet

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


def _batches(queryset: QuerySet[M], key: str = "pk") -> Iterator[list[M]]:
    last: Any = None
    while True:
        page = queryset.order_by(key)
        if last is not None:
            page = page.filter(**{f"{key}__gt": last})
        rows = list(page[:BATCH])
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], key)


def _steps(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], Step]:
    """(run id, position) → the step, for one batch."""
    if not pairs:
        return {}
    runs = {run for run, _ in pairs}
    positions = {position for _, position in pairs}
    steps = Step.objects.filter(run_id__in=runs, position__in=positions).only(
        "run_id", "position", "index", "node"
    )
    return {(s.run_id, s.position): s for s in steps}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value else None


def reviews(project: Project) -> Iterator[dict[str, Any]]:
    rows = RunReview.objects.filter(run__project=project).select_related("run", "assignee")
    for batch in _batches(rows, "run_id"):
        for review in batch:
            yield {
                "execution_id": review.run.execution_id,
                "run_status": review.run.status,
                "status": review.status,
                "assignee": review.assignee.username if review.assignee else None,
                "labels": list(review.labels),
                "updated_at": _iso(review.updated_at),
            }


def verdicts(project: Project) -> Iterator[dict[str, Any]]:
    rows = StepVerdict.objects.filter(run__project=project).select_related("run", "user")
    for batch in _batches(rows):
        steps = _steps({(v.run_id, v.step_position) for v in batch})
        for verdict in batch:
            step = steps.get((verdict.run_id, verdict.step_position))
            yield {
                "execution_id": verdict.run.execution_id,
                "step_index": step.index if step else None,
                "step_position": verdict.step_position,
                "node": step.node if step else None,
                "verdict": verdict.verdict,
                "reason": verdict.reason,
                "user": verdict.user.username if verdict.user else None,
                "updated_at": _iso(verdict.updated_at),
            }


def comments(project: Project) -> Iterator[dict[str, Any]]:
    rows = Comment.objects.filter(run__project=project).select_related("run", "author")
    for batch in _batches(rows):
        pairs = {(c.run_id, c.step_position) for c in batch if c.step_position is not None}
        steps = _steps(pairs)
        for comment in batch:
            step = (
                steps.get((comment.run_id, comment.step_position))
                if comment.step_position is not None
                else None
            )
            yield {
                "id": comment.pk,
                "execution_id": comment.run.execution_id,
                "step_index": step.index if step else None,
                "step_position": comment.step_position,
                "node": step.node if step else None,
                "path": comment.path,
                "author": comment.author.username if comment.author else None,
                "body": comment.body,
                "mentions": list(comment.mentions),
                "created_at": _iso(comment.created_at),
                "edited_at": _iso(comment.edited_at),
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
    Labels are joined with "; " (a label cannot contain ";"), mentions with spaces."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_COLUMNS, extrasaction="ignore")

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

    writer.writeheader()
    for row in rows():
        writer.writerow(row)
        if buffer.tell() >= CHUNK_BYTES:
            yield flush()
    yield flush()
