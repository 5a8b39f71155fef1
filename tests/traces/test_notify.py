"""Who a comment, a review assignment and a failure-group assignment notify: mentioned
members, earlier commenters on the same run or step, the new assignee; never the person
who acted, never someone outside the project."""

from __future__ import annotations

from typing import Any

import pytest

from tests.traces.test_review import add_user, store_failed_run
from traces import failures, review
from traces.models import FailureGroup, InboxItem, InboxKind, Project, Role, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(project: Project, other_project: Project) -> dict[str, Any]:
    """alice and bob (members), vera (viewer), ada (admin); otto belongs to another project."""
    return {
        "alice": add_user(project, "alice", Role.MEMBER),
        "bob": add_user(project, "bob", Role.MEMBER),
        "vera": add_user(project, "vera", Role.VIEWER),
        "ada": add_user(project, "ada", Role.ADMIN),
        "otto": add_user(other_project, "otto", Role.MEMBER),
    }


@pytest.fixture
def run(project: Project) -> Run:
    """The shared timeout failure: 5 steps, step 4 fails; one failure group."""
    return store_failed_run(project)


def inbox(user: Any) -> list[tuple[str, str]]:
    return [(i.kind, i.title) for i in InboxItem.objects.filter(user=user).order_by("id")]


def test_a_mention_notifies_the_members_named_but_not_the_author_or_outsiders(
    run: Run, team: dict[str, Any]
) -> None:
    step = review.step_at(run, 3)
    review.add_comment(run, team["bob"], "@alice @vera @otto @bob look", step, "/documents/0")

    (item,) = InboxItem.objects.filter(user=team["alice"])
    assert item.kind == InboxKind.MENTION
    assert item.title == f"bob mentioned you on step #3 ({step.node}) of {run.graph_name or 'run'}"
    assert item.body == "@alice @vera @otto @bob look"
    assert item.link == f"/projects/acme/runs/{run.execution_id}/#step=3&path=/documents/0"
    assert [k for k, _ in inbox(team["vera"])] == [InboxKind.MENTION]  # viewers read too
    assert inbox(team["bob"]) == []  # the author
    assert inbox(team["otto"]) == []  # not a member of this project
    assert inbox(team["ada"]) == []


def test_a_reply_notifies_who_commented_on_the_same_step_before_once(
    run: Run, team: dict[str, Any]
) -> None:
    step, other_step = review.step_at(run, 3), review.step_at(run, 1)
    review.add_comment(run, team["alice"], "this retriever timed out", step)
    review.add_comment(run, team["ada"], "elsewhere", other_step)
    review.add_comment(run, team["vera"], "on the run itself")
    review.add_comment(run, team["alice"], "again", step)  # her own: nothing for her

    assert inbox(team["alice"]) == []
    review.add_comment(run, team["bob"], "Agreed, @alice: the proxy", step)

    # alice was mentioned and had commented: one item, the mention.
    assert [k for k, _ in inbox(team["alice"])] == [InboxKind.MENTION]
    # ada commented on another step, vera on the run: no reply for them.
    assert inbox(team["ada"]) == []
    assert inbox(team["vera"]) == []
    review.add_comment(run, team["ada"], "a reply", step)
    assert [k for k, _ in inbox(team["alice"])] == [InboxKind.MENTION, InboxKind.REPLY]
    assert [k for k, _ in inbox(team["bob"])] == [InboxKind.REPLY]
    # A run-level comment replies to the run-level commenters.
    review.add_comment(run, team["alice"], "summary")
    assert inbox(team["vera"]) == [(InboxKind.REPLY, f"alice replied on {run.graph_name or 'run'}")]


def test_an_edit_notifies_only_whom_it_newly_mentions(run: Run, team: dict[str, Any]) -> None:
    comment = review.add_comment(run, team["bob"], "cc @alice")
    review.edit_comment(comment, team["bob"], "cc @alice and @ada")

    assert len(inbox(team["alice"])) == 1
    assert [k for k, _ in inbox(team["ada"])] == [InboxKind.MENTION]


def test_assigning_a_review_notifies_the_assignee_unless_they_assigned_themselves(
    run: Run, team: dict[str, Any]
) -> None:
    review.update_review(run, team["bob"], assignee="alice")
    (item,) = InboxItem.objects.filter(user=team["alice"])
    assert item.kind == InboxKind.ASSIGNED
    assert item.title.startswith("bob assigned you the review of")
    assert item.link == f"/projects/acme/runs/{run.execution_id}/"

    review.update_review(run, team["ada"], assignee="ada")
    assert inbox(team["ada"]) == []
    review.update_review(run, team["ada"], assignee=None)  # unassigning notifies nobody
    assert InboxItem.objects.count() == 1


def test_assigning_a_failure_group_notifies_the_assignee(
    run: Run, team: dict[str, Any], project: Project
) -> None:
    group = FailureGroup.objects.get(project=project)
    failures.change_group(group, team["bob"], None, "alice", set_assignee=True)
    (item,) = InboxItem.objects.filter(user=team["alice"])
    assert item.kind == InboxKind.ASSIGNED
    assert item.title.startswith("bob assigned you the failure group")
    assert item.link == f"/projects/acme/failures/{group.pk}/"

    failures.change_group(group, team["bob"], None, "bob", set_assignee=True)
    assert inbox(team["bob"]) == []
