"""The cell page draws dQ/dV and dV/dQ for a cell whose test the worker ingested."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURES, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MPR = FIXTURES / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def test_cell_page_shows_the_dqdv_plot(celery_worker_process, signed_in, cell, project):
    from playwright.sync_api import expect

    from lims.ingestion import services as ingest
    from lims.models import IngestionJob

    with MPR.open("rb") as fh:
        job, _ = ingest.ingest_submit(
            stream=fh, filename=MPR.name, project=project, params={"cell": cell.code}
        )
    done = wait_for(
        lambda: IngestionJob.objects.filter(pk=job.pk, status="succeeded").first(), timeout=90
    )
    test_id = done.result["cycling_test"]
    page = signed_in(f"/cells/{cell.code}/?cycles=2,3")
    expect(page.locator(f"#dqdv-{test_id} .main-svg").first).to_be_visible(timeout=20_000)
    expect(page.locator(f"#dvdq-{test_id} .main-svg").first).to_be_visible()
    # four curves: cycles 2 and 3, charge and discharge
    assert page.locator(f"#dqdv-{test_id} .scatterlayer .trace").count() == 4
    expect(page.locator("table.dqdv-peaks")).to_contain_text("charge")
    expect(page.locator(f"#rate-section-{test_id}")).to_contain_text("Rate capability")
