"""The review API per role: viewer reads, member and API key write, admin moderates, and
a user of another project gets 404 on every URL. Plus the export's JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.traces.test_review import FAILED_RUN, add_user, store_failed_run
from traces import review, review_export
from traces.models import Activity, Comment, Project, Role, Run, RunReview, StepVerdict

pytestmark = pytest.mark.django_db

R = f"/api/v1/runs/{FAILED_RUN}"


@pytest.fixture
def run(project: Project) -> Run:
    return store_failed_run(project)


@pytest.fixture
def users(project: Project, other_project: Project) -> dict[str, Any]:
    return {
        "alice": add_user(project, "alice", Role.MEMBER),
        "bob": add_user(project, "bob", Role.MEMBER),
        "vera": add_user(project, "vera", Role.VIEWER),
        "ada": add_user(project, "ada", Role.ADMIN),
        "otto": add_user(other_project, "otto", Role.ADMIN),
    }


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def call(client: APIClient, method: str, url: str, body: Any = None, project: str = "acme") -> Any:
    sep = "&" if "?" in url else "?"
    return getattr(client, method)(f"{url}{sep}project={project}", body, format="json")


def every_url(comment_id: int) -> list[tuple[str, str, Any]]:
    return [
        ("get", f"{R}/review", None),
        ("patch", f"{R}/review", {"status": "reviewed"}),
        ("put", f"{R}/steps/4/verdict", {"verdict": "bad", "reason": "timeout"}),
        ("delete", f"{R}/steps/4/verdict", None),
        ("get", f"{R}/comments", None),
        ("post", f"{R}/comments", {"body": "hello"}),
        ("patch", f"/api/v1/comments/{comment_id}", {"body": "edited"}),
        ("delete", f"/api/v1/comments/{comment_id}", None),
        ("get", f"{R}/activity", None),
        ("get", "/api/v1/reviews/export?format=json", None),
        ("get", "/api/v1/reviews/export?format=csv", None),
    ]


def test_a_user_of_another_project_gets_404_on_every_url_and_changes_nothing(
    run: Run, users: dict[str, Any], other_project: Project
) -> None:
    comment = review.add_comment(run, users["alice"], "secret finding")
    otto = client_for(users["otto"])
    for method, url, body in every_url(comment.pk):
        # Naming our project, or naming their own (where the run does not exist).
        for slug in ("acme", "other"):
            response = call(otto, method, url, body, project=slug)
            if url.startswith("/api/v1/reviews/export") and slug == "other":
                continue  # their own project's export: allowed, and holds none of ours
            assert response.status_code == 404, (method, url, slug, response.content)
            assert b"secret" not in response.content
    own = call(otto, "get", "/api/v1/reviews/export?format=json", project="other")
    assert json.loads(b"".join(own.streaming_content))["comments"] == []
    assert Comment.objects.get().body == "secret finding"
    assert not RunReview.objects.exists()
    assert not StepVerdict.objects.exists()


def test_an_api_key_of_another_project_gets_404(run: Run, other_project: Project) -> None:
    from traces.models import ApiKey

    comment = review.add_comment(run, _key_actor(run.project), "x")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other_project)[1]}")
    for method, url, body in every_url(comment.pk):
        response = getattr(client, method)(url, body, format="json")
        if url.startswith("/api/v1/reviews/export"):
            assert response.status_code == 200  # its own project's (empty) export
            continue
        assert response.status_code == 404, (method, url, response.content)


def _key_actor(project: Project) -> Any:
    from traces.models import ApiKey
    from traces.permissions import KeyPrincipal

    return KeyPrincipal(ApiKey.issue(project)[0])


def test_a_viewer_reads_everything_and_gets_403_on_every_write(
    run: Run, users: dict[str, Any]
) -> None:
    comment = review.add_comment(run, users["alice"], "by alice")
    vera = client_for(users["vera"])
    for method, url, body in every_url(comment.pk):
        response = call(vera, method, url, body)
        if method == "get":
            assert response.status_code == 200, (url, response.content)
        else:
            assert response.status_code == 403, (method, url, response.content)
    body = call(vera, "get", f"{R}/review").json()
    assert body["you"] == {
        "username": "vera",
        "role": "viewer",
        "can_review": False,
        "is_admin": False,
    }
    assert not RunReview.objects.exists()
    assert Comment.objects.count() == 1


def test_a_viewer_downloads_the_review_export_as_the_readme_says_viewers_read(
    run: Run, users: dict[str, Any]
) -> None:
    review.set_verdict(run, review.step_at(run, 4), users["alice"], "bad", "timed out")
    review.add_comment(run, users["alice"], "seen by everyone")
    vera = client_for(users["vera"])
    as_json = call(vera, "get", "/api/v1/reviews/export?format=json")
    assert as_json.status_code == 200
    data = json.loads(b"".join(as_json.streaming_content))
    assert [c["body"] for c in data["comments"]] == ["seen by everyone"]
    assert [v["reason"] for v in data["verdicts"]] == ["timed out"]
    as_csv = call(vera, "get", "/api/v1/reviews/export?format=csv")
    assert as_csv.status_code == 200
    assert as_csv["Content-Disposition"] == 'attachment; filename="acme-reviews.csv"'
    text = b"".join(as_csv.streaming_content).decode()
    assert [r["record"] for r in csv.DictReader(io.StringIO(text))] == ["verdict", "comment"]


def test_a_member_reviews_judges_steps_and_comments(run: Run, users: dict[str, Any]) -> None:
    alice = client_for(users["alice"])
    got = call(
        alice,
        "patch",
        f"{R}/review",
        {"status": "needs_attention", "assignee": "alice", "labels": ["timeout"]},
    )
    assert got.status_code == 200, got.content
    body = got.json()
    assert (body["status"], body["assignee"], body["labels"]) == (
        "needs_attention",
        "alice",
        ["timeout"],
    )
    assert body["you"]["can_review"] is True
    assert [m["username"] for m in body["members"]] == ["ada", "alice", "bob", "vera"]

    verdict = call(
        alice, "put", f"{R}/steps/4/verdict", {"verdict": "bad", "reason": "upstream timeout"}
    )
    assert verdict.status_code == 200, verdict.content
    assert verdict.json()["node"] == "retriever"
    assert verdict.json()["step_index"] == 4
    assert call(alice, "get", f"{R}/review").json()["verdicts"][0]["verdict"] == "bad"

    posted = call(
        alice,
        "post",
        f"{R}/comments",
        {"body": "**why** @bob <script>x</script>", "step": 3, "path": "/iteration"},
    )
    assert posted.status_code == 201, posted.content
    comment = posted.json()
    assert (comment["step_index"], comment["path"], comment["mentions"]) == (
        3,
        "/iteration",
        ["bob"],
    )
    assert "<strong>why</strong>" in comment["html"]
    assert "<script" not in comment["html"]

    listed = call(alice, "get", f"{R}/comments?step=3&path=/iteration").json()
    assert [c["id"] for c in listed] == [comment["id"]]
    assert call(alice, "get", f"{R}/comments?step=4").json() == []

    edited = call(alice, "patch", f"/api/v1/comments/{comment['id']}", {"body": "plain now"})
    assert edited.status_code == 200
    assert edited.json()["edited_at"] is not None
    # bob may neither edit nor delete alice's comment; ada (admin) may delete it.
    bob = client_for(users["bob"])
    assert (
        call(bob, "patch", f"/api/v1/comments/{comment['id']}", {"body": "mine"}).status_code == 403
    )
    assert call(bob, "delete", f"/api/v1/comments/{comment['id']}").status_code == 403
    assert (
        call(client_for(users["ada"]), "delete", f"/api/v1/comments/{comment['id']}").status_code
        == 204
    )
    assert call(alice, "delete", f"{R}/steps/4/verdict").status_code == 204

    activity = call(alice, "get", f"{R}/activity").json()
    assert [(a["actor"], a["verb"]) for a in activity] == [
        ("alice", "verdict_cleared"),
        ("ada", "comment_deleted"),
        ("alice", "comment_edited"),
        ("alice", "commented"),
        ("alice", "verdict_set"),
        ("alice", "labels_changed"),
        ("alice", "assigned"),
        ("alice", "status_changed"),
    ]
    assert activity[-1]["detail"] == {"from": "unreviewed", "to": "needs_attention"}
    assert len(call(alice, "get", f"{R}/activity?limit=2").json()) == 2


def test_an_api_key_acts_as_a_member(run: Run, api: APIClient, users: dict[str, Any]) -> None:
    assert (
        api.patch(
            f"{R}/review", {"status": "reviewed", "assignee": "bob"}, format="json"
        ).status_code
        == 200
    )
    posted = api.post(f"{R}/comments", {"body": "from CI"}, format="json")
    assert posted.status_code == 201
    assert posted.json()["author"] is None
    assert api.put(f"{R}/steps/0/verdict", {"verdict": "good"}, format="json").status_code == 200
    assert api.get("/api/v1/reviews/export").status_code == 200
    assert Activity.objects.filter(run=run, actor=None).count() == 4


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "path"),
    [
        ("patch", f"{R}/review", {"status": "done"}, 400, "status"),
        ("patch", f"{R}/review", {"labels": "x"}, 400, "labels"),
        ("patch", f"{R}/review", {"assignee": "vera"}, 400, "assignee"),
        ("patch", f"{R}/review", {"colour": "red"}, 400, "colour"),
        ("patch", f"{R}/review", ["status"], 400, "$"),
        ("put", f"{R}/steps/4/verdict", {"verdict": "ugly"}, 400, "verdict"),
        ("put", f"{R}/steps/99/verdict", {"verdict": "good"}, 404, "index"),
        ("post", f"{R}/comments", {"body": ""}, 400, "body"),
        ("post", f"{R}/comments", {"body": "x", "step": "4"}, 400, "step"),
        ("post", f"{R}/comments", {"body": "x", "path": "/a"}, 400, "path"),
        ("get", f"{R}/comments?step=x", None, 400, "step"),
        ("get", "/api/v1/reviews/export?format=xlsx", None, 400, "format"),
    ],
)
def test_bad_input_gets_the_field_and_the_rule(
    run: Run, users: dict[str, Any], method: str, url: str, body: Any, status: int, path: str
) -> None:
    response = call(client_for(users["alice"]), method, url, body)
    assert response.status_code == status, response.content
    answer = json.loads(response.content)
    assert answer["path"] == path
    assert answer["rule"]
    assert answer["detail"]
    assert not RunReview.objects.exists()
    assert not Comment.objects.exists()


def test_unknown_runs_and_comments_are_404(run: Run, users: dict[str, Any]) -> None:
    alice = client_for(users["alice"])
    assert call(alice, "get", "/api/v1/runs/nope/review").status_code == 404
    assert call(alice, "patch", "/api/v1/comments/999999", {"body": "x"}).status_code == 404


def test_signed_out_requests_are_refused(run: Run) -> None:
    assert APIClient().get(f"{R}/review?project=acme").status_code in (401, 403)


def test_the_export_streams_reviews_verdicts_and_comments_as_json_and_csv(
    project: Project, run: Run, users: dict[str, Any]
) -> None:
    other_run = store_failed_run(project, "fail-2", minute=40)
    alice, bob = users["alice"], users["bob"]
    review.update_review(run, alice, status="reviewed", assignee="bob", labels=["timeout", "net"])
    review.update_review(other_run, bob, status="needs_attention")
    review.set_verdict(run, review.step_at(run, 4), bob, "bad", 'fetch "timed" out, again')
    review.set_verdict(run, review.step_at(run, 0), bob, "good")
    review.add_comment(
        run, alice, "line one\nline two, with @bob", review.step_at(run, 3), "/plan/0"
    )
    review.add_comment(other_run, bob, "=cmd|' /C calc'!A0")  # a formula: escaped in CSV

    client = client_for(alice)
    response = call(client, "get", "/api/v1/reviews/export?format=json")
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="acme-reviews.json"'
    data = json.loads(b"".join(response.streaming_content))
    assert data["project"] == "acme"
    assert sorted(
        (r["execution_id"], r["status"], r["assignee"], tuple(r["labels"])) for r in data["reviews"]
    ) == [
        (FAILED_RUN, "reviewed", "bob", ("timeout", "net")),
        ("fail-2", "needs_attention", None, ()),
    ]
    assert [
        (v["step_index"], v["node"], v["verdict"], v["reason"], v["user"]) for v in data["verdicts"]
    ] == [
        (4, "retriever", "bad", 'fetch "timed" out, again', "bob"),
        (0, "planner", "good", "", "bob"),
    ]
    assert [
        (c["execution_id"], c["step_index"], c["path"], c["author"], c["mentions"])
        for c in data["comments"]
    ] == [
        (FAILED_RUN, 3, "/plan/0", "alice", ["bob"]),
        ("fail-2", None, "", "bob", []),
    ]

    response = call(client, "get", "/api/v1/reviews/export?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["record"] for r in rows] == [
        "review",
        "review",
        "verdict",
        "verdict",
        "comment",
        "comment",
    ]
    first = next(r for r in rows if r["record"] == "review" and r["execution_id"] == FAILED_RUN)
    assert (first["status"], first["assignee"], first["labels"]) == (
        "reviewed",
        "bob",
        "timeout; net",
    )
    assert rows[2]["reason"] == 'fetch "timed" out, again'
    assert rows[2]["author"] == "bob"
    assert rows[4]["body"] == "line one\nline two, with @bob"
    assert rows[4]["mentions"] == "bob"
    assert rows[4]["step_index"] == "3"
    assert rows[4]["node"] == "critic"
    # In CSV a text cell a spreadsheet would evaluate starts with a quote; JSON keeps it.
    assert rows[5]["body"] == "'=cmd|' /C calc'!A0"
    assert data["comments"][1]["body"] == "=cmd|' /C calc'!A0"


def test_the_export_of_a_project_without_reviews_is_empty_but_well_formed(
    run: Run, users: dict[str, Any]
) -> None:
    client = client_for(users["alice"])
    data = json.loads(b"".join(call(client, "get", "/api/v1/reviews/export").streaming_content))
    assert data == {"project": "acme", "reviews": [], "verdicts": [], "comments": []}
    text = b"".join(call(client, "get", "/api/v1/reviews/export?format=csv").streaming_content)
    assert text.decode().strip() == ",".join(review_export.CSV_COLUMNS)
    assert review_export.CSV_COLUMNS[:3] == ["record", "execution_id", "step_index"]


def test_the_review_api_is_in_the_openapi_schema_which_validates_cleanly() -> None:
    from django.core.management import call_command

    out = io.StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out
    )
    paths = json.loads(out.getvalue())["paths"]
    assert set(paths["/api/v1/runs/{execution_id}/review"]) == {"get", "patch"}
    assert set(paths["/api/v1/runs/{execution_id}/steps/{index}/verdict"]) == {"put", "delete"}
    assert set(paths["/api/v1/runs/{execution_id}/comments"]) == {"get", "post"}
    assert set(paths["/api/v1/comments/{id}"]) == {"patch", "delete"}
    assert set(paths["/api/v1/runs/{execution_id}/activity"]) == {"get"}
    export = paths["/api/v1/reviews/export"]["get"]
    assert set(export["responses"]["200"]["content"]) == {"application/json", "text/csv"}
