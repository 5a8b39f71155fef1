"""Failure groups: every error and failed run, grouped by what went wrong.

A failure's fingerprint is its node, its error type and its message with the parts that
vary between occurrences (numbers, ids, URLs, emails, paths, quoted values) replaced by
placeholders, so "Timeout: GET https://a/1 exceeded 30s" and "Timeout: GET https://b/2
exceeded 31s" are one group. ``record_run`` brings a run's ``Failure`` rows in line with
its stored errors and steps; it runs inside the ingestion transaction (traces/ingest.py
calls it once the rows are written) and is idempotent, so re-sending a run changes
nothing.

What is an occurrence, per run: each ``ErrorTrace`` ("error:<position>"); each failed step
that no ErrorTrace covers ("step:<position>"); and a failed run with neither ("run").
As in Sentry, a new occurrence of a ``resolved`` group reopens it (status ``new``,
``regressed_at`` set, an Activity "regressed"); an ``ignored`` group stays ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Max, Min, Q
from django.urls import reverse
from django.utils import timezone

from . import events, inbox
from .errors import InputError
from .failure_json import activity_entry, summaries
from .fields import parse_time
from .fingerprint import MESSAGE_MAX_CHARS, fingerprint, infer_error_type, normalize
from .models import (
    Activity,
    Failure,
    FailureGroup,
    GroupStatus,
    InboxKind,
    Run,
    RunError,
    RunStatus,
    Step,
)
from .permissions import KeyPrincipal, actor_user

STEP_WITHOUT_MESSAGE = "step failed without an error message"
RUN_INCOMPLETE = "run ended without completing (no error recorded)"


@dataclass(frozen=True)
class Occurrence:
    key: str
    node: str
    error_type: str
    message: str
    seen_at: datetime
    step_position: int | None

    @cached_property
    def fingerprint(self) -> str:
        return fingerprint(self.node, self.error_type, self.message)


def occurrences(run: Run) -> list[Occurrence]:
    """What failed in ``run``, read from its stored rows (failed steps and errors only)."""
    if run.status != RunStatus.FAILED and run.error_count == 0:
        # Both ingestion paths mark a run failed on any error or failed step: a run that
        # is not failed has nothing to read (most runs; this saves their queries).
        return []
    errors = list(RunError.objects.filter(run=run).order_by("position"))
    # Where each error happened: the step with its execution_index (DashFlow's step index).
    wanted = {int(e.execution_index) for e in errors if e.execution_index is not None}
    # One query for the failed steps and the steps the errors point at.
    steps = list(
        Step.objects.filter(run=run)
        .filter(Q(success=False) | Q(index__in=wanted))
        .order_by("position")
        .only("position", "index", "node", "error_message", "started_at_text", "success")
    )
    failed = [s for s in steps if not s.success]
    position_of: dict[int, int] = {}
    for s in reversed(steps):  # so a repeated index maps to its first step, as Run.step
        if int(s.index) in wanted:
            position_of[int(s.index)] = s.position
    fallback = run.ended_at or run.started_at
    found: list[Occurrence] = []
    for e in errors:
        index = int(e.execution_index) if e.execution_index is not None else None
        found.append(
            Occurrence(
                key=f"error:{e.position}",
                node=e.node,
                error_type=e.error_type or "",
                message=e.message,
                seen_at=parse_time(e.timestamp_text) or fallback,
                step_position=position_of.get(index) if index is not None else None,
            )
        )
    covered_indexes = {int(e.execution_index) for e in errors if e.execution_index is not None}
    covered_nodes = {e.node for e in errors if e.execution_index is None}
    for s in failed:
        if int(s.index) in covered_indexes or s.node in covered_nodes:
            continue
        message = s.error_message or STEP_WITHOUT_MESSAGE
        found.append(
            Occurrence(
                key=f"step:{s.position}",
                node=s.node,
                error_type=infer_error_type(message),
                message=message,
                seen_at=parse_time(s.started_at_text) or fallback,
                step_position=s.position,
            )
        )
    if not found and run.status == RunStatus.FAILED:
        last = Step.objects.filter(run=run).order_by("-position").only("position", "node").first()
        found.append(
            Occurrence(
                key="run",
                node=last.node if last else "",
                error_type="",
                message=RUN_INCOMPLETE,
                seen_at=fallback,
                step_position=last.position if last else None,
            )
        )
    return found


def record_run(run: Run, had_failures: bool = True) -> list[FailureGroup]:
    """Bring the run's Failure rows in line with its stored rows; returns the groups that
    changed (published to the project's viewers after commit). ``had_failures=False``
    (the caller knows the run had none before: new, or neither failed nor with errors)
    saves looking them up.

    Call it inside the transaction that stored the run, with the run row locked (both
    ingestion paths hold it ``select_for_update``), so two requests for one run never
    interleave. Running it again on the same rows changes nothing.
    """
    now = timezone.now()
    wanted = {o.key: o for o in occurrences(run)}
    if not wanted and not had_failures:
        return []
    existing = {f.key: f for f in Failure.objects.filter(run=run).select_related("group")}
    if not wanted and not existing:
        return []

    added: list[Occurrence] = []
    removed: list[Failure] = []
    updated: list[Failure] = []
    for key, failure in existing.items():
        occ = wanted.get(key)
        if occ is None or occ.fingerprint != failure.group.fingerprint:
            removed.append(failure)
        elif (failure.message, failure.seen_at, failure.step_position) != (
            occ.message,
            occ.seen_at,
            occ.step_position,
        ):
            failure.message = occ.message
            failure.seen_at = occ.seen_at
            failure.step_position = occ.step_position
            updated.append(failure)
    removed_keys = {f.key for f in removed}
    added = [o for k, o in wanted.items() if k not in existing or k in removed_keys]
    if not (added or removed or updated):
        return []

    left = {f.group_id for f in removed + updated}
    groups, recount = _lock_groups(run, added, left)
    if removed:
        Failure.objects.filter(pk__in=[f.pk for f in removed]).delete()
    if updated:
        Failure.objects.bulk_update(updated, ["message", "seen_at", "step_position"])
    Failure.objects.bulk_create(
        [
            Failure(
                group=groups[o.fingerprint],
                run=run,
                key=o.key,
                step_position=o.step_position,
                message=o.message[:MESSAGE_MAX_CHARS],
                seen_at=o.seen_at,
            )
            for o in added
        ]
    )

    changed: dict[int, FailureGroup] = {}
    activity: list[Activity] = []
    by_group: dict[str, list[Occurrence]] = {}
    for o in added:
        by_group.setdefault(o.fingerprint, []).append(o)
    for fp, occs in by_group.items():
        group = groups[fp]
        latest = max(occs, key=lambda o: o.seen_at)
        fresh = group.count == 0 and group.first_seen == group.last_seen == _EPOCH
        group.count += len(occs)
        group.first_seen = min([o.seen_at for o in occs] + ([] if fresh else [group.first_seen]))
        if fresh or latest.seen_at >= group.last_seen:
            group.last_seen = latest.seen_at
            group.sample_message = latest.message[:MESSAGE_MAX_CHARS]
        fields = ["count", "first_seen", "last_seen", "sample_message"]
        if group.status == GroupStatus.RESOLVED:
            group.status = GroupStatus.NEW
            group.regressed_at = now
            fields += ["status", "regressed_at"]
            activity.append(
                Activity(
                    project_id=run.project_id,
                    group=group,
                    verb="regressed",
                    detail={
                        "from": GroupStatus.RESOLVED.value,
                        "to": GroupStatus.NEW.value,
                        "run": run.execution_id,
                        "message": latest.message[:MESSAGE_MAX_CHARS],
                    },
                    created_at=now,
                )
            )
        group.save(update_fields=fields)
        changed[group.pk] = group

    # Rows that left or moved: their groups are recounted (rare: a run replaced by its
    # final trace, or a failed step whose ErrorTrace arrived in a later batch).
    recounted, deleted = recount_groups([changed.get(g.pk, g) for g in recount])
    changed.update((g.pk, g) for g in recounted)
    Activity.objects.bulk_create(activity)
    result = list(changed.values())
    publish_groups(result, {a.group_id: [activity_entry(a)] for a in activity if a.group_id})
    publish_deleted(run.project_id, deleted)
    return result


def recount_groups(groups: Iterable[FailureGroup]) -> tuple[list[FailureGroup], list[int]]:
    """Bring locked groups' count and first/last seen in line with their ``Failure`` rows;
    returns the groups kept and the ids of those deleted. A group left empty that nobody
    triaged goes (a live run's passing guess, or everything it grouped was deleted by
    retention); a triaged one stays, count 0, so its status and history are kept and a
    new occurrence of a resolved group still counts as a regression."""
    kept: list[FailureGroup] = []
    deleted: list[int] = []
    for group in groups:
        stats = Failure.objects.filter(group=group).aggregate(
            n=Count("id"), first=Min("seen_at"), last=Max("seen_at")
        )
        if stats["n"] == 0 and _untouched(group):
            deleted.append(group.pk)
            group.delete()
            continue
        group.count = stats["n"]
        if stats["n"]:
            group.first_seen, group.last_seen = stats["first"], stats["last"]
        group.save(update_fields=["count", "first_seen", "last_seen"])
        kept.append(group)
    return kept, deleted


def publish_deleted(project_id: int, group_ids: Iterable[int]) -> None:
    """After commit: each deleted group's id to its project's viewers (failure pages)."""
    for pk in group_ids:
        events.failure_group_changed(project_id, {"id": pk, "deleted": True}, [])


# A new group's first/last seen before its first occurrence is counted.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _untouched(group: FailureGroup) -> bool:
    return (
        group.status == GroupStatus.NEW
        and group.assignee_id is None
        and not Activity.objects.filter(group=group).exists()
    )


def _lock_groups(
    run: Run, added: Sequence[Occurrence], left: set[int]
) -> tuple[dict[str, FailureGroup], list[FailureGroup]]:
    """The groups of ``added`` by fingerprint, created when missing, and the groups
    ``left`` (by id) that lose or change occurrences: all locked for this transaction.

    ``ignore_conflicts`` (INSERT ... ON CONFLICT DO NOTHING) lets two runs create the same
    group at once without either failing; the locks, taken in one statement in id order
    so two runs never deadlock, make their count updates wait for each other.
    """
    firsts: dict[str, Occurrence] = {}
    for o in added:
        firsts.setdefault(o.fingerprint, o)

    def lock() -> list[FailureGroup]:
        return list(
            FailureGroup.objects.select_for_update()
            .filter(Q(project_id=run.project_id, fingerprint__in=list(firsts)) | Q(pk__in=left))
            .order_by("pk")
        )

    # Most occurrences fall in a group that exists: one locking read. Missing groups are
    # inserted, then everything is read again with its lock.
    locked = lock()
    if set(firsts) - {g.fingerprint for g in locked}:
        FailureGroup.objects.bulk_create(
            [
                FailureGroup(
                    project_id=run.project_id,
                    fingerprint=fp,
                    node=o.node[:200],
                    error_type=o.error_type[:200],
                    message=normalize(o.message),
                    sample_message=o.message[:MESSAGE_MAX_CHARS],
                    count=0,
                    first_seen=_EPOCH,
                    last_seen=_EPOCH,
                )
                for fp, o in firsts.items()
            ],
            ignore_conflicts=True,
        )
        locked = lock()
    by_fingerprint = {g.fingerprint: g for g in locked if g.fingerprint in firsts}
    return by_fingerprint, [g for g in locked if g.pk in left]


def record_events(run: Run, new_events: Iterable[Any]) -> None:
    """After a live batch is applied: regroup the run when the batch stored anything that
    can fail it (an error, a failed node, a run finished incomplete)."""
    for event in new_events:
        data = event.data
        if (
            event.type == "error"
            or (event.type == "node_finished" and not data.success)
            or (event.type == "run_finished" and not data.completed)
        ):
            record_run(run)
            return


def regroup(run_pks: Iterable[int]) -> int:
    """Backfill: ``record_run`` for each run (each in its own transaction, the run row
    locked); returns how many group updates that made. Safe to run again."""
    changed = 0
    for pk in run_pks:
        with transaction.atomic():
            locked = Run.objects.select_for_update().filter(pk=pk).first()
            if locked is not None:  # deleted meanwhile
                changed += len(record_run(locked))
    return changed


def publish_groups(
    groups: Sequence[FailureGroup], activity: dict[int, list[dict[str, Any]]] | None = None
) -> None:
    """After commit: each changed group to its project's viewers (failure pages)."""
    if not groups:
        return
    for group in groups:
        if group.assignee_id is not None:
            group.assignee  # noqa: B018 - loaded now, inside the transaction
    bodies = summaries(groups)
    for group, body in zip(groups, bodies, strict=True):
        events.failure_group_changed(group.project_id, body, (activity or {}).get(group.pk, []))


def update_group(
    group_id: int,
    *,
    actor: Any,
    via: str | None,
    status: str | None = None,
    assignee: Any = None,
    set_assignee: bool = False,
) -> FailureGroup:
    """Change a group's status and/or assignee (``set_assignee``: ``assignee`` is the new
    one, None to unassign); each real change is an Activity row (who, from, to), published
    after commit. Call inside a transaction; the caller checked the actor's role."""
    group = (
        FailureGroup.objects.select_for_update(of=("self",))
        .select_related("assignee", "project")
        .get(pk=group_id)
    )
    now = timezone.now()
    rows: list[Activity] = []
    extra = {"via": via} if via else {}
    fields: list[str] = []
    if status is not None and status != group.status:
        rows.append(
            Activity(
                project_id=group.project_id,
                group=group,
                actor=actor,
                verb="status_changed",
                detail={"from": group.status, "to": status, **extra},
                created_at=now,
            )
        )
        group.status = status
        fields.append("status")
    if set_assignee and getattr(assignee, "pk", None) != group.assignee_id:
        before = group.assignee.get_username() if group.assignee is not None else None
        rows.append(
            Activity(
                project_id=group.project_id,
                group=group,
                actor=actor,
                verb="assignee_changed",
                detail={
                    "from": before,
                    "to": assignee.get_username() if assignee is not None else None,
                    **extra,
                },
                created_at=now,
            )
        )
        group.assignee = assignee
        fields.append("assignee")
        if assignee is not None and getattr(actor, "pk", None) != assignee.pk:
            by = extra.get("via") or (actor.get_username() if actor is not None else "someone")
            what = f"{group.error_type or 'error'} in {group.node}"
            inbox.notify_users(
                group.project,
                [assignee.pk],
                InboxKind.ASSIGNED,
                f"{by} assigned you the failure group {what}",
                group.sample_message[:300] or group.message[:300],
                reverse("visualizer:failure-group", args=[group.project.slug, group.pk]),
            )
    if fields:
        group.save(update_fields=fields)
        created = Activity.objects.bulk_create(rows)
        publish_groups([group], {group.pk: [activity_entry(a) for a in created]})
    return group


def change_group(
    group: FailureGroup, actor: Any, status: str | None, assignee: str | None, set_assignee: bool
) -> FailureGroup:
    """``update_group`` for an actor (a user or an API key) naming the assignee by username
    (``set_assignee`` with None unassigns); the caller checked the actor's role. An
    assignee outside the project is an ``InputError`` on ``assignee``."""
    user: Any = None
    if assignee is not None:
        user = (
            get_user_model()
            .objects.filter(memberships__project_id=group.project_id, username=assignee)
            .first()
        )
        if user is None:
            raise InputError("assignee", f"{assignee!r} is not a member of this project")
    with transaction.atomic():
        return update_group(
            group.pk,
            actor=actor_user(actor),
            via=actor.username if isinstance(actor, KeyPrincipal) else None,
            status=status,
            assignee=user,
            set_assignee=set_assignee,
        )
