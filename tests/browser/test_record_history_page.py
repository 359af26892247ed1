"""A person opens a test's record history on the cell page and reads why each number changed."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.conftest import FIXTURES

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MPR = FIXTURES / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def test_record_history_lists_versions_with_reasons(
    signed_in, cell, project, tmp_path, django_capture_on_commit_callbacks
):
    from cells import services
    from cells.models import Cell
    from lims.ingestion import services as ingest

    with django_capture_on_commit_callbacks(execute=False), MPR.open("rb") as fh:
        job, _ = ingest.ingest_submit(
            stream=fh, filename=MPR.name, project=project, params={"cell": cell.code}
        )
        job = ingest.job_run(job_id=job.pk)
        assert job is not None and job.status == "succeeded", job.error
        # the mass changed without the service's event: a worker left running by an earlier
        # test would otherwise recompute too, and this test makes the one recompute itself
        Cell.objects.filter(pk=cell.pk).update(cathode_mass_mg=Decimal("20"))
        services.cell_records_recompute(cell_id=cell.pk, reason="cathode re-weighed: 20 mg")
    test_id = job.result["cycling_test"]
    page = signed_in(f"/cells/{cell.code}/")
    history = page.locator(f"#history-{test_id}")
    history.locator("summary").click()
    rows = history.locator("tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(2).inner_text() == "cathode re-weighed: 20 mg"
    assert "active_mass_mg 7.0 → 14.0" in rows.nth(0).inner_text()
    assert rows.nth(1).locator("td").nth(3).inner_text() == "first computation"
    history.scroll_into_view_if_needed()
    history.screenshot(path=str(tmp_path / "record-history.png"))
    print(tmp_path / "record-history.png")
