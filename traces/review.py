"""Team review of a run: its review status, assignee and labels, a verdict per step,
comments (on the run, a step, or a JSON path of a step's state), and the activity log.

Every change is one transaction that writes the row and an ``Activity`` (who, what,
from → to); after it commits, the run's viewers get a ``review`` message over the run's
websocket (``traces.events.run_review``). Callers check the reader/reviewer role
(``traces.permissions``); the rules that depend on the row itself live here:

- a comment is edited only by its author;
- a comment is deleted by its author, or by a project admin (moderation: an admin can
  remove a comment that should not be there, but cannot put words in someone's mouth);
- a comment written with an API key has no author: nobody edits it, an admin may delete it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from . import events, inbox, markdown
from .errors import InputError
from .models import (
    Activity,
    Comment,
    InboxKind,
    Membership,
    Project,
    ReviewStatus,
    Role,
    Run,
    RunReview,
    Step,
    StepVerdict,
    Verdict,
)
from .permissions import REVIEW, actor_user, has_role
from .permissions import actor_role as role_for
from .review_json import (
    activity_view,
    comment_step_index,
    comment_view,
    review_view,
    verdict_view,
)

MAX_LABELS = 20
MAX_LABEL_LENGTH = 40
MAX_REASON_LENGTH = 2000
MAX_COMMENT_LENGTH = 10_000
MAX_PATH_LENGTH = 1000
LABEL_RE = re.compile(r"^[\w][\w .:/#+-]*$")


class Unset:
    """A field the caller did not send (distinct from ``None``, which clears it)."""


UNSET = Unset()


def actor_name(actor: Any) -> str:
    return str(actor.username)


def _record(run: Run, actor: Any, verb: str, **detail: Any) -> Activity:
    return Activity.objects.create(
        project_id=run.project_id,
        run=run,
        actor=actor_user(actor),
        verb=verb,
        detail={"by": actor_name(actor), **detail},
    )


def _publish(run: Run, event: str, activity: list[Activity], **payload: Any) -> None:
    events.run_review(
        run,
        {
            "event": event,
            "execution_id": run.execution_id,
            "activity": [activity_view(a) for a in activity],
            **payload,
        },
    )


def parse_labels(value: Any) -> list[str]:
    """A bounded list of short labels, trimmed, without repeats (first spelling wins)."""
    if not isinstance(value, list):
        raise InputError("labels", "expected a list of strings")
    if len(value) > MAX_LABELS:
        raise InputError("labels", f"at most {MAX_LABELS} labels")
    labels: list[str] = []
    for i, raw in enumerate(value):
        if not isinstance(raw, str):
            raise InputError(f"labels[{i}]", "expected a string")
        label = " ".join(raw.split())
        if not 1 <= len(label) <= MAX_LABEL_LENGTH:
            raise InputError(f"labels[{i}]", f"expected 1 to {MAX_LABEL_LENGTH} characters")
        if not LABEL_RE.match(label):
            raise InputError(f"labels[{i}]", "letters, digits, spaces and . : / # + - _ only")
        if label.lower() not in (known.lower() for known in labels):
            labels.append(label)
    return labels


def _assignee(project: Project, username: Any) -> Any:
    if username is None:
        return None
    if not isinstance(username, str):
        raise InputError("assignee", "expected a username or null")
    membership = (
        Membership.objects.filter(project=project, user__username=username)
        .select_related("user")
        .first()
    )
    if membership is None or not has_role(membership.role, REVIEW):
        raise InputError("assignee", f"{username!r} is not a reviewer of this project")
    return membership.user


def update_review(
    run: Run,
    actor: Any,
    *,
    status: Any = UNSET,
    assignee: Any = UNSET,
    labels: Any = UNSET,
) -> RunReview:
    """Change a run's review status, assignee (a username, or None) and/or labels; one
    activity entry per field that changed. Validates everything before writing."""
    new_status: str | None = None
    if not isinstance(status, Unset):
        if status not in ReviewStatus.values:
            raise InputError("status", f"expected one of {', '.join(ReviewStatus.values)}")
        new_status = status
    new_assignee = None if isinstance(assignee, Unset) else _assignee(run.project, assignee)
    new_labels = None if isinstance(labels, Unset) else parse_labels(labels)

    with transaction.atomic():
        review, _ = RunReview.objects.select_for_update().get_or_create(run=run)
        changed: list[Activity] = []
        if new_status is not None and new_status != review.status:
            changed.append(
                _record(run, actor, "status_changed", **{"from": review.status, "to": new_status})
            )
            review.status = new_status
        if not isinstance(assignee, Unset) and new_assignee != review.assignee:
            before = review.assignee.username if review.assignee else None
            after = new_assignee.username if new_assignee else None
            changed.append(_record(run, actor, "assigned", **{"from": before, "to": after}))
            review.assignee = new_assignee
            if new_assignee is not None and new_assignee != actor_user(actor):
                inbox.notify_users(
                    run.project,
                    [new_assignee.pk],
                    InboxKind.ASSIGNED,
                    f"{actor_name(actor)} assigned you the review of {_where(run, None)}",
                    f"{run.status} run {run.execution_id}",
                    comment_link(run, None),
                )
        if new_labels is not None and new_labels != review.labels:
            added = [label for label in new_labels if label not in review.labels]
            removed = [label for label in review.labels if label not in new_labels]
            changed.append(
                _record(
                    run,
                    actor,
                    "labels_changed",
                    **{"from": review.labels, "to": new_labels, "added": added, "removed": removed},
                )
            )
            review.labels = new_labels
        if changed:
            review.updated_at = timezone.now()
            review.save()
            _publish(run, "review_changed", changed, review=review_view(run, review))
    return review


def step_at(run: Run, index: int) -> Step:
    """The step with DashFlow ``index``, or a 404."""
    step = run.step(index)
    if step is None:
        raise InputError("index", f"run {run.execution_id!r} has no step {index}", status=404)
    return step


def set_verdict(run: Run, step: Step, actor: Any, verdict: Any, reason: Any = "") -> StepVerdict:
    """Set (or replace) the verdict on one step, with a reason."""
    if verdict not in Verdict.values:
        raise InputError("verdict", "expected good or bad")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise InputError("reason", "expected a string")
    if len(reason) > MAX_REASON_LENGTH:
        raise InputError("reason", f"at most {MAX_REASON_LENGTH} characters")
    reason = reason.strip()
    with transaction.atomic():
        row = (
            StepVerdict.objects.select_for_update()
            .filter(run=run, step_position=step.position)
            .first()
        )
        before = row.verdict if row else None
        if row is None:
            row = StepVerdict(run=run, step_position=step.position)
        elif row.verdict == verdict and row.reason == reason:
            return row
        row.verdict, row.reason = verdict, reason
        row.user = actor_user(actor)
        row.updated_at = timezone.now()
        row.save()
        entry = _record(
            run,
            actor,
            "verdict_set",
            step=step.index,
            position=step.position,
            node=step.node,
            reason=reason,
            **{"from": before, "to": verdict},
        )
        _publish(run, "verdict_changed", [entry], verdict=verdict_view(row, step))
    return row


def clear_verdict(run: Run, step: Step, actor: Any) -> bool:
    """Remove the verdict on one step; False when there was none."""
    with transaction.atomic():
        row = (
            StepVerdict.objects.select_for_update()
            .filter(run=run, step_position=step.position)
            .first()
        )
        if row is None:
            return False
        row.delete()
        entry = _record(
            run,
            actor,
            "verdict_cleared",
            step=step.index,
            position=step.position,
            node=step.node,
            **{"from": row.verdict, "to": None},
        )
        _publish(
            run,
            "verdict_changed",
            [entry],
            verdict={"step_index": step.index, "step_position": step.position, "verdict": None},
        )
    return True


def _body(body: Any) -> str:
    if not isinstance(body, str):
        raise InputError("body", "expected a string")
    if not body.strip():
        raise InputError("body", "must not be empty")
    if len(body) > MAX_COMMENT_LENGTH:
        raise InputError("body", f"at most {MAX_COMMENT_LENGTH} characters")
    return body


def _path(path: Any) -> str:
    if path is None:
        return ""
    if not isinstance(path, str):
        raise InputError("path", "expected a JSON Pointer string")
    if path and not path.startswith("/"):
        raise InputError("path", "a JSON Pointer is empty or starts with /")
    if len(path) > MAX_PATH_LENGTH:
        raise InputError("path", f"at most {MAX_PATH_LENGTH} characters")
    if re.search(r"~[^01]|~$", path):
        raise InputError("path", "~ must be followed by 0 or 1 (RFC 6901)")
    return path


def parse_mentions(project: Project, body: str) -> list[str]:
    """The project members ``body`` mentions as ``@username``, sorted."""
    candidates = markdown.mention_candidates(body)
    if not candidates:
        return []
    users = get_user_model().objects.filter(memberships__project=project, username__in=candidates)
    return sorted(users.values_list("username", flat=True))


def _excerpt(body: str) -> str:
    text = " ".join(body.split())
    return text if len(text) <= 120 else text[:119] + "…"


def comment_link(run: Run, step_index: int | None, path: str = "") -> str:
    """The run page opened where a comment is: its step, and its path in the step's state."""
    url = reverse("visualizer:run", args=[run.project.slug, run.execution_id])
    if step_index is None:
        return url
    fragment = urlencode({"step": step_index, **({"path": path} if path else {})}, safe="/")
    return f"{url}#{fragment}"


