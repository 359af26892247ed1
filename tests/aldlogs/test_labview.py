"""The real LabVIEW QCM run: parsing, pulses, QCM saturation and the run checks."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from depositions.aldlogs.checks import CHECKER_VERSION, GpcReference, Thresholds, run_checks
from depositions.aldlogs.parsers.labview import LabviewDatalogParser, merge_labview, parse_summary
from depositions.aldlogs.parsers.types import (
    AldLog,
    DosesTable,
    ExecutionTable,
    PulseEvent,
    RunSummary,
)
from depositions.aldlogs.plans import plan_from_execution_table
from depositions.aldlogs.pulses import align_to_plan, detect_pulses
from tests.aldlogs.conftest import (
    DATALOG,
    DOSES,
    EXECUTION,
    SUMMARY,
    ctx_for,
    labview_recipe,
)


def _by_label(pulses: list[PulseEvent], label: str) -> list[PulseEvent]:
    return [p for p in pulses if p.source_label == label]


# --- parsing ------------------------------------------------------------------------------------


def test_datalog_channels_units_and_time(datalog_only: AldLog) -> None:
    log = datalog_only
    assert log.parser == "labview_datalog"
    assert log.metadata["encoding"] in ("cp1252", "latin-1", "iso8859-1")
    assert log.series.height == 9450
    assert log.series["time_s"].dtype.is_float()
    assert log.sample_period_s == pytest.approx(0.5, abs=1e-3)
    # the first Timestamp (11:23:14.559) minus its elapsed time (0.569 s) = the process start
    assert log.start_time == "2019-05-24T11:23:13.990"
    roles = {ch.name: (ch.role, ch.unit) for ch in log.channels}
    assert roles["Chamber Pressure"] == ("pressure", "Torr")
    assert roles["Mass"] == ("qcm_mass", "ng/cm2")  # "Mass [ng/cm²]" in ISO-8859-1
    assert roles["Mass Offset"][0] == "other"
    assert roles["Frequency"] == ("qcm_frequency", "Hz")
    assert roles["Thermocouple 1"] == ("temperature", "degC")  # written "[ºC]" (0xBA)
    assert all(roles[f"MFC {k} Flow"] == ("mfc", "sccm") for k in range(1, 6))
    valves = log.by_role("valve")
    assert [v.physical_channel for v in valves] == [
        f"Mod{m}/do{b}" for m in (7, 8) for b in range(8)
    ]
    assert log.metadata["empty_channels"] == ["Pump Pressure"]  # all NaN: kept, reported
    assert log.series["Pump Pressure"].null_count() == log.series.height
    temps = log.series["Thermocouple 2"]
    assert float(temps.min()) > 124 and float(temps.max()) < 127
    json.dumps(log.describe())  # metadata is JSON-safe


def test_companion_tables(
    execution_table: ExecutionTable, doses_table: DosesTable, summary: RunSummary
) -> None:
    assert len(execution_table.steps) == 154
    assert execution_table.doses_per_precursor() == {"TMA": 80, "H2O": 70}
    first = execution_table.steps[0]
    assert (first.precursor, first.purge_time_s, first.dose_time_s) == (None, 300.0, None)
    assert execution_table.steps[1].dose_time_s == 1.0
    assert execution_table.steps[2].dose_time_s == 2.0
    assert doses_table.doses_per_precursor() == {"TMA": 80, "H2O": 70}
    second = doses_table.doses[1]
    assert second.pulse_start_s == pytest.approx(300.174)
    assert second.precursor == "TMA"
    assert summary.setpoints["Furnace Temp"]["value"] == 425.0
    assert summary.setpoints["Furnace Temp"]["unit"] == "degC"
    assert summary.precursors == {"A1": "TMA", "B1": "H2O", "C2": "MoF6", "D2": "H2S"}
    assert (summary.steps_completed, summary.steps_total, summary.complete) == (154, 154, True)
    assert summary.start_time == "2019-05-24T11:23:13.990"


def test_merge_keeps_setpoint_beside_measured_and_maps_valves(labview_log: AldLog) -> None:
    meta = labview_log.metadata
    assert meta["setpoints"]["Furnace Temp"]["value"] == 425.0
    medians = [
        float(labview_log.series[ch.name].median()) for ch in labview_log.by_role("temperature")
    ]
    assert all(m < 130 for m in medians)  # measured ~90-126 degC, stored beside the 425
    sources = meta["valve_sources"]
    assert sources["Mod8/do1"]["label"] == "TMA" and sources["Mod8/do1"]["port"] == "A1"
    assert sources["Mod8/do2"]["label"] == "H2O" and sources["Mod8/do2"]["port"] == "B1"
    assert set(sources) == {"Mod8/do1", "Mod8/do2"}
    assert meta["run_info"]["complete"] is True
    assert meta["declared_recipe"]["doses_per_precursor"] == {"TMA": 80, "H2O": 70}


def test_valve_sources_from_execution_table_order(datalog_only: AldLog, execution_table) -> None:
    merged = merge_labview(datalog_only, execution=execution_table)
    sources = merged.metadata["valve_sources"]
    assert sources["Mod8/do1"]["label"] == "TMA"
    assert sources["Mod8/do2"]["label"] == "H2O"


def test_explicit_valve_map_wins(datalog_only: AldLog) -> None:
    merged = merge_labview(datalog_only, valve_map={"Mod8/do1": {"label": "TMA", "port": "P1"}})
    pulses = detect_pulses(merged)
    tma = _by_label(pulses, "TMA")
    assert len(tma) == 80 and {p.source for p in tma} == {"P1"}


# --- pulses -------------------------------------------------------------------------------------


def test_pulse_counts_widths_and_pressure(
    labview_log: AldLog, execution_table, doses_table
) -> None:
    pulses = detect_pulses(labview_log)
    tma, h2o = _by_label(pulses, "TMA"), _by_label(pulses, "H2O")
    assert {p.channel for p in tma} == {"Mod8/do1"} and {p.channel for p in h2o} == {"Mod8/do2"}
    assert len(tma) == 80 and len(h2o) == 70
    assert len(tma) == execution_table.doses_per_precursor()["TMA"]
    assert len(h2o) == doses_table.doses_per_precursor()["H2O"]
    for group, planned in ((tma, 1.0), (h2o, 2.0)):
        for p in group:
            assert abs(p.width_s - planned) <= p.width_uncertainty_s, p
            assert p.width_uncertainty_s == pytest.approx(0.5, abs=0.01)
    # chamber pressure: TMA 1.797 -> 1.851 Torr, H2O 1.798 -> 1.918 Torr (shared reference)
    assert statistics.median(p.baseline for p in tma) == pytest.approx(1.797, abs=0.005)
    assert statistics.median(p.peak for p in tma) == pytest.approx(1.851, abs=0.01)
    assert statistics.median(p.baseline for p in h2o) == pytest.approx(1.798, abs=0.005)
    assert statistics.median(p.peak for p in h2o) == pytest.approx(1.918, abs=0.01)
    assert not any(p.dead for p in pulses)
    # every pulse starts within one sample period of the Doses-DeltaM start time
    starts = [d.pulse_start_s for d in doses_table.doses if d.precursor]
    for p, start in zip(sorted(pulses, key=lambda p: p.start_s), starts, strict=True):
        assert 0 <= p.start_s - start <= p.width_uncertainty_s + 0.05


def test_qcm_delta_per_pulse_matches_doses_table(labview_log: AldLog, doses_table) -> None:
    pulses = sorted(detect_pulses(labview_log), key=lambda p: p.start_s)
    reference = [d.delta_mass_ng_cm2 for d in doses_table.doses if d.precursor]
    diffs = np.abs(np.array([p.qcm_delta for p in pulses]) - np.array(reference))
    assert diffs.max() <= 2.0  # the instrument's own per-dose deltas, to 2 ng/cm2
    assert float(np.corrcoef([p.qcm_delta for p in pulses], reference)[0, 1]) > 0.99


def test_alignment_and_tma_only_saturation(labview_log: AldLog) -> None:
    pulses = detect_pulses(labview_log)
    alignment = align_to_plan(pulses, labview_recipe())
    assert alignment.aligned and alignment.matched == 150
    tma_only = [p for p in pulses if p.subcycle == "TMA-only"]
    assert len(tma_only) == 10 and {p.source_label for p in tma_only} == {"TMA"}
    assert [p.repetition for p in tma_only] == list(range(10))
    tma_cycles = [p for p in pulses if p.subcycle == "Al2O3" and p.source_label == "TMA"]
    assert len(tma_cycles) == 70
    cycle_gain = statistics.median(p.qcm_delta for p in tma_cycles)
    assert cycle_gain > 15  # TMA on a hydroxylated surface: ~23 ng/cm2 per dose
    # The first TMA-only dose still finds the OH left by the last water dose; the next nine
    # find a saturated surface: the gain per dose drops to near zero.
    assert tma_only[0].qcm_delta > 0.5 * cycle_gain
    later = [p.qcm_delta for p in tma_only[1:]]
    assert statistics.median(later) < 0.1 * cycle_gain
    assert max(abs(x) for x in later) < 0.2 * cycle_gain
    # a whole Al2O3 cycle gains ~ the TMA dose (water adds little mass)
    last_cycles = [p for p in pulses if p.subcycle == "Al2O3" and p.block == 4]
    assert len(last_cycles) == 40


def test_plan_from_execution_table_aligns(labview_log: AldLog, execution_table) -> None:
    plan = plan_from_execution_table(execution_table)
    pulses = detect_pulses(labview_log)
    report = run_checks(labview_log, pulses, plan)
    rows = {r.name: r for r in report.results}
    assert rows["pulse_count:TMA"].status == "pass" and rows["pulse_count:TMA"].value == 80
    assert rows["pulse_count:H2O"].status == "pass" and rows["pulse_count:H2O"].value == 70
    assert rows["plan_alignment"].status == "pass"
    assert rows["pulse_width:TMA"].status == "pass"
    assert rows["purge_length:H2O"].status == "pass"


# --- checks -------------------------------------------------------------------------------------


def test_run_checks_on_the_real_run(labview_log: AldLog) -> None:
    pulses = detect_pulses(labview_log)
    reference = GpcReference(1.0, 1.1, film_density_g_cm3=3.0, source="DOMAIN.md Al2O3")
    report = run_checks(labview_log, pulses, labview_recipe(), reference_gpc=reference)
    rows = {r.name: r for r in report.results}
    assert all(r.checker_version == CHECKER_VERSION for r in report.results)
    for name in (
        "pulse_count:TMA",
        "pulse_count:H2O",
        "pulse_width:TMA",
        "pulse_width:H2O",
        "purge_length:TMA",
        "dead_pulses:TMA",
        "dead_pulses:H2O",
        "delivery_drift:TMA",
        "run_completeness",
        "alarms",
        "qcm_saturation:TMA",
        "temperature_stability:Thermocouple 1",
    ):
        assert rows[name].status == "pass", rows[name]
    assert rows["pulse_count:TMA"].value == 80 and rows["pulse_count:TMA"].threshold == 80
    # the summary's 425 degC setpoint disagrees with every thermocouple: flagged, both kept
    setpoint = rows["temperature_setpoint:Furnace Temp"]
    assert setpoint.status == "warn"
    assert setpoint.threshold == 425.0 and 90 < setpoint.value < 130
    assert "425" in setpoint.details
    assert rows["qcm_saturation:TMA"].value < 0.1
    gain = rows["qcm_mass_gain:Al2O3"]
    assert gain.status == "pass" and 15 < gain.value < 35
    gpc = rows["qcm_gpc:Al2O3"]
    assert gpc.value == pytest.approx(0.1 * gain.value / 3.0)
    assert "qcm_gpc:TMA-only" not in rows  # a single-reactant block is not an ALD cycle
    assert report.verdict == "warn"
    assert any("Furnace Temp" in r for r in report.reasons)
    skipped = {s["name"] for s in report.skipped}
    assert {"total_dose", "line_source_temperature"} <= skipped
    json.dumps(report.as_dict())


def test_setpoint_mapped_to_its_channel_fails(labview_log: AldLog) -> None:
    pulses = detect_pulses(labview_log)
    thresholds = Thresholds.from_dict({"setpoint_channels": {"Furnace Temp": "Thermocouple 2"}})
    report = run_checks(labview_log, pulses, labview_recipe(), thresholds)
    row = next(r for r in report.results if r.name == "temperature_setpoint:Furnace Temp")
    assert row.status == "fail" and row.subject == "Thermocouple 2"
    assert report.verdict == "fail"


def test_parser_protocol_with_companions() -> None:
    parser = LabviewDatalogParser()
    log = parser.parse(
        DATALOG, ctx_for(DATALOG, companion_paths=[str(DOSES), str(SUMMARY), str(EXECUTION)])
    )
    assert log.metadata["companions"] == ["summary", "execution_table", "doses"]
    assert log.metadata["valve_sources"]["Mod8/do1"]["label"] == "TMA"
    assert isinstance(parser.version, str) and parser.kind == "ald_log"


def test_aborted_run_summary_fails_completeness_and_alarms(tmp_path, datalog_only: AldLog) -> None:
    text = SUMMARY.read_bytes()
    text = text.replace(b"Steps Completed:\t154/154", b"Steps Completed:\t37/154")
    text = text.replace(b"ALD Process Complete.", b"ALD Process Aborted by user.")
    path = tmp_path / SUMMARY.name
    path.write_bytes(text)
    summary = parse_summary(path, ctx_for(path))
    assert (summary.steps_completed, summary.complete) == (37, False)
    assert "Aborted" in (summary.status_text or "")
    log = merge_labview(datalog_only, summary=summary)
    report = run_checks(log, detect_pulses(log), labview_recipe())
    rows = {r.name: r for r in report.results}
    assert (
        rows["run_completeness"].status == "fail" and "37/154" in rows["run_completeness"].details
    )
    assert rows["alarms"].status == "fail" and "Aborted" in rows["alarms"].details
