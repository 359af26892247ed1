"""Impedance spectra through the one ingestion path: HTTP -> broker -> real worker -> rows."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from cells.models import CyclingTest, EisSpectrum
from lims.ingestion import storage
from lims.models import IngestionJob, RawFile
from tests.conftest import api_finished_job, api_upload

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

EIS = Path(__file__).resolve().parents[1] / "fixtures" / "eis"
# points, f_min, f_max, parser, technique: counted from each file's rows (tests/fixtures/SOURCES.md)
FIXTURES = {
    "impedance_exampleDataBioLogic.mpt": (43, 0.01689554, 1000.3201, "biologic_mpt_eis", "PEIS"),
    "impedance_exampleDataGamry.DTA": (72, 0.0158898, 200015.6, "gamry_dta_eis", "PEIS"),
    "impedance_exampleData.csv": (66, 0.0031623, 10000.0, "impedance_table", ""),
}


def test_every_impedance_fixture_ingests_through_the_worker(
    celery_worker_process, live_server, instrument_token, cell, user
):
    """With kind=eis and without (detected from content, under a neutral name)."""
    jobs = {}
    for index, name in enumerate(sorted(FIXTURES)):
        content = (EIS / name).read_bytes()
        kind = {"kind": "eis"} if index % 2 == 0 else {}
        upload_name = name if index % 2 == 0 else "upload.bin"
        response = api_upload(
            live_server.url,
            instrument_token.key,
            upload_name,
            content,
            cell="C-001",
            temperature_c="25.5",
            **kind,
        )
        assert response.status_code == 202, response.text
        jobs[name] = response.json()["job"]["id"]
    for name, job_id in jobs.items():
        points, f_min, f_max, parser, technique = FIXTURES[name]
        job = api_finished_job(live_server.url, instrument_token.key, job_id)
        assert job["status"] == "succeeded", (name, job["error"])
        assert job["kind"] == "eis" and job["parser_name"] == parser
        assert job["result"]["points"] == points
        sha = hashlib.sha256((EIS / name).read_bytes()).hexdigest()
        spectrum = EisSpectrum.objects.get(raw_file__sha256=sha)
        assert spectrum.cell == cell and spectrum.sample is None
        assert spectrum.points == points and spectrum.technique == technique
        assert spectrum.f_min_hz == pytest.approx(f_min)
        assert spectrum.f_max_hz == pytest.approx(f_max)
        assert spectrum.temperature_c == pytest.approx(25.5)
        assert spectrum.temperature_source == "upload field temperature_c"
        series = pl.read_parquet(storage.absolute(spectrum.series_path))
        assert series.height == points
        assert set(series.columns) >= {"f_hz", "z_real_ohm", "z_imag_ohm", "z_mod_ohm", "phase_deg"}
        assert "Z'' negative for capacitive" in spectrum.conventions["sign"]
        assert spectrum.hf_intercept  # the value or the reason there is none
        assert (spectrum.hf_intercept_ohm is None) == ("none_reason" in spectrum.hf_intercept)
    assert not CyclingTest.objects.exists()  # a spectrum is never a cycling test


def test_kind_cycler_refuses_a_spectrum_and_unlinked_spectra_wait(
    celery_worker_process, live_server, instrument_token, project
):
    content = (EIS / "impedance_exampleDataBioLogic.mpt").read_bytes()
    response = api_upload(live_server.url, instrument_token.key, "eis.mpt", content, kind="cycler")
    job = api_finished_job(live_server.url, instrument_token.key, response.json()["job"]["id"])
    assert job["status"] == "failed"
    assert job["error"].startswith("eis.mpt")
    assert not CyclingTest.objects.exists()

    other = (EIS / "impedance_exampleDataGamry.DTA").read_bytes()
    response = api_upload(live_server.url, instrument_token.key, "g.DTA", other, sample="nope")
    job = api_finished_job(live_server.url, instrument_token.key, response.json()["job"]["id"])
    assert job["status"] == "needs_linking", job["error"]
    assert "sample 'nope' not found" in job["result"]["note"]


def test_a_bad_spectrum_fails_with_file_place_and_cause_and_keeps_the_raw_file(
    celery_worker_process, live_server, instrument_token, cell
):
    lines = (EIS / "impedance_exampleDataGamry.DTA").read_text("latin-1").split("\n")
    start = next(i for i, s in enumerate(lines) if s.startswith("ZCURVE"))
    fields = lines[start + 10].split("\t")
    fields[4] = "1.2.3"  # Zreal of the 7th point
    lines[start + 10] = "\t".join(fields)
    content = "\n".join(lines).encode("latin-1")
    response = api_upload(live_server.url, instrument_token.key, "bad.DTA", content, kind="eis")
    assert response.status_code == 202, response.text
    job = api_finished_job(live_server.url, instrument_token.key, response.json()["job"]["id"])
    assert job["status"] == "failed"
    assert job["error"] == (
        f"bad.DTA at line {start + 11}: '1.2.3' in column 'Zreal' is not a number"
    )
    raw = RawFile.objects.get(sha256=hashlib.sha256(content).hexdigest())
    assert storage.absolute(raw.storage_path).read_bytes() == content
    assert not EisSpectrum.objects.exists()
    assert IngestionJob.objects.get(pk=job["id"]).raw_file == raw