def _where(run: Run, step: Step | None) -> str:
    graph = run.graph_name or "run"
    return f"step #{step.index} ({step.node}) of {graph}" if step else graph


def _notify_comment(
    comment: Comment, actor: Any, step: Step | None, mentioned: list[str], replies: bool
) -> None:
    """Inbox items for a comment: a ``mention`` for each member ``mentioned``, and with
    ``replies`` a ``reply`` for each other member who commented on the same run or step
    before (once: a mention wins); never for the author."""
    run = comment.run
    author = actor_user(actor)
    author_id = author.pk if author is not None else None
    users = get_user_model().objects
    mention_ids = set(
        users.filter(memberships__project_id=run.project_id, username__in=mentioned).values_list(
            "pk", flat=True
        )
    ) - {author_id}
    reply_ids: set[int] = set()
    if replies:
        earlier = Comment.objects.filter(run=run, step_position=comment.step_position).exclude(
            pk=comment.pk
        )
        reply_ids = (
            set(earlier.exclude(author=None).values_list("author_id", flat=True))
            - mention_ids
            - {author_id}
        )
    link = comment_link(run, step.index if step else None, comment.path)
    who, where, excerpt = actor_name(actor), _where(run, step), _excerpt(comment.body)
    inbox.notify_users(
        run.project,
        mention_ids,
        InboxKind.MENTION,
        f"{who} mentioned you on {where}",
        excerpt,
        link,
    )
    inbox.notify_users(
        run.project, reply_ids, InboxKind.REPLY, f"{who} replied on {where}", excerpt, link
    )


