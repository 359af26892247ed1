"""Plasma-enhanced half-cycles: plasma pulses from the RF forward power, checked against the
recipe's plasma time and power; zero-noise gauges do not make dead valves pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from depositions.aldlogs.checks import CheckReport, run_checks
from depositions.aldlogs.pulses import detect_pulses, planned_doses
from depositions.expansion import BlockSpec, RecipeSpec, StepSpec, SubCycleSpec
from lims.ingestion.registry import get_parser
from tests.aldlogs.conftest import ctx_for

PERIOD = 0.1
CYCLES = 20
# TMA 0.1 s / 5 s purge / O2 plasma 10 s at 300 W / 5 s purge  (PE-ALD Al2O3)
TMA_S, PURGE_S, PLASMA_S, POWER_W = 0.1, 5.0, 10.0, 300.0
CYCLE_S = TMA_S + PURGE_S + PLASMA_S + PURGE_S

CHANNEL_MAP = {
    "time": {"column": "t", "unit": "s"},
    "channels": [
        {"column": "P", "role": "pressure", "unit": "Torr", "name": "chamber pressure"},
        {"column": "DO1", "role": "valve", "port": "P1", "physical_channel": "DO1"},
        {"column": "RF_fwd", "role": "power", "unit": "W", "name": "RF forward power"},
        {"column": "Heater", "role": "power", "unit": "W", "name": "chuck heater power"},
    ],
}


def plan(power: float = POWER_W) -> RecipeSpec:
    return RecipeSpec(
        subcycles=(
            SubCycleSpec(
                "Al2O3 PE",
                (
                    StepSpec(1, "pulse", "TMA", TMA_S),
                    StepSpec(2, "purge", "", PURGE_S),
                    StepSpec(3, "plasma", "O2 plasma", PLASMA_S, plasma_power_w=power),
                    StepSpec(4, "purge", "", PURGE_S),
                ),
            ),
        ),
        blocks=(BlockSpec("Al2O3 PE", CYCLES),),
        repeats=1,
    )


def write_log(path: Path, *, sagging_cycles: int = 0, flat_gauge: bool = False) -> Path:
    """A PE-ALD run sampled at 10 Hz; the generator delivers half its power in the last
    ``sagging_cycles`` cycles; ``flat_gauge``: the gauge never changes (a valve doing nothing
    on a gauge at its floor)."""
    rng = np.random.default_rng(3)
    per_cycle = round(CYCLE_S / PERIOD)  # integer sample arithmetic: no float drift
    lead = round(10 / PERIOD)
    idx = np.arange(lead + CYCLES * per_cycle + lead)
    t = idx * PERIOD
    cycle = (idx - lead) // per_cycle
    k = (idx - lead) % per_cycle
    running = (idx >= lead) & (cycle < CYCLES)
    tma = running & (k < round(TMA_S / PERIOD))
    first_plasma = round((TMA_S + PURGE_S) / PERIOD)
    plasma = running & (k >= first_plasma) & (k < first_plasma + round(PLASMA_S / PERIOD))
    phase = k * PERIOD
    since = np.where(running, phase, np.inf)
    pressure = 0.30 + rng.normal(0, 0.002, t.size) + 0.2 * np.exp(-since / 0.8) * (since >= 0)
    if flat_gauge:
        pressure = np.full(t.size, 7.5e-6)
    power = np.where(plasma, POWER_W + rng.normal(0, 2.0, t.size), 0.0)
    power = np.where(plasma & (cycle >= CYCLES - sagging_cycles), power / 2, power)
    pl.DataFrame(
        {
            "t": np.round(t, 3),
            "P": np.round(pressure, 7),
            "DO1": tma.astype(np.int8),
            "RF_fwd": np.round(power, 1),
            "Heater": np.round(850 + rng.normal(0, 5, t.size), 1),  # always on: not a dose
        }
    ).write_csv(path)
    return path


def _run(path: Path, power: float = POWER_W) -> tuple[list, CheckReport]:
    log = get_parser("generic_ald_log").parse(path, ctx_for(path, channel_map=CHANNEL_MAP))
    pulses = detect_pulses(log, source_map={"DO1": "TMA"})
    return pulses, run_checks(log, pulses, plan(power))


def _status(report: CheckReport) -> dict[str, str]:
    return {r.name: r.status for r in report.results}


def test_plasma_pulses_come_from_the_rf_power_and_pass_their_checks(tmp_path: Path) -> None:
    pulses, report = _run(write_log(tmp_path / "peald.csv"))
    plasma = [p for p in pulses if p.detection == "power"]
    assert len(plasma) == CYCLES  # the heater's power (always on) is no plasma
    assert {p.channel for p in plasma} == {"RF forward power"}
    assert all(p.source_label == "O2 plasma" for p in plasma)  # the plan's only plasma source
    assert all(abs(p.width_s - PLASMA_S) <= PERIOD + 1e-6 for p in plasma)
    assert all(p.power_w == pytest.approx(POWER_W, abs=3) for p in plasma)
    assert all(p.dead is None for p in plasma)  # not judged by the pressure
    status = _status(report)
    assert status["pulse_count:O2 plasma"] == "pass"
    assert status["pulse_width:O2 plasma"] == "pass"
    assert status["plasma_power:O2 plasma"] == "pass"
    assert status["pulse_count:TMA"] == status["dead_pulses:TMA"] == "pass"
    assert "dead_pulses:O2 plasma" not in status
    assert report.verdict == "pass", report.reasons


def test_a_sagging_generator_fails_the_plasma_power_check(tmp_path: Path) -> None:
    _, report = _run(write_log(tmp_path / "sag.csv", sagging_cycles=5))
    check = next(r for r in report.results if r.name == "plasma_power:O2 plasma")
    assert check.status == "fail"  # 5 of 20 pulses at half power
    assert check.threshold == POWER_W
    assert "5 of 20 outside" in check.details
    assert report.verdict == "fail"


def test_plasma_power_is_skipped_without_a_planned_power(tmp_path: Path) -> None:
    log_path = write_log(tmp_path / "peald.csv")
    log = get_parser("generic_ald_log").parse(log_path, ctx_for(log_path, channel_map=CHANNEL_MAP))
    pulses = detect_pulses(log, source_map={"DO1": "TMA"})
    steps = list(planned_doses(plan()))  # a plan without the power (planned doses only)
    report = run_checks(log, pulses, steps)
    skipped = {s["name"]: s["reason"] for s in report.skipped}
    assert skipped["plasma_power:O2 plasma"] == "no planned plasma power for this source"


def test_a_gauge_that_never_changes_makes_every_pulse_dead(tmp_path: Path) -> None:
    """Zero noise used to mean a zero threshold, so a rise of zero passed as alive."""
    _, report = _run(write_log(tmp_path / "flat.csv", flat_gauge=True))
    check = next(r for r in report.results if r.name == "dead_pulses:TMA")
    assert check.status == "fail"
    assert "20 of 20" in check.details
