"""Interfacial resistance vs cycle: pure placement rules, and a known answer through the real
cycler and impedance handlers on PostgreSQL (a generated 5-cycle test split in two files and
three generated spectra with known R1, R2 between cycles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cells.eis import services as eis
from cells.eis.fit import CIRCUITS, circuit_impedance
from cells.eis.interface import CycleSpan, SpectrumAt, interface_resistance, place_spectra
from cells.models import EisSpectrum, StitchedRecord, StitchedRecordVersion
from lims.ingestion import services as ingest

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CYCLE_S, GAP_S, STEP_S = 3600.0, 3600.0, 60.0  # 1 h cycle, 1 h pause between cycles
# (R1, R2) of the three spectra: after cycle 1, after cycle 3, after cycle 5
KNOWN = {1: (40.0, 100.0), 3: (60.0, 150.0), 5: (80.0, 220.0)}


def _span(n: int) -> CycleSpan:
    start = (n - 1) * (CYCLE_S + GAP_S)
    return CycleSpan(n, start, start + CYCLE_S - STEP_S)


def test_a_spectrum_follows_the_last_cycle_started_before_it():
    cycles = [_span(n) for n in range(1, 6)]
    spectra = [
        SpectrumAt(1, -100.0, 10.0),  # before any cycle: pristine
        SpectrumAt(2, _span(1).end_s + 1800, 20.0),
        SpectrumAt(3, _span(4).start_s - 1, 30.0),  # just before cycle 4 starts
        SpectrumAt(4, _span(5).end_s + 10 * 86400, 40.0),  # long after the last cycle
        SpectrumAt(5, _span(2).start_s + 600, 50.0),  # inside cycle 2's span
    ]
    placed = place_spectra(list(reversed(cycles)), spectra)
    assert [(p.key, p.cycle) for p in placed] == [(1, 0), (2, 1), (5, 2), (3, 3), (4, 5)]
    notes = {p.key: p.note for p in placed}
    assert "pristine" in notes[1]
    assert "inside the cycle's span" in notes[5]
    assert notes[2] == notes[3] == notes[4] == ""
    # within the clock tolerance of a cycle's last row: after the cycle, no note
    edge = place_spectra(cycles, [SpectrumAt(9, _span(2).end_s - 30, 1.0)])
    assert (edge[0].cycle, edge[0].note) == (2, "")
    assert place_spectra([], [SpectrumAt(1, 0.0, 1.0)])[0].cycle == 0


def test_interface_resistance_sums_the_arcs_not_r0():
    two = [
        {"name": "R0", "value": 10.0, "stderr": 0.1},
        {"name": "R1", "value": 40.0, "stderr": 3.0},
        {"name": "CPE1_0", "value": 1e-5, "stderr": 1e-7},
        {"name": "R2", "value": 100.0, "stderr": 4.0},
        {"name": "W1", "value": 5.0, "stderr": None},
    ]
    assert interface_resistance(two) == (140.0, 5.0, ["R1", "R2"])
    one = [{"name": "R0", "value": 1.0}, {"name": "R1", "value": 7.0, "stderr": None}]
    assert interface_resistance(one) == (7.0, None, ["R1"])
    assert interface_resistance([{"name": "R0", "value": 1.0}]) is None
    assert interface_resistance([{"name": "R1", "value": float("nan")}]) is None


def _cycler_csv(tmp_path: Path, name: str, cycles: range, first_start_s: float) -> Path:
    """Cycles of 30 min charge + 30 min discharge at 1 mA, logged every minute; a pause with no
    rows between cycles. time_s counts from the file's own start (its metadata start_time)."""
    rows = []
    for n in cycles:
        start = (n - 1) * (CYCLE_S + GAP_S) - first_start_s
        for k in range(int(CYCLE_S / STEP_S)):
            t = start + k * STEP_S
            charging = k * STEP_S < CYCLE_S / 2
            rows.append((t, n, 1e-3 if charging else -1e-3, 3.0 + (0.5 if charging else -0.5)))
    path = tmp_path / name
    pl.DataFrame(
        rows, schema=["time_s", "cycle", "current_a", "voltage_v"], orient="row"
    ).write_csv(path)
    return path


