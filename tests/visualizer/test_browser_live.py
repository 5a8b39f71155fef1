"""Watching a run live in a real browser, against a real Daphne: nodes appear as the
producer streams them, without a reload, and the list of runs updates too."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, redis_server, server_env, wait_for
from traces.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

RUN = "browser-live-run"


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    with daphne(server_env(database_url(connection.settings_dict))) as live:
        yield live


def post(server: Daphne, key: str, *events: dict[str, Any]) -> None:
    response = server.request(
        "POST",
        f"/api/v1/runs/{RUN}/events",
        {"events": list(events)},
        {"Authorization": f"Bearer {key}"},
    )
    assert response.status == 200, response.body


def finished(seq: int, index: int, node: str, **extra: Any) -> dict[str, Any]:
    data = {"node": node, "index": index, "duration_ms": 40 + index, "tokens_used": 100}
    return {"seq": seq, "type": "node_finished", "data": {**data, **extra}}


def post_fixture(server: Daphne, key: str, fixtures_dir: Any, name: str) -> int:
    """Store one of the shared DashFlow fixtures through the API; the answer's status."""
    body = json.loads((fixtures_dir / name).read_bytes())
    response = server.request("POST", "/api/v1/traces", body, {"Authorization": f"Bearer {key}"})
    assert response.status in (200, 201), response.body
    return response.status


def seconds(shown: str) -> float:
    """A duration as the page writes it ("5.12 s", "12.3 s", "1 min 2 s") in seconds."""
    found = re.fullmatch(r"(?:(\d+) min )?(\d+(?:\.\d+)?) s", shown)
    assert found, shown
    return int(found[1] or 0) * 60 + float(found[2])


def sign_in(page: Page, server: Daphne) -> None:
    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-123")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")


