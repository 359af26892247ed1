"""A person opens a run after its tool log was ingested: the trace and the check table are there."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for
from tests.depositions_logs.test_ald_ingest import LABVIEW, _ingest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_run_page_shows_the_pressure_trace_and_checks(
    signed_in, fixture_path, project, labview_run, django_capture_on_commit_callbacks
):
    from playwright.sync_api import expect

    job = _ingest(
        fixture_path,
        project,
        f"{LABVIEW}_DataLog.txt",
        django_capture_on_commit_callbacks,
        run="LV-RUN1",
    )
    assert job.status == "succeeded", job.error
    page = signed_in("/depositions/runs/LV-RUN1/")
    expect(page.locator("h1")).to_contain_text("Run LV-RUN1")
    expect(page.locator("#trace .main-svg").first).to_be_visible()
    expect(page.locator("#pulses")).to_contain_text("TMA")
    expect(page.locator("#pulses")).to_contain_text("80")
    rows = page.locator("#checks tbody tr")
    assert rows.count() >= 3
    from depositions.aldlogs.checks import CHECKER_VERSION

    expect(page.locator("#checks")).to_contain_text(CHECKER_VERSION)
    page.screenshot(path="/tmp/run_page.png", full_page=True)


@pytest.mark.integration
def test_a_person_uploads_a_runs_logs_and_tunes_the_tools_thresholds(
    celery_worker_process, live_server, signed_in, fixture_path, labview_run
):
    """Through the pages with a real worker: upload the four files of a LabVIEW run at once,
    read the verdict, loosen the purge tolerance on the tool, and see the run checked again."""
    from playwright.sync_api import expect

    from depositions.models import RunCheck

    folder = fixture_path / "ald/labview_qcm_run"
    files = sorted(str(p) for p in folder.glob("*.txt"))
    assert len(files) == 4
    page = signed_in("/depositions/runs/LV-RUN1/")
    expect(page.locator("#log-files")).to_contain_text("No tool log yet")
    page.set_input_files("#log-upload-form input[type=file]", files)
    page.click("#log-upload-form button[type=submit]")
    expect(page.locator(".messages, main")).to_contain_text("DataLog.txt: queued")

    def settled() -> bool:
        page.reload()
        statuses = page.locator("#log-files tbody .status").all_inner_texts()
        return len(statuses) == 4 and set(statuses) == {"Succeeded"}

    wait_for(settled, timeout=90, interval=1.0)
    expect(page.locator("#trace .main-svg").first).to_be_visible()
    expect(page.locator("#checks")).to_contain_text("temperature_setpoint:Furnace Temp")
    purge = page.locator("#checks tr", has_text="purge_length:TMA")
    expect(purge).to_contain_text("fail")  # 20 s purges logged, 30 s planned
    page.screenshot(path="/tmp/run_page_uploaded.png", full_page=True)

    page.click("#recheck-form a")  # "edit" thresholds of the run's tool
    expect(page.locator("h1")).to_contain_text("Check thresholds")
    page.fill("#id_purge_tolerance_s", "10.5")
    page.check("#id_recheck")
    page.click("#thresholds-form button[type=submit]")
    expect(page.locator("#thresholds")).to_contain_text("purge_tolerance_s = 10.5")
    page.screenshot(path="/tmp/tool_page_thresholds.png", full_page=True)

    def rechecked() -> bool:
        return RunCheck.objects.filter(name="purge_length:TMA", status="pass").exists()

    wait_for(rechecked, timeout=90, interval=0.5)
    page.goto(f"{live_server.url}/depositions/runs/LV-RUN1/")
    expect(page.locator("#checks tr", has_text="purge_length:TMA")).to_contain_text("pass")