def _spectrum_csv(tmp_path: Path, name: str, r1: float, r2: float) -> Path:
    f = np.logspace(5, -1, 61)
    z = circuit_impedance(CIRCUITS["cell_interfaces"], [8.0, r1, 2e-6, 0.9, r2, 5e-4, 0.8, 20.0], f)
    path = tmp_path / name
    pl.DataFrame({"Frequency": f, "Zreal": z.real, "Zimag": z.imag}).write_csv(path)
    return path


def _run(path: Path, project, capture, **params):
    with path.open("rb") as fh, capture(execute=False):
        job, created = ingest.ingest_submit(
            stream=fh, filename=path.name, project=project, params=params
        )
    assert created
    done = ingest.job_run(job_id=job.pk)
    assert done is not None and done.status == "succeeded", (
        done and done.error,
        done and done.result,
    )
    return done


@pytest.mark.django_db
def test_r_interface_vs_cycle_known_answer(
    tmp_path, project, cell, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    after = {1: 1 * CYCLE_S + 1800, 3: 2 * (CYCLE_S + GAP_S) + CYCLE_S + 1800}
    after[5] = 4 * (CYCLE_S + GAP_S) + CYCLE_S + 1800
    # spectra first: no stitched record yet, so nothing is placed
    for n, (r1, r2) in KNOWN.items():
        measured = (T0 + timedelta(seconds=after[n])).isoformat()
        _run(
            _spectrum_csv(tmp_path, f"eis_after_{n}.csv", r1, r2),
            project,
            capture,
            cell=cell.code,
            metadata={"measured_at": measured},
        )
    assert not StitchedRecord.objects.filter(cell=cell).exists()
    # the cycler test, split in two dated files (cycles 1-3 and 4-5); ingesting re-stitches
    second_start = 3 * (CYCLE_S + GAP_S)
    _run(
        _cycler_csv(tmp_path, "part2.csv", range(4, 6), second_start),
        project,
        capture,
        cell=cell.code,
        metadata={"start_time": (T0 + timedelta(seconds=second_start)).isoformat()},
    )
    _run(
        _cycler_csv(tmp_path, "part1.csv", range(1, 4), 0.0),
        project,
        capture,
        cell=cell.code,
        metadata={"start_time": T0.isoformat()},
    )
    record = StitchedRecord.objects.get(cell=cell)
    assert record.cycles == 5 and record.tests == 2
    series = record.interface_resistance["series"]
    assert [p["cycle"] for p in series] == [1, 3, 5]
    for p in series:
        r1, r2 = KNOWN[p["cycle"]]
        assert p["r_ohm"] == pytest.approx(r1 + r2, rel=0.01)
        assert p["terms"] == ["R1", "R2"] and p["circuit"] == "cell_interfaces"
        assert p["time_source"] == "upload metadata.measured_at"
        spectrum = EisSpectrum.objects.get(pk=p["spectrum"])
        assert p["raw_sha256"] == spectrum.raw_file.sha256
        assert p["fit"] == spectrum.fits.latest("created_at").pk
        assert p["note"] == ""
    assert record.interface_resistance["skipped"] == []

    # a refit of one spectrum (a narrower range) is the value used from then on
    first = EisSpectrum.objects.get(pk=series[0]["spectrum"])
    fit = eis.eis_fit_run(spectrum=first, circuit="cell_interfaces", f_min=0.5, f_max=1e6)
    record.refresh_from_db()
    again = record.interface_resistance["series"][0]
    assert again["fit"] == fit.pk and again["spectrum"] == first.pk
    assert again["r_ohm"] == pytest.approx(140.0, rel=0.02)
    # the new series is a new version of the record; the old values stay findable
    latest = StitchedRecordVersion.objects.filter(cell=cell).latest("version")
    assert latest.reason.startswith("R_interface recomputed")
    old_series, new_series = latest.changed["interface_resistance"]
    assert old_series["series"][0]["fit"] != fit.pk and new_series["series"][0]["fit"] == fit.pk


@pytest.mark.django_db
def test_an_undated_stitched_test_places_no_spectrum_and_says_why(
    tmp_path, project, cell, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    _run(_cycler_csv(tmp_path, "undated.csv", range(1, 3), 0.0), project, capture, cell=cell.code)
    _run(_spectrum_csv(tmp_path, "eis.csv", 40.0, 100.0), project, capture, cell=cell.code)
    value = StitchedRecord.objects.get(cell=cell).interface_resistance
    assert value["series"] == []
    assert "no start time" in value["skipped"][0]["reason"]
    assert value["skipped"][0]["time_source"].startswith("upload time")
