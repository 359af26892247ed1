"""Files that lack a quantity, through the real pipeline: job -> parser -> cycling_test_ingest.

Every way a cycle could come out without a number (no cycle column, a cycle column empty in
every row, cycle numbers beyond 32 bits, only blank data lines), no current at all, only
rests, no capacity column: each ends as a stored test with the numbers said in the
conventions, or as a failed job whose message names the cause. Never a database error.
Runs on PostgreSQL with the ingestion worker's code in-process.
"""

from __future__ import annotations

import io

import pytest

from cells.models import CycleRecord, CyclingTest
from lims import services as lims_services
from lims.ingestion import services as ingest

MB0 = "cycler/biologic/bdf_MB-0.mpr"
BDF = "cycler/bdf/bdf_sample.bdf.csv"
ARBIN_CSV = "cycler/arbin/bdtk_arbin_example.csv"


def run(project, capture, content: bytes, filename: str, **params):
    with capture(execute=False):
        job, created = ingest.ingest_submit(
            stream=io.BytesIO(content), filename=filename, project=project, params=params
        )
    assert created
    done = ingest.job_run(job_id=job.pk)
    assert done is not None
    return done


def cycles_of(job) -> list[CycleRecord]:
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    return list(test.cycles.order_by("cycle_index"))


@pytest.mark.django_db
def test_mpr_without_current_is_a_voltage_only_test(
    fixture_path, project, cell, django_capture_on_commit_callbacks
):
    content = (fixture_path / MB0).read_bytes()
    job = run(project, django_capture_on_commit_callbacks, content, "MB-0.mpr", cell="C-001")
    assert job.status == "succeeded", job.error
    assert job.parser_name == "biologic_mpr"
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    assert test.row_count == 2
    assert test.conventions["current"].startswith("none: the file has no current column")
    assert "cycle 0" in test.conventions["cycle"]
    assert any("voltage-only" in w for w in test.warnings)
    [only] = cycles_of(job)
    assert (only.cycle_index, only.cycle_in_file) == (1, 0)
    assert only.charge_mah is None and only.discharge_mah is None
    assert only.duration_s == pytest.approx(9.9976, abs=1e-3)
    record = test.performance
    assert record.cycles == 1 and record.first_charge_mah is None


@pytest.mark.django_db
def test_bdf_without_cycle_and_capacity_gets_both_from_its_current(
    fixture_path, project, cell, django_capture_on_commit_callbacks
):
    content = (fixture_path / BDF).read_bytes()
    job = run(project, django_capture_on_commit_callbacks, content, "sample.bdf.csv", cell="C-001")
    assert job.status == "succeeded", job.error
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    assert test.conventions["cycle"].startswith("derived")
    assert test.conventions["capacity"].startswith("derived: the file has no capacity column")
    [only] = cycles_of(job)
    assert only.cycle_in_file == 0
    assert only.charge_mah == pytest.approx(0.1 * 2 / 3.6)  # 0.1 A for 2 s
    assert only.discharge_mah == 0.0
    record = test.performance
    assert record.conventions["capacity_source"].startswith("derived")
    assert record.first_charge_mah == pytest.approx(0.1 * 2 / 3.6)


@pytest.mark.django_db
def test_only_rests_is_a_test_with_zero_capacity(project, django_capture_on_commit_callbacks):
    content = b"Test Time / s,Voltage / V,Current / A\n" + b"".join(
        f"{t},{3.7 - t * 1e-4:.5f},0\n".encode() for t in range(0, 600, 10)
    )
    job = run(project, django_capture_on_commit_callbacks, content, "ocv.bdf.csv")
    assert job.status == "needs_linking", job.error
    [only] = cycles_of(job)
    assert only.cycle_in_file == 0
    assert (only.charge_mah, only.discharge_mah) == (0.0, 0.0)
    assert only.end_charge_v is None and only.mean_charge_v is None


MAPPING = {
    "columns": {
        "t": {"quantity": "time_s", "unit": "s"},
        "cyc": {"quantity": "cycle", "unit": ""},
        "I": {"quantity": "current_a", "unit": "A"},
        "U": {"quantity": "voltage_v", "unit": "V"},
    },
    "delimiter": ";",
}


@pytest.mark.django_db
def test_a_cycle_column_empty_in_every_row_fails_clearly(
    project, django_capture_on_commit_callbacks
):
    lims_services.column_mapping_save(project=project, name="lab", mapping=MAPPING)
    content = b"t;cyc;I;U\n0;;0.1;3.6\n10;;0.1;3.7\n20;;-0.1;3.5\n"
    job = run(
        project,
        django_capture_on_commit_callbacks,
        content,
        "export.csv",
        metadata={"column_mapping": "lab"},
    )
    assert job.status == "failed"
    assert "the cycle column has no value in any row" in job.error
    assert "IntegrityError" not in job.error and not CycleRecord.objects.exists()


@pytest.mark.django_db
def test_cycle_numbers_beyond_32_bits_fail_clearly(project, django_capture_on_commit_callbacks):
    lims_services.column_mapping_save(project=project, name="lab", mapping=MAPPING)
    content = b"t;cyc;I;U\n0;1;0.1;3.6\n10;1;0.1;3.7\n20;99999999999;-0.1;3.5\n"
    job = run(
        project,
        django_capture_on_commit_callbacks,
        content,
        "export.csv",
        metadata={"column_mapping": "lab"},
    )
    assert job.status == "failed"
    assert "cycle numbers from 1 to 99999999999 are out of range" in job.error
    assert not CycleRecord.objects.exists()


@pytest.mark.django_db
def test_mapping_without_cycle_and_current_is_one_voltage_only_cycle(
    project, django_capture_on_commit_callbacks
):
    mapping = {
        "columns": {
            "t": {"quantity": "time_s", "unit": "s"},
            "U": {"quantity": "voltage_v", "unit": "V"},
        },
        "delimiter": ";",
    }
    lims_services.column_mapping_save(project=project, name="ocv", mapping=mapping)
    content = b"t;U\n0;3.6\n10;3.61\n20;3.62\n"
    job = run(
        project,
        django_capture_on_commit_callbacks,
        content,
        "ocv.csv",
        metadata={"column_mapping": "ocv"},
    )
    assert job.status == "needs_linking", job.error
    [only] = cycles_of(job)
    assert only.cycle_in_file == 0 and only.charge_mah is None


@pytest.mark.django_db
def test_trailing_blank_lines_add_no_rows(
    fixture_path, project, django_capture_on_commit_callbacks
):
    content = (fixture_path / ARBIN_CSV).read_bytes()
    assert content.endswith(b"\r\n")
    job = run(project, django_capture_on_commit_callbacks, content + b"\r\n" * 5, "arbin.csv")
    assert job.status == "needs_linking", job.error
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    assert test.row_count == 2142
    assert [c.cycle_in_file for c in cycles_of(job)] == [1, 2]


@pytest.mark.django_db
def test_header_and_blank_lines_only_fails_clearly(project, django_capture_on_commit_callbacks):
    content = b"Test Time / s,Voltage / V,Current / A\n\n\n\n"
    job = run(project, django_capture_on_commit_callbacks, content, "empty.bdf.csv")
    assert job.status == "failed"
    assert "no data rows" in job.error
    assert not CyclingTest.objects.exists()
