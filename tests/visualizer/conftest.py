"""A real browser: Playwright driving Debian's Chromium (Playwright cannot download its own
here). A failing browser test leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    expect,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")

# The tests wait on conditions, with deadlines for a loaded machine (the suite runs beside
# other work, and CI on 2 cores): an assertion on the page retries for up to 20 s, not 5.
expect.set_options(timeout=20_000)

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests
# make around it are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


# Module scope, not session: while Playwright runs, its event loop occupies the main
# thread and async_to_sync (used by the websocket tests) refuses to run there.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: `apt-get install chromium`"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


# Every document of a watched context records what the Content-Security-Policy blocked.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const seen = `${e.violatedDirective} blocked ${e.blockedURI || "inline"} ` +
    `at ${e.sourceFile}:${e.lineNumber} on ${document.location.pathname}: ${e.sample}`;
  window.__cspViolations.push(seen);
  if (window.__reportCspViolation) window.__reportCspViolation(seen);
});
"""


class CspWatch:
    """What the CSP blocked in the watched browser contexts: ``securitypolicyviolation``
    events (reported through a binding as they happen, so a navigation loses none, and
    read from ``window.__cspViolations`` of the open pages at the end) and console errors
    that mention the Content Security Policy."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.contexts: list[BrowserContext] = []

    def watch(self, context: BrowserContext) -> BrowserContext:
        context.expose_binding(
            "__reportCspViolation", lambda _source, seen: self.violations.append(seen)
        )
        context.add_init_script(CSP_LISTENER)
        context.on("console", self._console)
        self.contexts.append(context)
        return context

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.violations.append(f"console {message.type}: {message.text}")

    def collect(self) -> list[str]:
        for context in self.contexts:
            for open_page in context.pages:
                if open_page.is_closed():
                    continue
                try:
                    seen = open_page.evaluate("window.__cspViolations || []")
                except PlaywrightError:
                    continue  # a page mid-navigation: its violations were reported already
                self.violations.extend(v for v in seen if v not in self.violations)
        return self.violations

    def take(self) -> list[str]:
        """What was blocked so far, forgotten (for a test that provokes it on purpose)."""
        taken = list(self.collect())
        self.violations.clear()
        for context in self.contexts:
            for open_page in context.pages:
                if not open_page.is_closed():
                    open_page.evaluate("window.__cspViolations = []")
        return taken


@pytest.fixture
def csp_watch() -> Iterator[CspWatch]:
    """Fails the test if the Content-Security-Policy blocked anything on a page it opened.
    The ``page`` fixture is watched; a test that opens a context of its own passes it to
    ``csp_watch.watch``."""
    watch = CspWatch()
    yield watch
    violations = watch.collect()
    assert not violations, "the Content-Security-Policy blocked:\n" + "\n".join(violations)


@pytest.fixture
def page(browser: Browser, csp_watch: CspWatch, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = csp_watch.watch(browser.new_context(viewport={"width": 1360, "height": 900}))
    page = context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    csp_watch.collect()
    context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def alice(member: Any) -> Client:
    """Alice, a member of ``acme`` only, signed in."""
    client = Client()
    assert client.login(username="alice", password="pw-alice-123")
    return client


def page_data(html: str, element_id: str) -> Any:
    """The JSON a page hands its script in ``<script id=element_id>``."""
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert found, f"no #{element_id} in the page"
    return json.loads(found.group(1))
