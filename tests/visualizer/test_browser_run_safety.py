"""Every string from a trace is shown as text: a trace whose node names, tool names, state
keys and values, error messages, metadata, graph name and thread id carry HTML and script
tags renders them literally on the run list and everywhere on the run page, in a real
browser. Also: long values collapse and expand, and a state over the size gate shows as a
summary with a download link."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import Page, expect

from tests.servers import Daphne, daphne, database_url, server_env

pytestmark = pytest.mark.django_db(transaction=True)

# Each piece would run script or add an element if it were ever parsed as HTML: an <img>
# whose error handler sets the flag, a <script>, a closing </script> that would end the
# page's JSON data element, and quotes that would end an attribute.
EVIL = (
    "<img src=x onerror=\"window.__pwned='img'\">"
    "<script>window.__pwned='script'</script>"
    "\"'></script><script>window.__pwned='close'</script><b>bold</b>"
)
RUN = "evil-run"
STATE_GATE = 4096


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[Daphne]:
    env = server_env(database_url(connection.settings_dict), STATE_INLINE_MAX_BYTES=str(STATE_GATE))
    with daphne(env) as live:
        yield live


def evil_trace() -> dict[str, Any]:
    key = f"key{EVIL}"
    before = {key: f"old{EVIL}", "count": 0}
    after = {key: f"new{EVIL}", "count": 1, f"added{EVIL}": [EVIL], "long": "y" * 600}
    big = {**after, "blob": "z" * (2 * STATE_GATE)}
    node = {
        "duration_ms": 30,
        "tokens_used": 5,
        "tools_called": [f"tool{EVIL}"],
        "error_message": None,
        "started_at": "2026-03-02T09:30:00.000+00:00",
        "metadata": {f"meta{EVIL}": EVIL},
        "success": True,
    }
    return {
        "thread_id": f"thread{EVIL}",
        "execution_id": RUN,
        "nodes_executed": [
            {
                **node,
                "node": f"plan{EVIL}",
                "index": 0,
                "state_before": before,
                "state_after": after,
            },
            {
                **node,
                "node": f"grow{EVIL}",
                "index": 1,
                "state_before": after,
                "state_after": big,
                "started_at": "2026-03-02T09:30:00.040+00:00",
            },
            {
                **node,
                "node": f"fail{EVIL}",
                "index": 2,
                "state_before": big,
                "state_after": None,
                "success": False,
                "error_message": f"boom{EVIL}",
                "started_at": "2026-03-02T09:30:00.080+00:00",
            },
        ],
        "total_duration_ms": 110,
        "total_tokens": 15,
        "errors": [
            {
                "node": f"fail{EVIL}",
                "message": f"boom{EVIL}",
                "error_type": f"Type{EVIL}",
                "state_at_error": big,
                "timestamp": "2026-03-02T09:30:00.110+00:00",
                "execution_index": 2,
                "recoverable": False,
                "retry_attempted": False,
                "context": EVIL,
                "metadata": {EVIL: EVIL},
            }
        ],
        "completed": False,
        "started_at": "2026-03-02T09:30:00.000+00:00",
        "ended_at": "2026-03-02T09:30:00.110+00:00",
        "final_state": big,
        "metadata": {"graph_name": f"graph{EVIL}", EVIL: EVIL},
    }


def assert_nothing_injected(page: Page) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0
    # Only the page's own scripts: the JSON data, run.js, the Plotly it adds, the review
    # panel's module, the navigation's inbox badge, the formatter and the theme's two.
    sources = page.evaluate(
        "[...document.scripts].map((s) => s.id || s.src.split('/').pop() || s.text.slice(0, 40))"
    )
    expected = [
        "format.js",
        "inbox_badge.js",
        "plotly-dashflow.min.js",
        "review.js",
        "run-data",
        "run.js",
        "theme.js",
        "theme_init.js",
    ]
    assert sorted(sources) == expected, sources
    assert page.locator("b", has_text="bold").count() == 0


def test_html_and_script_in_a_trace_render_as_text_everywhere(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    response = server.request(
        "POST", "/api/v1/traces", evil_trace(), {"Authorization": f"Bearer {api_key}"}
    )
    assert response.status == 201, response.body
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-123")
    page.click("button[type=submit]")

    # The run list: graph name and thread as text.
    page.goto(f"{server.origin}/projects/acme/runs/")
    row = page.locator(f'tr[data-execution-id="{RUN}"]')
    expect(row).to_contain_text(f"graph{EVIL}")
    # The thread column is cut for the list (the link's title holds the whole id).
    expect(row).to_contain_text(f"thread{EVIL}"[:23])
    expect(row.locator("a.thread-link")).to_have_attribute("title", re.compile(re.escape(EVIL)))
    assert page.evaluate("window.__pwned") is None
    assert page.locator("img[src=x]").count() == 0

    # The run page: header, errors, timeline rows and hover, step list, panel, diff.
    page.goto(f"{server.origin}/projects/acme/runs/{RUN}/#step=0")
    page.locator("body[data-charts='true']").wait_for(timeout=30_000)
    expect(page.locator("h1")).to_contain_text(f"graph{EVIL}")
    expect(page.locator(".stats")).to_contain_text(f"thread{EVIL}")
    expect(page.locator("#errors li")).to_contain_text(f"Type{EVIL}")
    expect(page.locator("#errors li")).to_contain_text(f"#2 fail{EVIL}")
    expect(page.locator("#errors li")).to_contain_text(f"boom{EVIL}")
    expect(page.locator("#timeline .ytick text")).to_have_text(
        [f"fail{EVIL}", f"grow{EVIL}", f"plan{EVIL}"]
    )
    page.locator("#timeline g.point").first.hover(force=True)
    expect(page.locator("#timeline .hovertext")).to_contain_text(f"plan{EVIL}")
    expect(page.locator("#timeline .hovertext")).to_contain_text(f"tool{EVIL}")
    expect(page.locator("#steps td.node-name")).to_have_text(
        [f"plan{EVIL}", f"grow{EVIL}", f"fail{EVIL}"]
    )
    expect(page.locator("#step-title")).to_have_text(f"Step #0 · plan{EVIL}")
    expect(page.locator("#step-meta")).to_contain_text(f"tools: tool{EVIL}")
    expect(page.locator("#step-summary")).to_contain_text(f"key{EVIL}")
    key_path = f"/key{EVIL}".replace("~", "~0").replace("/", "~1").replace("~1key", "/key", 1)
    changed = page.locator("#step-diff tr").filter(has_text="new<img src=x")
    expect(changed.locator("code")).to_have_text(key_path)
    expect(changed.locator(".val.new")).to_have_text(json.dumps(f"new{EVIL}"))
    expect(changed.locator(".val.old")).to_have_text(json.dumps(f"old{EVIL}"))
    # The state tree names the added key as text, marked added.
    added = page.locator("#step-states .jt-added > .jt-row > .jt-key")
    expect(added.filter(has_text="added<img")).to_have_text(json.dumps(f"added{EVIL}"))
    # The breakdown and the graph label nodes as text too.
    expect(page.locator("#breakdown .ytick text")).to_have_count(3)
    expect(page.locator("#graph .annotation-text", has_text="\u00d71").first).to_contain_text(
        f"plan{EVIL}"
    )
    assert_nothing_injected(page)

    # Watching the evil key: the path, the values and the nodes are text.
    changed.get_by_role("button", name="watch").click()
    expect(page.locator("#watch-result")).to_contain_text(f"first written by #0 plan{EVIL}")
    expect(page.locator("#watch-changes li").first).to_contain_text(f"#0 plan{EVIL}")
    expect(page.locator("#watch-path")).to_have_value(key_path)

    # The failed step: its error message in the panel.
    page.locator("#errors li a").click()
    expect(page.locator("#step-error")).to_have_text(f"boom{EVIL}")
    assert_nothing_injected(page)

    # A reload from the link keeps the step and the evil path.
    page.reload()
    page.locator("body[data-ready='true']").wait_for(timeout=30_000)
    expect(page.locator("#step-title")).to_have_text(f"Step #2 · fail{EVIL}")
    expect(page.locator("#watch-path")).to_have_value(key_path)
    assert_nothing_injected(page)
    assert dialogs == []


def test_long_values_collapse_and_big_states_show_as_a_summary(
    server: Daphne, page: Page, api_key: str, member: Any
) -> None:
    server.request("POST", "/api/v1/traces", evil_trace(), {"Authorization": f"Bearer {api_key}"})
    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice-123")
    page.click("button[type=submit]")
    page.goto(f"{server.origin}/projects/acme/runs/{RUN}/#step=0")
    page.locator("body[data-ready='true']").wait_for(timeout=30_000)

    long = page.locator("#step-diff tr[data-path='/long']")
    expect(long.locator(".val.new")).to_have_text('"' + "y" * 238 + "…")
    long.get_by_role("button", name="show all 602 chars").click()
    expect(long.locator(".val.new")).to_have_text('"' + "y" * 600 + '"')
    long.get_by_role("button", name="collapse").click()
    expect(long.locator(".val.new")).to_have_text('"' + "y" * 238 + "…")

    # Step 1 wrote a state over the gate: a summary of it, and the download.
    page.keyboard.press("j")
    expect(page.locator("#step-title")).to_contain_text("Step #1")
    after = page.locator("#step-states")
    expect(after.locator(".too-large")).to_contain_text("too large to show here")
    expect(after.locator("table.state-summary tr").first).to_contain_text("blob")
    link = after.get_by_role("link", name="download the step as JSON")
    href = link.get_attribute("href")
    assert href is not None
    downloaded = page.evaluate(f"async () => (await fetch({href!r})).json()")
    assert downloaded["state_after"]["blob"] == "z" * (2 * STATE_GATE)
    # The diff is still there: the blob was added.
    expect(page.locator("#step-diff tr[data-path='/blob'] .op")).to_have_text("add")
