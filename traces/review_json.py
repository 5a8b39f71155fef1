"""The JSON shapes of a run's review, verdicts, comments and activity, shared by the API,
the pages and the websocket messages (``traces/review.py`` writes; this module reads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import markdown
from .fields import iso
from .models import (
    Activity,
    Comment,
    Membership,
    Project,
    ReviewStatus,
    Run,
    RunReview,
    Step,
    StepVerdict,
)


def review_view(run: Run, review: RunReview | None) -> dict[str, Any]:
    return {
        "execution_id": run.execution_id,
        "status": review.status if review else ReviewStatus.UNREVIEWED.value,
        "assignee": review.assignee.username if review and review.assignee else None,
        "labels": list(review.labels) if review else [],
        "updated_at": iso(review.updated_at) if review else None,
    }


def verdict_view(verdict: StepVerdict, step: Step | None) -> dict[str, Any]:
    return {
        "step_index": step.index if step else None,
        "step_position": verdict.step_position,
        "node": step.node if step else None,
        "verdict": verdict.verdict,
        "reason": verdict.reason,
        "user": verdict.user.username if verdict.user else None,
        "updated_at": iso(verdict.updated_at),
    }


def comment_view(comment: Comment, step_index: int | None) -> dict[str, Any]:
    return {
        "id": comment.pk,
        "execution_id": comment.run.execution_id,
        "step_index": step_index,
        "step_position": comment.step_position,
        "path": comment.path,
        "author": comment.author.username if comment.author else None,
        "body": comment.body,
        "html": markdown.render(comment.body, comment.mentions),
        "mentions": list(comment.mentions),
        "created_at": iso(comment.created_at),
        "edited_at": iso(comment.edited_at),
    }


def activity_view(entry: Activity) -> dict[str, Any]:
    return {
        "id": entry.pk,
        "actor": entry.detail.get("by") or (entry.actor.username if entry.actor else None),
        "verb": entry.verb,
        "detail": {k: v for k, v in entry.detail.items() if k != "by"},
        "created_at": iso(entry.created_at),
    }


def step_indices(run: Run) -> dict[int, int]:
    """Position in ``nodes_executed`` → DashFlow ``index``, for the run's steps."""
    return dict(run.steps.values_list("position", "index"))


def run_review_snapshot(run: Run) -> dict[str, Any]:
    """Everything the review panel shows: the review, verdicts, comments, activity."""
    review = RunReview.objects.select_related("assignee").filter(run=run).first()
    verdicts = list(
        StepVerdict.objects.filter(run=run).select_related("user").order_by("step_position")
    )
    comments = list(run.comments.select_related("author", "run"))
    # Only the steps verdicts and comments point at: a run can have 10,000 steps. Through
    # Step.objects, not run.steps: the related manager would read the deferred run_id of
    # every row, one query each.
    positions = {v.step_position for v in verdicts} | {
        c.step_position for c in comments if c.step_position is not None
    }
    steps = {
        s.position: s
        for s in Step.objects.filter(run=run, position__in=positions).only(
            "run_id", "position", "index", "node"
        )
    }
    return {
        "review": review_view(run, review),
        "verdicts": [verdict_view(v, steps.get(v.step_position)) for v in verdicts],
        "comments": [
            comment_view(
                c,
                steps[c.step_position].index
                if c.step_position is not None and c.step_position in steps
                else None,
            )
            for c in comments
        ],
        "activity": [activity_view(a) for a in run.activity.select_related("actor")[:200]],
    }


def members_view(project: Project) -> list[dict[str, str]]:
    rows = Membership.objects.filter(project=project).select_related("user")
    return sorted(
        ({"username": m.user.username, "role": m.role} for m in rows),
        key=lambda m: m["username"].lower(),
    )


def comment_step_index(comment: Comment) -> int | None:
    if comment.step_position is None:
        return None
    step = (
        Step.objects.filter(run_id=comment.run_id, position=comment.step_position)
        .only("index")
        .first()
    )
    return step.index if step else None


@dataclass(frozen=True)
class CommentFilter:
    """Which comments of a run to list: all, a step's (by index), a path's."""

    step: int | None = None
    path: str | None = None


def list_comments(run: Run, which: CommentFilter) -> list[dict[str, Any]]:
    comments = run.comments.select_related("author", "run")
    if which.step is not None:
        step = run.step(which.step)
        if step is None:
            return []
        comments = comments.filter(step_position=step.position)
    if which.path is not None:
        comments = comments.filter(path=which.path)
    indices = step_indices(run)
    return [
        comment_view(c, indices.get(c.step_position) if c.step_position is not None else None)
        for c in comments
    ]
