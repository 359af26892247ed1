"""A person's path through the pages in headless Chromium: log in, upload, watch, read the cell."""

from __future__ import annotations

import os

import pytest

from tests.conftest import FIXTURES

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MPR = FIXTURES / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def test_upload_in_the_browser_and_read_the_cell_page(
    celery_worker_process, live_server, user, cell, tmp_path, monkeypatch
):
    from playwright.sync_api import expect, sync_playwright

    # Playwright's sync API keeps an event loop in this thread; the live server's ORM calls
    # happen in its own thread, and this test touches the ORM only before the browser starts.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    assert os.path.exists(CHROMIUM), "Debian chromium is installed by scripts/test.sh"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(f"{live_server.url}/cells/")
        page.fill("#id_username", "alice")
        page.fill("#id_password", "pw-alice-123")
        page.click("main button[type=submit]")
        expect(page.locator("table#cells")).to_contain_text("C-001")

        page.goto(f"{live_server.url}/upload/")
        page.set_input_files("#id_file", str(MPR))
        page.fill("#id_cell", "C-001")
        page.click("main button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Job #")
        # the page polls the job and reloads when it is done
        expect(page.locator("#job-status")).to_have_text("succeeded", timeout=60_000)
        page.click("#cell-link")

        expect(page.locator("h1")).to_contain_text("Cell C-001")
        expect(page.locator("table.perf")).to_contain_text("0.20653 mAh")
        expect(page.locator(".provenance")).to_contain_text("biologic_mpr")
        # Plotly (served from our static files) drew both plots
        expect(page.locator("div.plot .main-svg").first).to_be_visible()
        assert page.locator("div.plot .main-svg").count() >= 2
        page.screenshot(path=str(tmp_path / "cell.png"), full_page=True)
        browser.close()
