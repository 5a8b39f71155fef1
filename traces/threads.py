"""A thread (a conversation over several runs, by ``thread_id``): its runs in order and
the messages each run added to it.

Bounded whatever the thread's length: one page holds at most ``PAGE_RUNS`` runs (the
latest by default, then older pages by a keyset cursor), and reads the final states of
those runs plus the one before them, skipping a state over ``MAX_STATE_BYTES`` (the run
page shows it), so a thread of a thousand runs costs what fifty do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q

from .errors import InputError
from .messages import ChatMessage, added_messages, chat_message, messages_of
from .models import Project, Run, StateSnapshot, Step
from .store import load_states

PAGE_RUNS = 50
MAX_STATE_BYTES = 2_000_000


@dataclass
class Turn:
    """One run of the thread and the messages it added ("none": its state holds no
    ``messages``; "too_large": its state was not read)."""

    run: Run
    messages: list[ChatMessage] = field(default_factory=list)
    state: str = "ok"


@dataclass
class ThreadPage:
    thread_id: str
    turns: list[Turn]  # oldest first
    total: int
    older: str | None  # the ``before`` cursor of the page before this one
    newer: bool  # a later page exists (this one was asked for with ``before``)


def thread_runs(project: Project, thread_id: str) -> Any:
    return Run.objects.filter(project=project, thread_id=thread_id).select_related("project")


def _final_state_ids(runs: list[Run]) -> dict[int, int | None]:
    """Each run's final state; a run still running has none yet, so its last step's."""
    ids: dict[int, int | None] = {r.pk: r.final_state_id for r in runs}
    open_runs = [pk for pk, state in ids.items() if state is None]
    if open_runs:
        last = (
            Step.objects.filter(run_id__in=open_runs, state_after__isnull=False)
            .order_by("run_id", "-position")
            .values_list("run_id", "state_after_id")
        )
        for run_id, state_id in last:
            if ids[run_id] is None:
                ids[run_id] = state_id
    return ids


def thread_page(project: Project, thread_id: str, before: str | None = None) -> ThreadPage | None:
    """The page of the thread ending just before the run ``before`` (an execution id of
    the thread; None: the latest runs), or None when the thread has no run."""
    runs = thread_runs(project, thread_id)
    total = runs.count()
    if not total:
        return None
    newest_first = runs.order_by("-started_at", "-id")
    if before is not None:
        anchor = runs.filter(execution_id=before).first()
        if anchor is None:
            raise InputError("before", "expected the execution id of a run of this thread")
        newest_first = newest_first.filter(
            Q(started_at__lt=anchor.started_at) | Q(started_at=anchor.started_at, id__lt=anchor.pk)
        )
    # One more than the page: the run before it, whose messages are not new here.
    window = list(newest_first[: PAGE_RUNS + 1])
    shown = list(reversed(window[:PAGE_RUNS]))
    previous = window[PAGE_RUNS] if len(window) > PAGE_RUNS else None
    state_ids = _final_state_ids(shown + ([previous] if previous else []))
    sizes = dict(
        StateSnapshot.objects.filter(pk__in=[i for i in state_ids.values() if i]).values_list(
            "pk", "size_bytes"
        )
    )
    readable = {i for i, size in sizes.items() if size <= MAX_STATE_BYTES}
    states = load_states(project.pk, readable)

    def held(run: Run) -> tuple[str, list[Any] | None]:
        state_id = state_ids.get(run.pk)
        if state_id is None:
            return "none", None
        if state_id not in readable:
            return "too_large", None
        found = messages_of(states.get(state_id))
        return ("ok", found) if found is not None else ("none", None)

    before_messages = held(previous)[1] if previous else None
    turns = []
    for run in shown:
        status, found = held(run)
        turn = Turn(run=run, state=status)
        if found is not None:
            turn.messages = [chat_message(m) for m in added_messages(before_messages, found)]
            before_messages = found
        turns.append(turn)
    return ThreadPage(
        thread_id=thread_id,
        turns=turns,
        total=total,
        older=shown[0].execution_id if previous else None,
        newer=before is not None,
    )
