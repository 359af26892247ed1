"""A person downloads a test's BDF CSV and the cell's .eln from the cell page."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MPR = FIXTURES / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def test_cell_page_downloads_bdf_raw_and_eln(
    celery_worker_process, signed_in, cell, project, tmp_path
):
    from lims.eln import eln_read
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
    page = signed_in(f"/cells/{cell.code}/")
    links = page.locator(f"#downloads-{test_id}")

    with page.expect_download() as bdf:
        links.get_by_text("series BDF CSV").click()
    saved = Path(bdf.value.path())
    assert bdf.value.suggested_filename.endswith(".bdf.csv")
    assert saved.read_bytes().startswith(b"Test Time / s,Voltage / V,Current / A,")

    with page.expect_download() as raw:
        links.get_by_text("raw file").click()
    body = Path(raw.value.path()).read_bytes()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(MPR.read_bytes()).hexdigest()

    with page.expect_download() as eln:
        page.click("#cell-eln")
    target = tmp_path / eln.value.suggested_filename
    eln.value.save_as(target)
    assert target.name == f"cell-{cell.code}.eln"
    assert eln_read(target).folder == f"cell-{cell.code}"
