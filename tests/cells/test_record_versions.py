"""A recompute adds a version of the performance record with its reason; the page shows them."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from cells import services
from cells.models import CyclingTest, PerformanceRecordVersion
from lims.ingestion import services as ingestion
from lims.models import IngestionJob

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


@pytest.fixture
def ingested(instrument_client, cell, fixture_path, django_capture_on_commit_callbacks):
    upload = io.BytesIO((fixture_path / MPR).read_bytes())
    upload.name = "C09.mpr"
    with django_capture_on_commit_callbacks(execute=False):
        response = instrument_client.post(
            "/api/v1/ingest/", {"file": upload, "cell": cell.code}, format="multipart"
        )
    job = ingestion.job_run(job_id=IngestionJob.objects.get(pk=response.json()["job"]["id"]).pk)
    assert job is not None and job.status == "succeeded", job.error
    return CyclingTest.objects.get(cell=cell)


@pytest.mark.django_db
def test_recompute_adds_a_version_with_its_reason_and_what_changed(ingested, cell):
    first = PerformanceRecordVersion.objects.get(test=ingested)
    assert (first.version, first.reason, first.changed) == (1, "ingested", {})
    assert first.values["raw_sha256"] == ingested.raw_file.sha256
    old_per_g = ingested.performance.first_discharge_mah_g

    services.cell_update(cell=cell, cathode_mass_mg=Decimal("20"))
    services.cell_records_recompute(cell_id=cell.pk, reason="cathode re-weighed: 20 mg")
    services.cell_records_recompute(cell_id=cell.pk, reason="checked again")

    versions = list(PerformanceRecordVersion.objects.filter(test=ingested).order_by("version"))
    assert [v.version for v in versions] == [1, 2, 3]
    second = versions[1]
    assert second.reason == "cathode re-weighed: 20 mg"
    assert second.changed["active_mass_mg"] == [7.0, 14.0]
    old, new = second.changed["first_discharge_mah_g"]
    assert old == pytest.approx(old_per_g) and new == pytest.approx(old_per_g / 2)
    assert versions[2].changed == {}  # recomputed, nothing moved
    # the record itself is the newest version
    ingested.performance.refresh_from_db()
    assert ingested.performance.reason == "checked again"
    assert versions[0].values["first_discharge_mah_g"] == pytest.approx(old_per_g)


@pytest.mark.django_db
def test_the_cell_page_shows_the_history(ingested, cell, user, client):
    services.cell_update(cell=cell, cathode_mass_mg=Decimal("20"))
    services.cell_records_recompute(cell_id=cell.pk, reason="cathode re-weighed: 20 mg")
    client.force_login(user)
    page = client.get(cell.get_absolute_url()).content.decode()
    history = page[page.index(f'id="history-{ingested.pk}"') :]
    history = history[: history.index("</details>")]
    assert "Record history (2 versions)" in history
    assert "cathode re-weighed: 20 mg" in history and "first computation" in history
    assert "<code>active_mass_mg</code> 7.0 &rarr; 14.0" in history
