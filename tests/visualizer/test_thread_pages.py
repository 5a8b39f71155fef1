"""The thread page: its runs, the conversation, older pages, any thread id, and 404s."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.traces.test_threads import bot, store, user
from traces import threads
from traces.models import Project

pytestmark = pytest.mark.django_db

ODD_ID = "user 7/chat?x=1#top\nline two é"


def test_the_thread_page_lists_runs_and_the_conversation(alice: Client, project: Project) -> None:
    store(project, "first-run", ODD_ID, 1, [user("What is 2+2?"), bot("4")])
    store(project, "second-run", ODD_ID, 2, [user("What is 2+2?"), bot("4"), user("And 3+3?")])
    url = reverse("visualizer:thread", args=["acme", ODD_ID])
    assert "%0A" in url
    assert "%23" in url
    assert "%3F" in url

    response = alice.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index("first-run") < html.index("second-run")
    turns = re.findall(r'<article class="turn" id="run-([^"]+)"', html)
    assert turns == ["first-run", "second-run"]
    assert 'data-role="user"' in html
    assert 'data-role="assistant"' in html
    # The second run shows only the message it added.
    second = html[html.index('id="run-second-run"') :]
    assert "And 3+3?" in second
    assert "What is 2+2?" not in second
    # Durations and tokens through the units filters; run links through reverse().
    assert "120 ms" in html
    assert ">42<" in html
    assert reverse("visualizer:run", args=["acme", "first-run"]) in html


def test_the_run_page_and_the_run_list_link_to_the_thread(alice: Client, project: Project) -> None:
    store(project, "a-run", "t-1", 1, [user("hi")])
    store(project, "b-run", "t-1", 2, [user("hi"), bot("yo")])
    thread_url = reverse("visualizer:thread", args=["acme", "t-1"])

    run_page = alice.get(reverse("visualizer:run", args=["acme", "b-run"])).content.decode()
    assert f'href="{thread_url}" id="thread-link"' in run_page
    same = run_page[run_page.index('id="same-thread"') :]
    assert f'href="{thread_url}#run-a-run"' in same
    listing = alice.get(reverse("visualizer:runs", args=["acme"])).content.decode()
    assert f'href="{thread_url}" class="thread-link"' in listing


def test_an_older_page_and_its_way_back(alice: Client, project: Project, monkeypatch: Any) -> None:
    monkeypatch.setattr(threads, "PAGE_RUNS", 2)
    for i in range(3):
        store(project, f"r{i}", "t", i + 1, [user(f"q{i}")])
    url = reverse("visualizer:thread", args=["acme", "t"])

    latest = alice.get(url).content.decode()
    assert 'id="run-r0"' not in latest
    assert f'href="{url}?before=r1" rel="prev" id="thread-older"' in latest
    older = alice.get(url, {"before": "r1"}).content.decode()
    assert 'id="run-r0"' in older
    assert 'id="run-r1"' not in older
    assert f'href="{url}" rel="next" id="thread-latest"' in older


def test_unknown_threads_cursors_and_outsiders_get_404(
    alice: Client, project: Project, other_project: Project
) -> None:
    store(project, "r", "t", 1, [user("hi")])
    store(other_project, "elsewhere", "theirs", 1, [user("hi")])
    assert alice.get(reverse("visualizer:thread", args=["acme", "nope"])).status_code == 404
    url = reverse("visualizer:thread", args=["acme", "t"])
    assert alice.get(url, {"before": "missing"}).status_code == 404
    other = reverse("visualizer:thread", args=[other_project.slug, "theirs"])
    assert alice.get(other).status_code == 404
    assert Client().get(url).status_code == 302  # signed out: to the sign-in page
