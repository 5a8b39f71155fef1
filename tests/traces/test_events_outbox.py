"""What writers publish after commit, collected in an ``events.Outbox`` and sent in one
hop (the OTLP receiver's writer threads): committed transactions' messages arrive once
published, a rolled-back one's never, and a publish inside a transaction waits for its
commit. Through the real channel layer (Redis when REDIS_URL is set)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from traces import events
from traces.models import Project, Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)

SENTINEL = {"type": "test.sentinel"}


def heard(group: str, steps: list[Callable[[], Any]]) -> list[list[str]]:
    """Run ``steps`` one by one (each in a worker thread) while a channel listens on
    ``group``; after each, the types of the messages that reached the channel. A sentinel
    sent after each step closes its list: what was published before it arrives before it,
    so no wait on a clock decides that nothing more came."""
    layer = get_channel_layer()

    async def listen() -> list[list[str]]:
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        lists = []
        for step in steps:
            await sync_to_async(closing(step), thread_sensitive=False)()
            await layer.group_send(group, SENTINEL)
            types = []
            while (message := await layer.receive(channel))["type"] != SENTINEL["type"]:
                types.append(message["type"])
            lists.append(types)
        await layer.group_discard(group, channel)
        return lists

    return async_to_sync(listen)()


def closing(step: Callable[[], Any]) -> Callable[[], None]:
    """``step``, then its thread's database connection given back (the test database is
    dropped at the end: no connection may stay open)."""

    def run() -> None:
        try:
            step()
        finally:
            connection.close()

    return run


def in_thread(work: Callable[[], None]) -> None:
    """``work`` in a thread of its own, with its own database connection (as a writer
    thread of the OTLP receiver has)."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # handed to the test's thread
            failed.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


class RolledBack(Exception):
    pass


def test_committed_writes_are_published_once_together_and_a_rolled_back_one_never() -> None:
    project = Project.objects.create(slug="outbox", name="Outbox")
    runs = [
        Run.objects.create(
            project=project,
            execution_id=f"r{i}",
            status=RunStatus.RUNNING,
            started_at=timezone.now(),
        )
        for i in range(3)
    ]
    outbox = events.Outbox()

    def commit(run: Run) -> None:
        with events.collecting(outbox), transaction.atomic():
            events.run_changed(run)

    def change_then_fail(run: Run) -> None:
        with transaction.atomic():
            events.run_changed(run)
            raise RolledBack

    def roll_back(run: Run) -> None:
        with events.collecting(outbox), pytest.raises(RolledBack):
            change_then_fail(run)

    def write() -> None:
        in_thread(lambda: commit(runs[0]))
        in_thread(lambda: commit(runs[1]))
        in_thread(lambda: roll_back(runs[2]))

    group = events.project_group(project.pk)
    assert heard(group, [write, outbox.publish, outbox.publish]) == [
        [],  # committed, collected, not yet sent
        ["run.summary", "run.summary"],  # the two committed runs, in one hop
        [],  # sent once
    ]
    assert outbox.messages == []


def test_a_publish_inside_a_transaction_waits_for_its_commit() -> None:
    project = Project.objects.create(slug="outbox-atomic", name="Outbox")
    run = Run.objects.create(
        project=project, execution_id="r", status=RunStatus.RUNNING, started_at=timezone.now()
    )
    outbox = events.Outbox()
    group = events.run_group(run.pk)

    def write_and_publish_inside_one_transaction() -> None:
        with transaction.atomic():
            with events.collecting(outbox), transaction.atomic():
                events.run_changed(run)
            outbox.publish()
            # Sent at once, not on commit: it marks what the publish sent before the commit.
            async_to_sync(get_channel_layer().group_send)(group, {"type": "test.inside"})

    # A publish that did not wait would have sent nothing (the run's message joins the
    # outbox at the commit) and lost it.
    assert heard(group, [write_and_publish_inside_one_transaction]) == [
        ["test.inside", "run.reload"]
    ]
