"""Stitching through the real handler on PostgreSQL: a split export, a restart, the same run
exported twice, an overlap, detach and attach back. Known answers come from the unsplit file."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cells import selectors, services
from cells.models import CyclingTest, StitchedRecord, StitchedRecordVersion
from cells.parsers.biologic import BiologicMprParser
from lims.ingestion import services as ingest
from lims.ingestion.parsing import ParseContext

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
START = "2020-10-26T12:49:58+00:00"  # the .mpr's own start time (its header)


def _ingest(path: Path, project, capture, **params):
    with path.open("rb") as fh, capture(execute=False):
        job, created = ingest.ingest_submit(
            stream=fh, filename=path.name, project=project, params=params
        )
    assert created
    done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status in ("succeeded", "needs_linking"), done.error
    return CyclingTest.objects.get(pk=done.result["cycling_test"])


@pytest.fixture
def series(fixture_path) -> pl.DataFrame:
    path = fixture_path / MPR
    data = BiologicMprParser().parse(path, ParseContext(filename=path.name, size=1))
    return data.series.collect()


@pytest.fixture
def other_cell(project):
    return services.cell_create(
        project=project,
        code="C-002",
        format="bulk_pellet",
        cell_type="cathode_half",
        ratio_active=Decimal("70"),
        ratio_se=Decimal("30"),
        ratio_carbon=Decimal("0"),
        cathode_mass_mg=Decimal("10"),
    )


def _csv(tmp_path: Path, name: str, frame: pl.DataFrame) -> Path:
    path = tmp_path / name
    frame.write_csv(path)  # the LIMS canonical CSV (cells.parsers.generic.CanonicalCsvParser)
    return path


def _rows(table):
    return [(c.cycle_index, c.charge_mah, c.discharge_mah, c.duration_s) for c in table]


@pytest.mark.django_db
def test_a_split_export_stitches_to_the_unsplit_cycle_table(
    fixture_path, tmp_path, project, cell, other_cell, series, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    whole = _ingest(fixture_path / MPR, project, capture, cell="C-002")
    a = _csv(tmp_path, "part_a.csv", series.filter(pl.col("cycle") <= 3))
    b = _csv(tmp_path, "part_b.csv", series.filter(pl.col("cycle") >= 4))
    test_b = _ingest(b, project, capture, cell="C-001")  # the later part arrives first
    test_a = _ingest(a, project, capture, cell="C-001")

    table = selectors.stitched_cycle_table(cell=cell)
    unsplit = list(whole.cycles.order_by("cycle_index"))
    assert [c.cycle_index for c in table] == list(range(1, 8))
    # equal but for the one logged interval between the parts (in neither file: 5e-9 of
    # cycle 5's charge here, the boundary falls in a rest)
    for got, want in zip(_rows(table), _rows(unsplit), strict=True):
        assert got == pytest.approx(want, rel=1e-7, abs=1e-12)
    assert [c.test_id for c in table] == [test_a.pk] * 4 + [test_b.pk] * 3
    # continuous time: the split export kept the run's clock, so stitched = file time
    starts = [c.stitched_start_s for c in table]
    assert starts == pytest.approx([c.start_time_s for c in unsplit], abs=1e-6)

    test_a.refresh_from_db()
    test_b.refresh_from_db()
    assert (test_a.chain_position, test_b.chain_position) == (1, 2)
    assert test_b.chain_cycle_offset == 4  # file cycles 4-6 are its cycle_index 1-3

    record = StitchedRecord.objects.get(cell=cell)
    per_test = whole.performance
    assert record.cycles == 7 == per_test.cycles
    assert record.initial_ce is None is per_test.initial_ce  # cycle 0 has no charge
    for name in ("first_discharge_mah", "retention_pct", "mean_ce"):
        assert getattr(record, name) == pytest.approx(getattr(per_test, name), rel=1e-9)
    assert record.reference_cycle == per_test.reference_cycle
    files = {s["file"]: s for s in record.sources}
    assert set(files) == {"part_a.csv", "part_b.csv"}
    assert files["part_b.csv"]["raw_sha256"] == test_b.raw_file.sha256
    assert files["part_b.csv"]["parser"] == "lims_csv"
    assert files["part_b.csv"]["stitched_cycles"] == [5, 7]
    assert record.duplicates == [] and record.overlaps == []
    assert len(record.warnings) == 2 and "no start time" in record.warnings[0]


@pytest.mark.django_db
def test_a_restart_after_a_pause_numbers_cycles_and_time_on(
    fixture_path, tmp_path, project, cell, series, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    first_part = series.filter(pl.col("cycle") <= 3)
    second = series.filter(pl.col("cycle") >= 4)
    t0 = float(second["time_s"][0])
    # the restarted channel counts cycles from 1 and time from 0 again, an hour later
    restarted = second.with_columns(
        pl.col("cycle") - 3, pl.col("time_s") - t0, pl.col("charge_capacity_ah") * 1.0
    )
    pause = 3600.0
    start_b = (pl.Series([START]).str.to_datetime()[0] + timedelta(seconds=t0 + pause)).isoformat()
    test_b = _ingest(
        _csv(tmp_path, "restart.csv", restarted),
        project,
        capture,
        cell="C-001",
        metadata={"start_time": start_b},
    )
    _ingest(
        _csv(tmp_path, "before.csv", first_part),
        project,
        capture,
        cell="C-001",
        metadata={"start_time": START},
    )
    assert test_b.cycles.order_by("cycle_index").first().cycle_in_file == 1
    table = selectors.stitched_cycle_table(cell=cell)
    assert [c.cycle_index for c in table] == list(range(1, 8))
    assert [c.cycle_in_file for c in table] == [0, 1, 2, 3, 1, 2, 3]
    test_b.refresh_from_db()
    assert test_b.chain_position == 2
    assert test_b.chain_notes == []
    # time: the restarted file's 0 s is the pause's end, t0 + 1 h after the chain's start
    assert table[4].stitched_start_s == pytest.approx(t0 + pause, abs=1e-3)
    record = StitchedRecord.objects.get(cell=cell)
    assert record.cycles == 7 and record.overlaps == [] and record.warnings == []
    assert record.capacity_c10_mah is None


@pytest.mark.django_db
def test_an_overlap_is_reported_and_kept(
    fixture_path, tmp_path, project, cell, series, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    second = series.filter(pl.col("cycle") >= 4)
    t0 = float(second["time_s"][0])
    end_a = float(series.filter(pl.col("cycle") <= 3)["time_s"].max())
    shifted = second.with_columns(pl.col("cycle") - 3, pl.col("time_s") - t0)
    # said to start 100000 s after the first part's start: inside its time range
    start_b = (pl.Series([START]).str.to_datetime()[0] + timedelta(seconds=100000)).isoformat()
    _ingest(_csv(tmp_path, "a.csv", series.filter(pl.col("cycle") <= 3)), project, capture,
            cell="C-001", metadata={"start_time": START})  # fmt: skip
    test_b = _ingest(
        _csv(tmp_path, "b.csv", shifted), project, capture, cell="C-001",
        metadata={"start_time": start_b},
    )  # fmt: skip
    record = StitchedRecord.objects.get(cell=cell)
    assert len(record.overlaps) == 1
    overlap = record.overlaps[0]
    assert (overlap["file"], overlap["previous_file"]) == ("b.csv", "a.csv")
    assert overlap["seconds"] == pytest.approx(end_a - 100000, abs=1e-3)
    assert record.cycles == 7
    test_b.refresh_from_db()
    assert "overlap" in test_b.chain_notes[0]


def _write_mpt(path: Path, mpr: Path) -> None:
    """An EC-Lab text export of the .mpr's own columns, 9 significant digits (EC-Lab's)."""
    from galvani import BioLogic

    data = BioLogic.MPRfile(str(mpr)).data
    names = [n for n in data.dtype.names if n != "flags"]
    lines = [
        "EC-Lab ASCII FILE",
        "Nb header lines : 5",
        "",
        "Galvanostatic Cycling with Potential Limitation",
        "\t".join(names),
    ]
    columns = [np.asarray(data[n], dtype=float) for n in names]
    for i in range(len(data)):
        lines.append("\t".join(f"{col[i]:.9g}" for col in columns))
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")


@pytest.mark.django_db
def test_the_same_run_exported_twice_is_one_table_with_the_duplicate_named(
    fixture_path, tmp_path, project, cell, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    mpt = tmp_path / "navani_jdb11-1_C09.mpt"
    _write_mpt(mpt, fixture_path / MPR)
    text = _ingest(mpt, project, capture, cell="C-001")  # the text export arrives first
    binary = _ingest(fixture_path / MPR, project, capture, cell="C-001")
    assert text.parser_name == "biologic_mpt" and text.cycles.count() == 7
    text.refresh_from_db()
    binary.refresh_from_db()
    # equal cycles: the dated .mpr is kept, the .mpt (no parsed start time) is the duplicate
    assert text.chain_role == "duplicate" and text.duplicate_of_id == binary.pk
    assert binary.chain_role == "member" and binary.chain_position == 1
    table = selectors.stitched_cycle_table(cell=cell)
    assert [c.test_id for c in table] == [binary.pk] * 7
    record = StitchedRecord.objects.get(cell=cell)
    assert record.cycles == 7
    assert [d["file"] for d in record.duplicates] == [mpt.name]
    assert "the same 7 cycles" in record.duplicates[0]["reason"]
    roles = {s["file"]: s["role"] for s in record.sources}
    assert roles == {mpt.name: "duplicate", binary.raw_file.original_name: "member"}


@pytest.mark.django_db
def test_detach_recomputes_the_record_without_the_test_and_attach_puts_it_back(
    fixture_path,
    tmp_path,
    project,
    cell,
    user,
    user_client,
    client,
    series,
    django_capture_on_commit_callbacks,
):
    capture = django_capture_on_commit_callbacks
    test_a = _ingest(
        _csv(tmp_path, "a.csv", series.filter(pl.col("cycle") <= 3)), project, capture,
        cell="C-001",
    )  # fmt: skip
    test_b = _ingest(
        _csv(tmp_path, "b.csv", series.filter(pl.col("cycle") >= 4)), project, capture,
        cell="C-001",
    )  # fmt: skip
    assert StitchedRecord.objects.get(cell=cell).cycles == 7
    response = user_client.post(
        f"/api/v1/cycling-tests/{test_b.pk}/detach/", {"reason": "wrong cell"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["chain_role"] == "detached"
    record = StitchedRecord.objects.get(cell=cell)
    assert record.cycles == 4 and record.tests == 1
    assert record.reason == "wrong cell"
    own = test_a.performance
    assert record.retention_pct == pytest.approx(own.retention_pct, rel=1e-12)
    assert {s["file"]: s["role"] for s in record.sources} == {
        "a.csv": "member",
        "b.csv": "detached",
    }

    chain = user_client.get(f"/api/v1/cells/{cell.code}/chain/").json()
    assert [t["raw_name"] for t in chain["tests"]] == ["a.csv", "b.csv"]
    assert [c["cycle_index"] for c in chain["cycles"]] == [1, 2, 3, 4]
    assert chain["record"]["cycles"] == 4

    response = user_client.post(f"/api/v1/cycling-tests/{test_b.pk}/attach/", {}, format="json")
    assert response.status_code == 200, response.content
    assert StitchedRecord.objects.get(cell=cell).cycles == 7
    client.force_login(user)
    page = client.get(f"/cells/{cell.code}/")
    assert page.status_code == 200
    assert b"Stitched test" in page.content and b"b.csv" in page.content
    # the page's Detach button takes a test out too
    page = client.post(f"/cells/{cell.code}/tests/{test_a.pk}/detach/")
    assert page.status_code == 302
    assert StitchedRecord.objects.get(cell=cell).cycles == 3  # only b.csv (file cycles 4-6)

    # every computation is kept, with its reason and what it changed
    versions = list(StitchedRecordVersion.objects.filter(cell=cell).order_by("version"))
    by_reason = {v.reason: v for v in versions}
    detached = by_reason["wrong cell"]
    assert detached.changed["cycles"] == [7, 4] and detached.changed["tests"] == [2, 1]
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert versions[-1].values["cycles"] == 3
    page = client.get(f"/cells/{cell.code}/").content.decode()
    history = page[page.index('id="stitched-history"') :]
    history = history[: history.index("</details>")]
    assert "wrong cell" in history and "<code>cycles</code> 7 &rarr; 4" in history
    assert "<code>sources</code> [2 items] &rarr; [2 items]" in history


@pytest.mark.django_db
def test_a_cycle_split_between_two_files_is_added_into_one(
    fixture_path, tmp_path, project, cell, other_cell, series, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    whole = _ingest(fixture_path / MPR, project, capture, cell="C-002")
    cut = float(series.filter(pl.col("cycle") == 3)["time_s"].median())  # inside cycle 3
    _ingest(_csv(tmp_path, "a.csv", series.filter(pl.col("time_s") <= cut)), project, capture,
            cell="C-001")  # fmt: skip
    _ingest(_csv(tmp_path, "b.csv", series.filter(pl.col("time_s") > cut)), project, capture,
            cell="C-001")  # fmt: skip
    table = selectors.stitched_cycle_table(cell=cell)
    unsplit = list(whole.cycles.order_by("cycle_index"))
    assert [c.cycle_index for c in table] == list(range(1, 8))
    # the interval between the two files' rows is in neither file: one logged row's charge
    # (7443 rows in that cycle), so cycle 4 agrees to well under 0.1 %; the others exactly
    for got, want in zip(table, unsplit, strict=True):
        tolerance = 1e-3 if want.cycle_index == 4 else 1e-9
        assert got.charge_mah == pytest.approx(want.charge_mah, rel=tolerance)
        assert got.discharge_mah == pytest.approx(want.discharge_mah, rel=tolerance)
        assert got.duration_s == pytest.approx(want.duration_s, abs=60.0)  # one row interval


@pytest.mark.django_db
def test_a_restitch_writes_only_the_tests_whose_place_moved(
    fixture_path, tmp_path, project, cell, series, django_capture_on_commit_callbacks
):
    """A file arriving first in time moves every later test; a re-stitch that moves
    nothing writes no test row (a burst of files for one cell was quadratic)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    capture = django_capture_on_commit_callbacks
    a = _csv(tmp_path, "part_a.csv", series.filter(pl.col("cycle") <= 3))
    b = _csv(tmp_path, "part_b.csv", series.filter(pl.col("cycle") >= 4))
    test_b = _ingest(b, project, capture, cell="C-001")
    test_a = _ingest(a, project, capture, cell="C-001")  # earlier: b moves to position 2
    test_b.refresh_from_db()
    test_a.refresh_from_db()
    assert (test_a.chain_position, test_b.chain_position) == (1, 2)

    def test_rows_written(reason: str) -> list[str]:
        with capture(execute=False), CaptureQueriesContext(connection) as queries:
            services.cell_stitch(cell=cell, reason=reason)
        return [
            q["sql"]
            for q in queries.captured_queries
            if q["sql"].startswith('UPDATE "cells_cyclingtest"')
        ]

    assert test_rows_written("nothing moved") == []
    CyclingTest.objects.filter(pk=test_b.pk).update(chain_position=9)  # out of place
    (written,) = test_rows_written("one moved")
    assert f"= {test_b.pk}" in written and f"= {test_a.pk} " not in written
    test_b.refresh_from_db()
    assert test_b.chain_position == 2