def test_a_streamed_run_grows_node_by_node_without_a_reload(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    post(
        server,
        api_key,
        {"seq": 1, "type": "run_started", "data": {"metadata": {"graph_name": "g"}}},
    )
    sign_in(page, server)
    page.goto(f"{server.origin}/projects/acme/runs/{RUN}/")
    expect(page.locator("#live-indicator")).to_be_visible()
    page.evaluate("window.notReloaded = true")

    post(
        server, api_key, {"seq": 2, "type": "node_started", "data": {"node": "planner", "index": 0}}
    )
    expect(page.locator("#run-running")).to_have_text("running: planner (#0)")
    post(server, api_key, finished(3, 0, "planner"))
    expect(page.locator("#steps tr")).to_have_count(1)
    # Out of order: index 2 arrives before index 1, and the list stays in execution order.
    post(server, api_key, finished(5, 2, "writer", success=False, error_message="<b>boom</b>"))
    post(server, api_key, finished(4, 1, "retriever", tools_called=["web_search"]))
    expect(page.locator("#steps tr td.node-name")).to_have_text(["planner", "retriever", "writer"])
    # Trace strings are text, never markup.
    expect(page.locator("#steps tr").nth(2).locator("td.err")).to_have_text("<b>boom</b>")
    expect(page.locator("#run-status")).to_have_text("Failed")
    expect(page.locator("#stat-nodes")).to_have_text("3")
    assert page.evaluate("window.notReloaded") is True


def test_a_live_run_shows_its_time_so_far_until_it_finishes(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=5)
    post(
        server,
        api_key,
        {"seq": 1, "type": "run_started", "data": {"started_at": started.isoformat()}},
    )
    sign_in(page, server)
    # Playwright's clock: time flows as usual, and run_for below moves it on at once.
    page.clock.install()
    page.goto(f"{server.origin}/projects/acme/runs/{RUN}/")
    # The time since the run started at first (5 s and however long the sign-in took on
    # a loaded machine), then it ticks on while the run is live.
    shown = page.locator("#stat-duration")
    expect(shown).to_have_text(re.compile(r"^(\d+ min )?\d+(\.\d+)? s$"))
    first = seconds(shown.inner_text())
    assert 5 <= first <= (datetime.now(UTC) - started).total_seconds() + 1
    expect(page.locator("#live-indicator")).to_be_visible()
    wait_for(lambda: seconds(shown.inner_text()) >= first + 1, 60, "the duration to tick on")
    post(
        server,
        api_key,
        {
            "seq": 2,
            "type": "run_finished",
            "data": {"completed": True, "total_duration_ms": 1234, "total_tokens": 0},
        },
    )
    expect(page.locator("#stat-duration")).to_have_text("1.23 s")
    # Finished: the run is no longer "● live", though its socket stays open.
    expect(page.locator("#live-indicator")).to_be_hidden()
    page.clock.run_for(5000)  # five ticks' worth of timers, had the ticker not stopped
    expect(page.locator("#stat-duration")).to_have_text("1.23 s")


def test_the_run_list_shows_a_new_run_as_it_starts(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    sign_in(page, server)
    page.goto(f"{server.origin}/projects/acme/runs/")
    expect(page.locator("#live-indicator")).to_be_visible()

    post(
        server,
        api_key,
        {"seq": 1, "type": "run_started", "data": {"metadata": {"graph_name": "fresh-graph"}}},
    )

    row = page.locator(f'#run-rows tr[data-execution-id="{RUN}"]')
    expect(row).to_be_visible()
    expect(row.locator(".badge")).to_have_text("Running")
    post(server, api_key, finished(2, 0, "planner"))
    expect(row.locator('[data-col="nodes"]')).to_have_text("1")


def test_the_run_list_shows_live_when_its_script_loads_after_the_socket_subscribed(
    server: Daphne, page: Page, member: Any
) -> None:
    # The navigation's inbox badge opens the project socket the run list shares. Here the
    # list's own script is held until that socket has been told "subscribed": the list
    # must still learn it is live (it once stayed "not live" for good: CI saw it).
    sign_in(page, server)
    held: list[Any] = []
    page.route(
        re.compile(r"/static/visualizer/runs(\.[0-9a-f]+)?\.js"), lambda route: held.append(route)
    )
    told: list[str] = []

    def watch(socket: Any) -> None:
        if "/runs/" in socket.url:
            socket.on("framereceived", lambda frame: told.append(str(frame)))

    page.on("websocket", watch)
    page.goto(f"{server.origin}/projects/acme/runs/", wait_until="commit")
    # Playwright delivers the route and socket events during its own calls: the
    # condition makes one.
    wait_for(
        lambda: page.evaluate("1") and held and any('"subscribed"' in f for f in told),
        60,
        "the list's script held and its socket subscribed",
    )
    held[0].continue_()
    expect(page.locator("#live-indicator")).to_be_visible()


def test_the_timeline_shows_each_step_and_a_click_selects_it(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    assert post_fixture(server, api_key, fixtures_dir, "tool_timeout_failure.json") == 201
    sign_in(page, server)
    url = f"{server.origin}/projects/acme/runs/0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02/"
    page.goto(url)

    bars = page.locator("#timeline g.point")
    expect(bars).to_have_count(5)
    expect(page.locator("#timeline .ytick text")).to_have_text(
        ["critic", "reader", "retriever", "planner"]
    )
    # The red bar is the failing retriever (step 4): clicking it selects that step.
    page.locator("#timeline .trace.bars").nth(1).locator("g.point").first.click(force=True)
    expect(page.locator("#steps tr.selected td").first).to_have_text("4")
    assert page.evaluate("location.hash") == "#step=4"

    page.goto(f"{url}#step=2")
    expect(page.locator("#steps tr.selected td").first).to_have_text("2")


def test_stepping_through_a_failed_run_with_the_keyboard(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_fixture(server, api_key, fixtures_dir, "tool_timeout_failure.json")
    sign_in(page, server)
    url = f"{server.origin}/projects/acme/runs/0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02/"
    page.goto(url)
    expect(page.locator("#timeline g.point")).to_have_count(5)

    page.keyboard.press("e")  # the next failed step
    expect(page.locator("#step-title")).to_have_text("Step #4 · retriever")
    expect(page.locator("#step-no-diff")).to_contain_text("before the node failed")
    page.keyboard.press("k")  # back to the node before it
    expect(page.locator("#step-title")).to_have_text("Step #3 · critic")
    expect(page.locator("#step-diff tr")).to_have_count(2)
    expect(page.locator("#step-diff tr").nth(1)).to_contain_text("/iteration")
    assert page.evaluate("location.hash") == "#step=3"

    # A teammate opening the link sees the same step.
    other = page.context.new_page()
    other.goto(f"{url}#step=3")
    expect(other.locator("#step-title")).to_have_text("Step #3 · critic")
    other.keyboard.press("?")
    expect(other.locator("#keys-help")).to_be_visible()


def test_where_the_time_goes_charts_show_each_node_and_its_loop(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_fixture(server, api_key, fixtures_dir, "research_agent_success.json")
    sign_in(page, server)
    page.goto(f"{server.origin}/projects/acme/runs/0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a01/")

    # Two bar charts (time, tokens) with one bar per node, nodes top-down in run order.
    expect(page.locator("#breakdown g.point")).to_have_count(10)
    expect(page.locator("#breakdown .ytick text")).to_have_text(
        ["writer", "critic", "reader", "retriever", "planner"]
    )
    expect(page.locator("#graph .scatterlayer .trace").nth(1).locator(".point")).to_have_count(5)
    times = "\u00d7"
    expect(page.locator("#graph .annotation-text", has_text=times)).to_have_text(
        [
            f"{node} {times}{visits}"
            for node, visits in [
                ("planner", 1),
                ("retriever", 3),
                ("reader", 3),
                ("critic", 3),
                ("writer", 1),
            ]
        ]
    )
    # Five transitions, the critic → retriever loop among them, each a drawn path.
    expect(page.locator("#graph path[data-index]")).to_have_count(5)
    # A live refetch returns all three figures together.
    figures = page.evaluate("async () => (await fetch(location.pathname + 'timeline.json')).json()")
    assert set(figures) == {"timeline", "breakdown", "graph"}


def test_watching_a_path_from_the_diff_and_opening_it_from_a_link(
    server: Daphne, page: Page, api_key: str, member: Any, fixtures_dir: Any
) -> None:
    post_fixture(server, api_key, fixtures_dir, "tool_timeout_failure.json")
    sign_in(page, server)
    url = f"{server.origin}/projects/acme/runs/0b1c6f0e-4e1a-4c59-9d36-6f1f3c1e2a02/"
    page.goto(f"{url}#step=3")
    expect(page.locator("#step-diff tr")).to_have_count(2)

    page.locator("#step-diff tr").nth(1).get_by_role("button", name="watch").click()

    expect(page.locator("#watch-result")).to_contain_text(
        "/iteration: first written by #3 critic, last by #3 critic"
    )
    expect(page.locator("#watch-changes li")).to_have_text(["#3 critic → 1"])
    assert page.evaluate("location.hash") == "#step=3&path=/iteration"

    other = page.context.new_page()
    other.goto(f"{url}#step=1&path=/documents/0")
    expect(other.locator("#step-title")).to_have_text("Step #1 · retriever")
    expect(other.locator("#watch-changes li")).to_have_count(1)
    expect(other.locator("#watch-changes li")).to_contain_text("#1 retriever")


@pytest.mark.parametrize("redis_back", [False, True], ids=["redis-still-down", "redis-back"])
def test_a_run_that_ends_while_redis_is_down_shows_as_ended_without_a_reload(
    page: Page, api_key: str, member: Any, redis_back: bool
) -> None:
    # The pushes of a run that ends while the channel layer is down are lost: the pages
    # learn it from their periodic check (LIVE_CHECK_EVERY, 1 s here), Redis back or not.
    with (
        redis_server() as redis,
        daphne(
            server_env(database_url(connection.settings_dict), redis.url, LIVE_CHECK_EVERY="1")
        ) as live,
    ):
        post(live, api_key, {"seq": 1, "type": "run_started", "data": {}}, finished(2, 0, "n0"))
        sign_in(page, live)
        page.goto(f"{live.origin}/projects/acme/runs/{RUN}/")
        runs = page.context.new_page()
        runs.goto(f"{live.origin}/projects/acme/runs/")
        row = runs.locator(f'#run-rows tr[data-execution-id="{RUN}"]')
        for view in (page, runs):
            # A private Redis and a Daphne just started: generous on a loaded machine.
            expect(view.locator("#live-indicator")).to_be_visible(timeout=60_000)
            view.evaluate("window.notReloaded = true")
        # Through the layer while it is up: the viewers are subscribed.
        post(live, api_key, finished(3, 1, "n1"))
        expect(page.locator("#stat-nodes")).to_have_text("2")
        expect(row.locator('[data-col="nodes"]')).to_have_text("2")

        redis.kill()
        rest = [finished(seq, seq - 2, f"n{seq - 2}") for seq in range(4, 10)]
        end = {"seq": 10, "type": "run_finished", "data": {"completed": True}}
        post(live, api_key, *rest, end)
        stored = Run.objects.get(execution_id=RUN)
        assert (stored.status, stored.node_count, stored.last_seq) == ("completed", 8, 10)
        if redis_back:
            redis.start()

        converged = {"timeout": 60_000}  # waits on the condition; generous for a loaded machine
        expect(page.locator("#run-status")).to_have_text("Completed", **converged)
        expect(page.locator("#stat-nodes")).to_have_text("8", **converged)
        expect(page.locator("#steps tr")).to_have_count(8, **converged)
        expect(row.locator(".badge")).to_have_text("Completed", **converged)
        expect(row.locator('[data-col="nodes"]')).to_have_text("8", **converged)
        for view in (page, runs):
            assert view.evaluate("window.notReloaded") is True
