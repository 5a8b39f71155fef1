"""The exports page in a real browser against a real Daphne: a member starts an export,
watches its progress bar fill over the websocket and downloads the file; a viewer sees
and downloads exports but has no form and no buttons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from playwright.sync_api import Dialog, Page, expect

from tests.servers import Daphne, daphne, database_url, server_env
from tests.traces.exports_support import expected_file, store_copies
from traces.models import Export, ExportStatus, Membership, Project, Role, StepVerdict

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = Path(__file__).resolve().parent.parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def server(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    env = server_env(
        database_url(connection.settings_dict),
        EXPORT_DIR=str(tmp_path_factory.mktemp("exports")),
        EXPORT_RUN_DELAY_MS="80",
        EXPORT_PROGRESS_EVERY="1",
    )
    with daphne(env) as live:
        yield live


def sign_in(page: Page, server: Daphne, name: str, password: str) -> None:
    page.goto(f"{server.origin}/login/")
    page.fill("#id_username", name)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Projects")


def test_start_an_export_watch_the_bar_fill_and_download_it(
    server: Daphne, page: Page, project: Project, member: Any, fixtures_dir: Path, tmp_path: Path
) -> None:
    runs = store_copies(project, fixtures_dir, "research_agent_success", 20)
    StepVerdict.objects.create(run=runs[3], step_position=1, verdict="bad")
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/exports/")
    expect(page.locator("#live-indicator")).to_be_visible()
    expect(page.locator("#no-exports")).to_be_visible()

    # A bad value comes back naming its field, which the form marks.
    page.fill('input[name="started_after"]', "last tuesday")
    page.click("#start-export")
    expect(page.locator("#form-error")).to_contain_text("filters.started_after")
    expect(page.locator('label[data-field="started_after"]')).to_have_class("invalid")
    page.fill('input[name="started_after"]', "")

    page.check('input[name="format"][value="csv"]')
    page.select_option('select[name="status"]', "completed")
    page.click("#start-export")
    row = page.locator("#export-rows tr").first
    expect(row.locator(".badge")).to_have_text("Running", timeout=15000)
    expect(row.locator(".progress")).not_to_have_attribute("aria-valuenow", "0")
    expect(row.locator(".badge")).to_have_text("Done", timeout=30000)
    expect(row.locator(".progress")).to_have_attribute("aria-valuenow", "100")
    expect(row.locator(".progress-label")).to_have_text("100%")
    expect(row.locator('[data-col="runs"]')).to_have_text("20 / 20")
    expected, rows = expected_file("csv", runs)
    expect(row.locator('[data-col="rows"]')).to_have_text(f"{rows:,}")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "exports-page.png"), full_page=True)

    with page.expect_download() as info:
        row.locator("a.download").click()
    download = info.value
    assert download.suggested_filename.startswith("acme-csv-")
    target = tmp_path / "export.csv"
    download.save_as(target)
    assert target.read_bytes() == expected

    # Delete asks first: dismissed, the export stays; accepted, it goes.
    asked: list[str] = []

    def answer(dialog: Dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda dialog: answer(dialog, False))
    row.locator("button.delete").click()
    expect(page.locator("#export-rows tr")).to_have_count(1)
    page.once("dialog", lambda dialog: answer(dialog, True))
    row.locator("button.delete").click()
    expect(page.locator("#export-rows tr")).to_have_count(0)
    assert not Export.objects.exists()
    assert len(asked) == 2
    assert asked[0].startswith("Delete the export acme-csv-")


def test_a_viewer_sees_and_downloads_but_cannot_start_or_delete(
    server: Daphne, page: Page, project: Project, fixtures_dir: Path
) -> None:
    viewer = get_user_model().objects.create_user("victor", password="pw-victor-123")
    Membership.objects.create(project=project, user=viewer, role=Role.VIEWER)
    Export.objects.create(project=project, format="csv", status=ExportStatus.QUEUED)
    sign_in(page, server, "victor", "pw-victor-123")
    page.goto(f"{server.origin}/projects/acme/exports/")
    expect(page.locator("#export-rows tr")).to_have_count(1)
    expect(page.locator("#export-form")).to_have_count(0)
    expect(page.locator("#export-rows button")).to_have_count(0)


def test_export_these_runs_carries_the_run_lists_filters_into_the_form(
    server: Daphne, page: Page, project: Project, member: Any
) -> None:
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/runs/?status=failed&node=retriever&verdict=good")
    page.click("text=Export these runs")
    expect(page.locator("h1")).to_contain_text("exports")
    expect(page.locator('select[name="status"]')).to_have_value("failed")
    expect(page.locator('input[name="node"]')).to_have_value("retriever")
    expect(page.locator('select[name="verdict"]')).to_have_value("good")
    # Every field is labelled in words, and the graph is asked once.
    labels = page.locator("#export-form label[data-field] > span:first-child").all_inner_texts()
    assert "Q" not in labels
    assert "Last" not in labels
    assert {"Search", "Started in the last", "Graph"} <= set(labels)
    expect(page.locator('#export-form [name="graph_name"]')).to_have_count(1)
    expect(page.locator('#export-form [name="graph"]')).to_have_count(0)


def test_an_export_that_matched_nothing_offers_no_empty_download(
    server: Daphne, page: Page, project: Project, member: Any
) -> None:
    sign_in(page, server, "alice", "pw-alice-123")
    page.goto(f"{server.origin}/projects/acme/exports/?format=csv&node=nowhere")
    page.click("#start-export")
    row = page.locator("#export-rows tr").first
    expect(row.locator(".progress-label")).to_have_text("100%")
    expect(row.locator(".nothing-matched")).to_have_text("Nothing matched")
    expect(row.locator("a.download")).to_have_count(0)
