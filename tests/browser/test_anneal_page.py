"""A person uploads a furnace log on the anneal page; a real worker checks it; the verdict shows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import wait_for
from tests.depositions.factories import furnace_csv

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.mark.integration
def test_a_person_uploads_a_furnace_log_and_reads_its_verdict(
    celery_worker_process, live_server, signed_in, project, tmp_path
):
    from playwright.sync_api import expect

    from depositions import services as dep
    from depositions.inputs import SegmentInput

    dep.post_treatment_create(
        project=project,
        code="AN-BROWSER",
        atmosphere="o2",
        segments=[
            SegmentInput("ramp", Decimal("600"), rate_k_per_min=Decimal("5")),
            SegmentInput("dwell", Decimal("600"), duration_min=Decimal("120")),
        ],
    )
    log = tmp_path / "nabertherm.csv"
    log.write_bytes(furnace_csv(hold_s=5400))  # 90 min held of 120 planned
    page = signed_in("/depositions/anneals/AN-BROWSER/")
    expect(page.locator("#furnace-logs")).to_contain_text("No furnace log checked yet")
    page.set_input_files("#furnace-upload-form input[type=file]", str(log))
    page.click("#furnace-upload-form button[type=submit]")
    expect(page.locator("main")).to_contain_text("nabertherm.csv: queued")

    def checked() -> bool:
        page.reload()
        return page.locator("#furnace-logs tbody .status").count() == 1

    wait_for(checked, timeout=90, interval=1.0)
    row = page.locator("#furnace-logs tbody tr").first
    expect(row).to_contain_text("nabertherm.csv")
    expect(row.locator(".status")).to_have_text("Fail")
    expect(page.locator(".furnace-checks")).to_contain_text("held 5520 s of 7200 s planned")
    expect(page.locator("#furnace-recheck-form")).to_be_visible()
    page.screenshot(path="/tmp/anneal_page.png", full_page=True)
