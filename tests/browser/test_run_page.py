"""A person opens a run after its tool log was ingested: the trace and the check table are there."""

from __future__ import annotations

import pytest

from tests.browser.test_upload_flow import ARGS, CHROMIUM
from tests.depositions_logs.test_ald_ingest import LABVIEW, _ingest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_run_page_shows_the_pressure_trace_and_checks(
    live_server,
    user,
    fixture_path,
    project,
    labview_run,
    django_capture_on_commit_callbacks,
    monkeypatch,
):
    from playwright.sync_api import expect, sync_playwright

    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    assert job.status == "succeeded", job.error
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{live_server.url}/depositions/runs/LV-RUN1/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "pw-alice-123")
        page.click("main button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Run LV-RUN1")
        expect(page.locator("#trace .main-svg").first).to_be_visible()
        expect(page.locator("#pulses")).to_contain_text("TMA")
        expect(page.locator("#pulses")).to_contain_text("80")
        rows = page.locator("#checks tbody tr")
        assert rows.count() >= 3
        expect(page.locator("#checks")).to_contain_text("1.0.0")
        page.screenshot(path="/tmp/run_page.png", full_page=True)
        browser.close()
