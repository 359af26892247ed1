"""Per-cycle files and sidecars through the real ingest path (ingest_submit + job_run, the
registered two-phase cycler handler) on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.urls import reverse

from cells.models import CycleRecord, CyclerSidecar, CyclingTest
from cells.selectors import voltage_curves
from lims.ingestion import services as ingest
from lims.models import IngestionJob, OutboxEvent, Project

BA_CYCLES = "cycler/batteryarchive/synthetic_BA_cell_a_cycle_data.csv"
ARBIN_CSV = "cycler/arbin/bdtk_arbin_example.csv"
ARBIN_META = "cycler/sidecars/beep_FastCharge_000025_CH8_Metadata.csv"
MPS = "cycler/sidecars/beep_biologic_mb_test_sample_mb_text.mps"
MPR = "cycler/biologic/navani_00_test_04_MB_C01.mpr"
MPR_GCPL = "cycler/biologic/bdf_GCPL-0.mpr"
MPR_OTHER = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
NOVONIX = "cycler/novonix/synthetic_novonix.csv"
NOVONIX_HEADER = "cycler/novonix/synthetic_novonix_header.csv"


def _ingest(fixtures: Path, project: Project, rel: str, capture, name: str, **params):
    with (fixtures / rel).open("rb") as fh, capture(execute=False):
        job, created = ingest.ingest_submit(
            stream=fh, filename=name, project=project, params=params
        )
    assert created
    done = ingest.job_run(job_id=job.pk)
    assert done is not None
    return done


@pytest.fixture
def other_project(db) -> Project:
    return Project.objects.create(name="Other group", slug="other")


@pytest.mark.django_db
def test_per_cycle_file_stores_cycles_and_a_record_without_a_series(
    fixture_path, project, cell, django_capture_on_commit_callbacks
):
    job = _ingest(
        fixture_path,
        project,
        BA_CYCLES,
        django_capture_on_commit_callbacks,
        "SNL_18650_LFP_a_cycle_data.csv",
        cell="C-001",
    )
    assert job.status == IngestionJob.Status.SUCCEEDED, job.error
    assert job.parser_name == "batteryarchive_cycles"
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    assert (test.series_path, test.row_count, test.vendor) == ("", 0, "batteryarchive")
    cycles = list(test.cycles.order_by("cycle_index"))
    assert [(c.cycle_index, c.cycle_in_file) for c in cycles] == [(1, 1), (2, 2), (3, 3)]
    assert [c.discharge_mah for c in cycles] == pytest.approx([990.0, 980.0, 970.0])
    assert cycles[0].duration_s == pytest.approx(10884.0)
    record = test.performance
    assert record.first_charge_mah == pytest.approx(1000.0)
    assert record.first_discharge_mah == pytest.approx(990.0)
    assert record.initial_ce == pytest.approx(0.99)
    assert record.retention_pct == pytest.approx(970 / 990 * 100)
    assert record.first_discharge_mah_g == pytest.approx(990.0 / 0.007)
    assert "stored as written" in record.conventions["capacity"]
    assert job.result["cycles"] == 3 and job.result["rows"] == 0
    # The voltage curves of a test without a series are empty, not an error.
    assert voltage_curves(test=test, cycle_indices=[1]) == {}


@pytest.mark.django_db
def test_sidecar_before_its_test_is_stored_then_attached(
    fixture_path, project, django_capture_on_commit_callbacks
):
    side_job = _ingest(
        fixture_path,
        project,
        ARBIN_META,
        django_capture_on_commit_callbacks,
        "FastCharge_000025_CH8_Metadata.csv",
    )
    assert side_job.status == IngestionJob.Status.SUCCEEDED, side_job.error
    assert side_job.parser_name == "arbin_metadata"
    assert side_job.result["attached_to_tests"] == []
    assert "attached when its data file arrives" in side_job.result["note"]
    assert not CyclingTest.objects.exists()  # a sidecar is never a cycling test
    sidecar = CyclerSidecar.objects.get(raw_file=side_job.raw_file)
    assert (sidecar.kind, sidecar.key) == ("arbin_metadata", "fastcharge_000025_ch8")

    job = _ingest(
        fixture_path,
        project,
        ARBIN_CSV,
        django_capture_on_commit_callbacks,
        "FastCharge_000025_CH8.csv",
    )
    assert job.status == IngestionJob.Status.NEEDS_LINKING, job.error
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    assert list(test.sidecars.all()) == [sidecar]
    shown = test.metadata["sidecars"]
    assert [s["kind"] for s in shown] == ["arbin_metadata"]
    assert shown[0]["file"] == "FastCharge_000025_CH8_Metadata.csv"
    assert shown[0]["content"]["fields"]["test_id"] == "153"
    assert shown[0]["sha256"] == side_job.raw_file.sha256
    # A re-run rewrites the test's metadata from the file: the sidecar stays shown.
    again = ingest.job_run(job_id=ingest.job_rerun(job=job).pk)
    assert again is not None and again.status == IngestionJob.Status.NEEDS_LINKING
    test.refresh_from_db()
    assert [s["sidecar"] for s in test.metadata["sidecars"]] == [sidecar.pk]


@pytest.mark.django_db
def test_settings_file_after_its_tests_attaches_to_every_channel_file(
    fixture_path, project, other_project, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    c01 = _ingest(fixture_path, project, MPR, capture, "run7_C01.mpr")
    c03 = _ingest(fixture_path, project, MPR_GCPL, capture, "run7_02_GCPL_C03.mpr")
    # Same name in another project, and a name that only looks alike: neither is attached.
    foreign = _ingest(fixture_path, other_project, MPR_OTHER, capture, "run7_C02.mpr")
    assert foreign.status == IngestionJob.Status.NEEDS_LINKING
    lookalike = _ingest(fixture_path, project, ARBIN_CSV, capture, "run70_C01.csv")
    side_job = _ingest(fixture_path, project, MPS, capture, "run7.mps")
    assert side_job.status == IngestionJob.Status.SUCCEEDED, side_job.error
    assert side_job.parser_name == "biologic_mps"
    tests = {j.result["cycling_test"] for j in (c01, c03)}
    assert set(side_job.result["attached_to_tests"]) == tests
    test = CyclingTest.objects.get(pk=c01.result["cycling_test"])
    settings = test.metadata["sidecars"][0]["content"]
    assert settings["techniques"][0]["name"] == "Modulo Bat"
    for job in (foreign, lookalike):
        other = CyclingTest.objects.get(pk=job.result["cycling_test"])
        assert "sidecars" not in other.metadata and not other.sidecars.exists()
    assert OutboxEvent.objects.filter(topic="cells.sidecar.stored").count() == 1


@pytest.mark.django_db
def test_novonix_header_only_file_joins_the_data_file_it_names(
    fixture_path, project, cell, user, client, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    data_job = _ingest(
        fixture_path, project, NOVONIX, capture, "synthetic_novonix.csv", cell="C-001"
    )
    assert data_job.status == IngestionJob.Status.SUCCEEDED, data_job.error
    test = CyclingTest.objects.get(pk=data_job.result["cycling_test"])
    assert test.performance.first_discharge_mah == pytest.approx(990.0)
    assert CycleRecord.objects.filter(test=test).count() == 3
    side_job = _ingest(fixture_path, project, NOVONIX_HEADER, capture, "run summary.csv")
    assert side_job.parser_name == "novonix_header"
    assert side_job.result["attached_to_tests"] == [test.pk]  # by the Cell: field it carries
    test.refresh_from_db()
    assert test.metadata["sidecars"][0]["content"]["summary"]["Serial Number"] == "SYN-0002"
    client.force_login(user)
    page = client.get(reverse("cells:cell-detail", args=["C-001"]))
    assert page.status_code == 200
    assert b"Sidecar files (1)" in page.content and b"SYN-0002" in page.content