def add_comment(
    run: Run, actor: Any, body: Any, step: Step | None = None, path: Any = ""
) -> Comment:
    """A comment on the run, on ``step``, or on ``path`` (a JSON Pointer) of the step; the
    members it mentions, and those who commented there before, get an inbox item."""
    text = _body(body)
    pointer = _path(path)
    if pointer and step is None:
        raise InputError("path", "a path needs a step: name it with step")
    mentions = parse_mentions(run.project, text)
    with transaction.atomic():
        comment = Comment.objects.create(
            run=run,
            step_position=step.position if step else None,
            path=pointer,
            author=actor_user(actor),
            body=text,
            mentions=mentions,
        )
        entry = _record(
            run,
            actor,
            "commented",
            comment=comment.pk,
            step=step.index if step else None,
            path=pointer,
            mentions=mentions,
            excerpt=_excerpt(text),
        )
        view = comment_view(comment, step.index if step else None)
        _publish(run, "comment_added", [entry], comment=view)
        _notify_comment(comment, actor, step, mentions, replies=True)
    return comment


def edit_comment(comment: Comment, actor: Any, body: Any) -> Comment:
    """Replace a comment's body; only its author may."""
    user = actor_user(actor)
    if user is None or comment.author_id != user.pk:
        raise InputError("comment", "only the author may edit a comment", status=403)
    text = _body(body)
    if text == comment.body:
        return comment
    mentions = parse_mentions(comment.run.project, text)
    with transaction.atomic():
        added = [name for name in mentions if name not in comment.mentions]
        comment.body, comment.mentions = text, mentions
        comment.edited_at = timezone.now()
        comment.save(update_fields=["body", "mentions", "edited_at"])
        entry = _record(
            comment.run, actor, "comment_edited", comment=comment.pk, excerpt=_excerpt(text)
        )
        _publish(
            comment.run,
            "comment_edited",
            [entry],
            comment=comment_view(comment, comment_step_index(comment)),
        )
        if added:  # only who the edit newly mentions
            step = (
                comment.run.steps.filter(position=comment.step_position).first()
                if comment.step_position is not None
                else None
            )
            _notify_comment(comment, actor, step, added, replies=False)
    return comment


def delete_comment(comment: Comment, actor: Any) -> None:
    """Delete a comment: its author, or an admin of the project."""
    user = actor_user(actor)
    own = user is not None and comment.author_id == user.pk
    if not own and role_for(comment.run.project, actor) != Role.ADMIN:
        raise InputError("comment", "only the author or a project admin may delete it", status=403)
    run = comment.run
    with transaction.atomic():
        comment_id = comment.pk
        excerpt = _excerpt(comment.body)
        comment.delete()
        entry = _record(run, actor, "comment_deleted", comment=comment_id, excerpt=excerpt)
        _publish(run, "comment_deleted", [entry], comment={"id": comment_id})
