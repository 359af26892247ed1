"""The Python client (lims.client) against a live server and a real worker."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cells.models import CyclingTest
from lims.client import JobFailed, LimsClient
from lims.ingestion import storage

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def test_client_uploads_waits_lists_cells_with_metrics_and_reads_the_series(
    celery_worker_process, live_server, instrument_token, cell, user, fixture_path, tmp_path
):
    from rest_framework.authtoken.models import Token

    source = tmp_path / "C09.mpr"
    source.write_bytes((fixture_path / MPR).read_bytes())
    instrument = LimsClient(live_server.url, instrument_token.key)
    up = instrument.upload(source, cell="C-001")
    assert up.created and up.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    job = instrument.wait_for_job(up.job_id, timeout=90, poll_s=0.2)
    assert job.status == "succeeded" and job.parser.startswith("biologic_mpr ")
    again = instrument.upload(source, cell="C-001")  # the same bytes: the first job
    assert (again.created, again.job_id) == (False, up.job_id)

    person = LimsClient(live_server.url, Token.objects.create(user=user).key)
    cells = person.cells()
    test = CyclingTest.objects.select_related("performance", "raw_file").get(
        pk=job.result["cycling_test"]
    )
    row = cells.filter(pl.col("cell") == "C-001").row(0, named=True)
    assert row["test"] == test.pk and row["raw_sha256"] == test.raw_file.sha256
    assert row["first_discharge_mah_g"] == pytest.approx(test.performance.first_discharge_mah_g)
    assert row["cycles"] == 7

    table, sources = person.explorer("cell:eq:C-001")
    assert table["cell"].to_list() == ["C-001"]
    assert table["cycles"].item() == 7 and "C09.mpr" in sources["cycles"].item()

    series = person.series(test.pk)
    assert_frame_equal(series, pl.read_parquet(storage.absolute(test.series_path)))
    provenance = person.series_provenance(test.pk)
    assert provenance["raw_sha256"] == test.raw_file.sha256
    assert provenance["parser"] == "biologic_mpr"

    saved = person.download_raw(test.raw_file_id, tmp_path / "back.mpr")
    assert saved.read_bytes() == source.read_bytes()


def test_client_reports_a_failed_job_with_its_reason(
    celery_worker_process, live_server, instrument_token, tmp_path
):
    junk = tmp_path / "notes.bin"
    junk.write_bytes(b"\x00\x01 not an instrument file " * 20)
    client = LimsClient(live_server.url, instrument_token.key)
    up = client.upload(junk)
    with pytest.raises(JobFailed, match=r"notes\.bin") as failed:
        client.wait_for_job(up.job_id, timeout=90, poll_s=0.2)
    assert failed.value.job.status == "failed"
