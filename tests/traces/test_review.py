"""traces/review.py and traces/markdown.py: review status, assignee and labels, step
verdicts, comments with mentions, the activity log, and markdown that cannot run script."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from traces import markdown, review, review_json
from traces.errors import InputError
from traces.ingest import ingest_trace
from traces.models import (
    Activity,
    ApiKey,
    Comment,
    Membership,
    Project,
    Role,
    Run,
    RunReview,
    StepVerdict,
)
from traces.parsing import parse_trace

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "dashflow"
FAILED_RUN = "0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02"


def failed_trace(execution_id: str = FAILED_RUN, minute: int = 30) -> bytes:
    """The shared timeout failure (5 steps; step 4, a retriever, fails), renamed."""
    data = json.loads((FIXTURES / "tool_timeout_failure.json").read_bytes())
    data["execution_id"] = execution_id
    data["started_at"] = f"2026-03-02T09:{minute:02d}:00.120+00:00"
    return json.dumps(data).encode()


def store_failed_run(project: Project, execution_id: str = FAILED_RUN, minute: int = 30) -> Run:
    run, _ = ingest_trace(project, parse_trace(failed_trace(execution_id, minute)))
    return run


def add_user(
    project: Project | None, name: str, role: str | None, password: str | None = None
) -> Any:
    # No password unless a test signs in with one: hashing one takes a second or more.
    user = get_user_model().objects.create_user(name, password=password)
    if project is not None and role is not None:
        Membership.objects.create(project=project, user=user, role=role)
    return user


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
    return store_failed_run(project)


def verbs(run: Run) -> list[tuple[str, dict[str, Any]]]:
    return [(a.verb, a.detail) for a in Activity.objects.filter(run=run).order_by("id")]


def test_each_changed_field_is_one_activity_entry_saying_from_and_to(
    run: Run, team: dict[str, Any]
) -> None:
    alice = team["alice"]
    review.update_review(
        run, alice, status="needs_attention", assignee="bob", labels=["timeout", "retriever"]
    )
    review.update_review(run, alice, status="needs_attention", assignee="bob")  # no change
    review.update_review(run, team["bob"], status="reviewed", labels=["timeout", "flaky"])

    row = RunReview.objects.get(run=run)
    assert (row.status, row.assignee, row.labels) == ("reviewed", team["bob"], ["timeout", "flaky"])
    assert verbs(run) == [
        ("status_changed", {"by": "alice", "from": "unreviewed", "to": "needs_attention"}),
        ("assigned", {"by": "alice", "from": None, "to": "bob"}),
        (
            "labels_changed",
            {
                "by": "alice",
                "from": [],
                "to": ["timeout", "retriever"],
                "added": ["timeout", "retriever"],
                "removed": [],
            },
        ),
        ("status_changed", {"by": "bob", "from": "needs_attention", "to": "reviewed"}),
        (
            "labels_changed",
            {
                "by": "bob",
                "from": ["timeout", "retriever"],
                "to": ["timeout", "flaky"],
                "added": ["flaky"],
                "removed": ["retriever"],
            },
        ),
    ]
    review.update_review(run, alice, assignee=None)
    assert verbs(run)[-1] == ("assigned", {"by": "alice", "from": "bob", "to": None})


@pytest.mark.parametrize(
    ("labels", "path", "rule"),
    [
        ("timeout", "labels", "expected a list of strings"),
        ([f"l{i}" for i in range(21)], "labels", "at most 20 labels"),
        (["ok", 3], "labels[1]", "expected a string"),
        (["x" * 41], "labels[0]", "expected 1 to 40 characters"),
        (["   "], "labels[0]", "expected 1 to 40 characters"),
        (["<b>"], "labels[0]", "letters, digits, spaces and . : / # + - _ only"),
        (["a;b"], "labels[0]", "letters, digits, spaces and . : / # + - _ only"),
    ],
)
def test_bad_labels_are_refused_naming_the_label_and_nothing_is_written(
    run: Run, team: dict[str, Any], labels: Any, path: str, rule: str
) -> None:
    with pytest.raises(InputError) as caught:
        review.update_review(run, team["alice"], status="reviewed", labels=labels)
    assert (caught.value.status, caught.value.path, caught.value.rule) == (400, path, rule)
    assert not RunReview.objects.filter(run=run).exists()
    assert not Activity.objects.filter(run=run).exists()


def test_labels_are_trimmed_and_a_repeat_in_another_case_is_dropped(
    run: Run, team: dict[str, Any]
) -> None:
    got = review.update_review(run, team["alice"], labels=["  needs  data ", "Timeout", "timeout"])
    assert got.labels == ["needs data", "Timeout"]


@pytest.mark.parametrize("who", ["vera", "otto", "nobody", 7])
def test_only_a_reviewer_of_the_project_can_be_assigned(
    run: Run, team: dict[str, Any], who: Any
) -> None:
    with pytest.raises(InputError) as caught:
        review.update_review(run, team["alice"], assignee=who)
    assert caught.value.path == "assignee"
    assert not RunReview.objects.filter(run=run).exists()


def test_an_unknown_status_is_refused(run: Run, team: dict[str, Any]) -> None:
    with pytest.raises(InputError) as caught:
        review.update_review(run, team["alice"], status="done")
    assert caught.value.rule == "expected one of unreviewed, needs_attention, reviewed"


def test_a_verdict_is_set_replaced_and_cleared_with_activity(
    run: Run, team: dict[str, Any]
) -> None:
    step = review.step_at(run, 4)
    review.set_verdict(run, step, team["alice"], "good", "looked fine")
    review.set_verdict(run, step, team["bob"], "bad", "  the fetch timed out  ")
    row = StepVerdict.objects.get(run=run, step_position=step.position)
    assert (row.verdict, row.reason, row.user) == ("bad", "the fetch timed out", team["bob"])
    assert review.clear_verdict(run, step, team["bob"]) is True
    assert review.clear_verdict(run, step, team["bob"]) is False
    assert not StepVerdict.objects.filter(run=run).exists()
    assert [(v, d["from"], d["to"], d["node"], d["step"]) for v, d in verbs(run)] == [
        ("verdict_set", None, "good", "retriever", 4),
        ("verdict_set", "good", "bad", "retriever", 4),
        ("verdict_cleared", "bad", None, "retriever", 4),
    ]


def test_a_bad_verdict_or_a_missing_step_is_refused(run: Run, team: dict[str, Any]) -> None:
    with pytest.raises(InputError) as caught:
        review.set_verdict(run, review.step_at(run, 0), team["alice"], "meh")
    assert (caught.value.status, caught.value.path) == (400, "verdict")
    with pytest.raises(InputError) as caught:
        review.step_at(run, 99)
    assert (caught.value.status, caught.value.path) == (404, "index")


def test_mentions_are_project_members_named_in_text_not_in_code_or_emails(
    run: Run, team: dict[str, Any]
) -> None:
    body = (
        "@bob look at this. cc @vera, and @otto (not here) and @ghost; "
        "mail ada@example.org; `@ada` in code; [@ada](https://x.test)"
    )
    comment = review.add_comment(run, team["alice"], body)
    assert comment.mentions == ["bob", "vera"]
    html = markdown.render(comment.body, comment.mentions)
    assert '<span class="mention">@bob</span>' in html
    assert '<span class="mention">@vera</span>' in html
    assert "@otto" in html
    assert '<span class="mention">@otto' not in html
    assert "<code>@ada</code>" in html
    assert Activity.objects.get(run=run, verb="commented").detail["mentions"] == ["bob", "vera"]


@pytest.mark.parametrize(
    ("body", "absent", "present"),
    [
        ("<script>alert(1)</script>", "<script", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ('<img src=x onerror="alert(1)">', "<img", "&lt;img src=x onerror="),
        ("[click](javascript:alert(1))", "href", "[click](javascript:alert(1))"),
        ("[click](JaVaScRiPt:alert(1))", "href", "[click]"),
        ("[x](data:text/html;base64,PHNjcmlwdD4=)", "href", "[x]"),
        ('<a href="https://evil.test">x</a>', "<a ", "&lt;a href="),
        ("<iframe src=//evil.test></iframe>", "<iframe", "&lt;iframe"),
        ("![pixel](https://tracker.test/p.gif)", "<img", "image: pixel</a>"),
        ("![x](javascript:alert(1))", "href", "![x](javascript:alert(1))"),
        ("<div onmouseover=alert(1)>hover</div>", "<div", "&lt;div"),
    ],
)
def test_markdown_never_lets_raw_html_or_script_links_through(
    body: str, absent: str, present: str
) -> None:
    html = markdown.render(body)
    assert absent not in html.lower()
    assert present in html


def test_an_image_is_a_link_to_it_with_its_alt_text_never_fetched() -> None:
    html = markdown.render('see ![the chart](https://dashflow.test/c.png "p95") here')

    assert html == (
        '<p>see <a href="https://dashflow.test/c.png" title="p95" '
        'rel="nofollow noopener noreferrer">image: the chart</a> here</p>\n'
    )


def test_markdown_keeps_formatting_and_links_get_nofollow_noopener() -> None:
    html = markdown.render(
        "**bold** _it_ `code`\n\n- one\n- two\n\n[docs](https://dashflow.test/a?b=1)"
    )
    assert "<strong>bold</strong>" in html
    assert "<em>it</em>" in html
    assert "<code>code</code>" in html
    assert "<li>one</li>" in html
    assert (
        '<a href="https://dashflow.test/a?b=1" rel="nofollow noopener noreferrer">docs</a>' in html
    )


def test_comments_on_run_step_and_path_and_their_filters(run: Run, team: dict[str, Any]) -> None:
    alice = team["alice"]
    on_run = review.add_comment(run, alice, "the whole run")
    on_step = review.add_comment(run, alice, "this step", review.step_at(run, 4))
    on_path = review.add_comment(run, alice, "this value", review.step_at(run, 3), "/iteration")
    assert (on_run.step_position, on_run.path) == (None, "")
    assert (on_step.step_position, on_path.path) == (4, "/iteration")

    every = review_json.list_comments(run, review_json.CommentFilter())
    assert [c["body"] for c in every] == ["the whole run", "this step", "this value"]
    step3 = review_json.list_comments(run, review_json.CommentFilter(step=3))
    assert [(c["step_index"], c["path"]) for c in step3] == [(3, "/iteration")]
    assert review_json.list_comments(run, review_json.CommentFilter(step=3, path="/plan")) == []
    assert review_json.list_comments(run, review_json.CommentFilter(step=42)) == []


@pytest.mark.parametrize(
    ("body", "path", "field"),
    [
        ("", "", "body"),
        ("   ", "", "body"),
        (None, "", "body"),
        ("x" * 10_001, "", "body"),
        ("ok", "iteration", "path"),
        ("ok", "/a~2b", "path"),
    ],
)
def test_bad_comments_are_refused(
    run: Run, team: dict[str, Any], body: Any, path: str, field: str
) -> None:
    with pytest.raises(InputError) as caught:
        review.add_comment(run, team["alice"], body, review.step_at(run, 1), path)
    assert (caught.value.status, caught.value.path) == (400, field)
    assert not Comment.objects.exists()


def test_a_path_needs_a_step(run: Run, team: dict[str, Any]) -> None:
    with pytest.raises(InputError) as caught:
        review.add_comment(run, team["alice"], "where?", None, "/plan")
    assert caught.value.rule == "a path needs a step: name it with step"


def test_only_the_author_edits_and_the_author_or_an_admin_deletes(
    run: Run, team: dict[str, Any]
) -> None:
    comment = review.add_comment(run, team["alice"], "first @bob")
    for who in ("bob", "ada"):
        with pytest.raises(InputError) as caught:
            review.edit_comment(comment, team[who], "rewritten")
        assert caught.value.status == 403
    edited = review.edit_comment(comment, team["alice"], "second, no mention")
    assert (edited.body, edited.mentions) == ("second, no mention", [])
    assert edited.edited_at is not None

    with pytest.raises(InputError) as caught:
        review.delete_comment(comment, team["bob"])
    assert caught.value.status == 403
    review.delete_comment(comment, team["ada"])  # an admin moderates
    assert not Comment.objects.exists()
    mine = review.add_comment(run, team["bob"], "mine")
    review.delete_comment(mine, team["bob"])
    assert [v for v, _ in verbs(run)] == [
        "commented",
        "comment_edited",
        "comment_deleted",
        "commented",
        "comment_deleted",
    ]
    assert verbs(run)[2][1]["by"] == "ada"


def test_an_api_key_comments_without_an_author_and_cannot_edit(
    project: Project, run: Run, team: dict[str, Any]
) -> None:
    from traces.permissions import KeyPrincipal

    key, _ = ApiKey.issue(project, "ci")
    principal = KeyPrincipal(key)
    assert review.role_for(project, principal) == Role.MEMBER
    comment = review.add_comment(run, principal, "flaky upstream, see @alice")
    assert (comment.author, comment.mentions) == (None, ["alice"])
    assert Activity.objects.get(run=run).detail["by"] == principal.username
    with pytest.raises(InputError):
        review.edit_comment(comment, principal, "changed")
    review.delete_comment(comment, team["ada"])
    assert not Comment.objects.exists()
