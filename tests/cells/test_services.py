"""Cycler import service, performance metrics and re-derivation (worker run in-process)."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cells import services
from cells.models import CycleRecord, CyclingTest, PerformanceRecord
from lims.ingestion import services as ingest
from lims.ingestion import storage
from lims.models import OutboxEvent
from tests.conftest import ingest_file as _ingest

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


@pytest.mark.django_db
def test_mpr_import_stores_series_cycles_and_a_record_with_provenance(
    fixture_path, project, cell, django_capture_on_commit_callbacks
):
    job = _ingest(fixture_path, project, MPR, django_capture_on_commit_callbacks, cell="C-001")
    assert job.status == "succeeded", job.error
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    assert test.cell == cell and test.vendor == "biologic"
    assert test.started_at is not None and test.started_at.year >= 2000
    parquet = storage.absolute(test.series_path)
    assert parquet.suffix == ".parquet"
    assert pl.scan_parquet(parquet).select(pl.len()).collect().item() == 46102 == test.row_count
    cycles = list(test.cycles.order_by("cycle_index"))
    assert [c.cycle_index for c in cycles] == list(range(1, 8))
    record = test.performance
    assert record.cycles == 7
    assert record.first_charge_mah == pytest.approx(0.0, abs=1e-9)
    assert record.first_discharge_mah == pytest.approx(0.206529, rel=5e-3)
    assert record.active_mass_mg == pytest.approx(7.0)  # 10 mg x 70/(70+30+0)
    assert record.active_mass_source == "composite mass x active fraction"
    assert record.raw_sha256 == test.raw_file.sha256
    assert (record.parser_name, record.parser_version) == (job.parser_name, job.parser_version)
    assert record.conventions["current_sign"] == "positive = charge"
    assert "discharge/charge" in record.conventions["coulombic_efficiency"]
    second = cycles[1]
    assert second.coulombic_efficiency == pytest.approx(second.discharge_mah / second.charge_mah)
    assert second.discharge_mah_g == pytest.approx(second.discharge_mah / 0.007)
    topics = set(OutboxEvent.objects.values_list("topic", flat=True))
    assert {"cells.cycling_test.imported", "cells.performance_record.computed"} <= topics


@pytest.mark.django_db
def test_rerun_is_idempotent(fixture_path, project, cell, django_capture_on_commit_callbacks):
    job = _ingest(fixture_path, project, MPR, django_capture_on_commit_callbacks, cell="C-001")
    with django_capture_on_commit_callbacks(execute=False):
        ingest.job_rerun(job=job)
    again = ingest.job_run(job_id=job.pk)
    assert again is not None and again.status == "succeeded" and again.attempts == 2
    assert CyclingTest.objects.count() == 1
    assert CycleRecord.objects.count() == 7
    assert PerformanceRecord.objects.count() == 1


@pytest.mark.django_db
def test_file_without_cell_needs_linking_then_links(
    fixture_path, project, cell, django_capture_on_commit_callbacks
):
    job = _ingest(fixture_path, project, MPR, django_capture_on_commit_callbacks)
    assert job.status == "needs_linking"
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    assert test.performance.active_mass_mg is None
    assert test.performance.first_discharge_mah_g is None
    with django_capture_on_commit_callbacks(execute=False):
        services.cycling_test_link(test=test, cell=cell)
    test.refresh_from_db()
    assert test.performance.active_mass_mg == pytest.approx(7.0)
    job.refresh_from_db()
    assert job.status == "succeeded"


@pytest.mark.django_db
def test_unknown_cell_code_keeps_the_data_and_says_so(
    fixture_path, project, django_capture_on_commit_callbacks
):
    job = _ingest(fixture_path, project, MPR, django_capture_on_commit_callbacks, cell="NOPE")
    assert job.status == "needs_linking"
    assert "NOPE" in job.result["note"]


@pytest.mark.django_db
def test_active_mass_change_emits_an_event_and_recompute_uses_the_new_mass(
    fixture_path, project, cell, django_capture_on_commit_callbacks
):
    _ingest(fixture_path, project, MPR, django_capture_on_commit_callbacks, cell="C-001")
    before = PerformanceRecord.objects.get().first_discharge_mah_g
    with django_capture_on_commit_callbacks(execute=False):
        services.cell_update(cell=cell, active_mass_override_mg=Decimal("3.5"), reason="weighed")
        services.cell_update(cell=cell, notes="no mass change here")
    events = OutboxEvent.objects.filter(topic="cells.cell.active_mass_changed")
    assert events.count() == 1
    payload = events.get().payload
    assert Decimal(payload["old_mg"]) == Decimal("7.0000")
    assert Decimal(payload["new_mg"]) == Decimal("3.5")
    from cells.tasks import records_recompute_for_event

    with django_capture_on_commit_callbacks(execute=False):
        assert records_recompute_for_event(str(events.get().pk)) == 1
    record = PerformanceRecord.objects.get()
    assert record.first_discharge_mah_g == pytest.approx(before * 2)
    assert record.active_mass_source == "override"
    assert "weighed" in record.reason


def _cycles(discharge: list[float], charge: float = 1.0) -> list[CycleRecord]:
    rows = []
    for i, d in enumerate(discharge, start=1):
        rows.append(
            CycleRecord(
                cycle_index=i,
                cycle_in_file=i,
                charge_mah=charge,
                discharge_mah=d,
                coulombic_efficiency=d / charge,
            )
        )
    return rows


def test_metrics_retention_cycles_to_80_and_mean_ce():
    caps = [1.0, 0.95, 0.9, 0.85, 0.81, 0.79, 0.75, 0.74, 0.73, 0.7, 0.69]
    m = services.performance_metrics(cycles=_cycles(caps), anode_half=False, mass_g=0.01)
    assert m["cycles"] == 11
    assert m["reference_cycle"] == 1
    assert m["retention_pct"] == pytest.approx(69.0)
    assert m["cycles_to_80"] == 6  # first below 80 % of cycle 1
    assert m["capacity_c10_mah"] == pytest.approx(0.7)
    assert m["capacity_c10_mah_g"] == pytest.approx(70.0)
    assert m["capacity_c50_mah"] is None
    assert m["mean_ce"] == pytest.approx(sum(caps[1:]) / 10)


def test_metrics_reference_skips_empty_first_cycle_and_anode_half_uses_charge():
    rows = _cycles([0.0, 2.0, 1.5])
    m = services.performance_metrics(cycles=rows, anode_half=False, mass_g=None)
    assert m["reference_cycle"] == 2
    assert m["retention_pct"] == pytest.approx(75.0)
    assert m["first_discharge_mah_g"] is None
    anode = services.performance_metrics(
        cycles=_cycles([1, 1, 1], 2.0), anode_half=True, mass_g=None
    )
    assert anode["retention_pct"] == pytest.approx(100.0)


@pytest.mark.django_db
def test_cell_list_endpoint_runs_a_constant_number_of_queries(user_client, project):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert user_client.get("/api/v1/cells/").status_code == 200
        return len(ctx.captured_queries)

    for i in range(3):
        services.cell_create(project=project, code=f"Q-{i}", format="coin", cell_type="full")
    few = count()
    for i in range(3, 30):
        services.cell_create(project=project, code=f"Q-{i}", format="coin", cell_type="full")
    assert count() == few


@pytest.mark.django_db
def test_counters_carried_into_a_file_are_metadata_not_cycle_1(
    fixture_path, project, cell, django_capture_on_commit_callbacks
):
    job = _ingest(
        fixture_path,
        project,
        "cycler/arbin/bdtk_arbin_example.csv",
        django_capture_on_commit_callbacks,
        cell="C-001",
    )
    assert job.status == "succeeded", job.error
    record = PerformanceRecord.objects.get()
    carried = record.conventions["carried_over_charge_mah"]
    assert carried.startswith("880.005 mAh") and "not counted" in carried
    assert record.conventions["capacity"].startswith("charge that flowed in this file")
    assert "Charge_/Discharge_Capacity" in record.conventions["capacity_source"]
    # cycle 1 holds what flowed in the file, as the reference and every peer count it
    assert record.first_charge_mah == pytest.approx(191.899, rel=5e-3)
    assert record.first_discharge_mah == pytest.approx(1072.36, rel=5e-3)


@pytest.mark.django_db
def test_cell_codes_must_print_as_barcodes(project):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="barcode"):
        services.cell_create(project=project, code="bad code/1", format="coin", cell_type="full")
    assert services.cell_create(
        project=project, code="NMC-2026.01_a", format="coin", cell_type="full"
    ).pk


@pytest.mark.django_db
def test_cell_built_from_a_composite_takes_its_active_fraction_and_mass(project):
    from samples import services as sample_services
    from samples.choices import MaterialClass, SampleKind
    from samples.models import Operation, Sample

    nmc = sample_services.material_create(
        name="NMC811", material_class=MaterialClass.CATHODE_ACTIVE
    )
    se = sample_services.material_create(
        name="LPSC", material_class=MaterialClass.SOLID_ELECTROLYTE
    )
    a = sample_services.sample_create(
        project=project, code="P-NMC", kind="powder", quantity=5, material=nmc
    )
    b = sample_services.sample_create(
        project=project, code="P-SE", kind="powder", quantity=5, material=se
    )
    sample_services.sample_mix(
        project=project,
        inputs=[(a, Decimal("0.7")), (b, Decimal("0.3"))],
        output=sample_services.OutputSpec(
            code="MIX-1", kind=SampleKind.COMPOSITE, quantity=Decimal("1.0")
        ),
    )
    mix = Sample.objects.get(code="MIX-1")
    cell = services.cell_create(
        project=project,
        code="LIN-1",
        format="bulk_pellet",
        cell_type="cathode_half",
        cathode_sample=mix,
        cathode_mass_mg=Decimal("12"),
        ratio_active=Decimal("99"),
    )
    assert cell.lineage_active_fraction == Decimal("0.7")
    assert cell.active_mass_mg == Decimal("8.4000")  # lineage wins over the typed ratio
    assert "lineage" in cell.active_mass_source
    mix.refresh_from_db()
    assert mix.remaining == Decimal("0.988")  # 12 mg went into the cell
    assert Operation.objects.get(kind="assembly").label == "cell LIN-1"
