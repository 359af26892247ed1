"""A person's path through the pages in headless Chromium: log in, upload, watch, read the cell."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MPR = FIXTURES / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def test_upload_in_the_browser_and_read_the_cell_page(
    celery_worker_process, live_server, signed_in, cell, tmp_path
):
    from playwright.sync_api import expect

    page = signed_in("/cells/")
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
