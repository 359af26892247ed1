"""The controller event log (dead valve 1) and its recipe CSV."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from depositions.aldlogs.checks import run_checks
from depositions.aldlogs.parsers.controller import parse_controller_log
from depositions.aldlogs.parsers.types import AldLog, ControllerRecipe
from depositions.aldlogs.plans import plan_from_controller_recipe
from depositions.aldlogs.pulses import align_to_plan, detect_pulses, planned_doses
from lims.ingestion.parsing import ParseError
from tests.aldlogs.conftest import EVENTLOG, ctx_for, labview_recipe


def _plan(log: AldLog, recipe: ControllerRecipe, **kwargs: object) -> list:
    loops = log.metadata["run_info"]["loops_requested"]
    return plan_from_controller_recipe(recipe, loops, **kwargs)  # type: ignore[arg-type]


def test_event_log_parsed(controller_log: AldLog) -> None:
    log = controller_log
    assert log.parser == "controller_eventlog"
    assert log.start_time == "2025-03-14T09:58:03"
    assert log.series.height == 750  # 'The pressure is' readings
    assert log.series["time_s"].is_sorted()
    assert log.sample_period_s == pytest.approx(1.0)
    valves = [e for e in log.events if e.kind == "valve"]
    assert len(valves) == 120  # 30 loops x 2 valves x open/close
    assert {e.channel for e in valves} == {"valve 1", "valve 4"}
    assert log.metadata["run_info"] == {
        "source": "controller_eventlog",
        "started": True,
        "finished": True,
        "loops_requested": 30,
    }
    assert [ch.name for ch in log.by_role("valve")] == ["valve 1", "valve 4"]
    assert log.by_role("pressure")[0].unit == "Torr"
    assert log.warnings == []
    json.dumps(log.describe())


def test_recipe_csv_keeps_duplicated_column(controller_recipe: ControllerRecipe) -> None:
    recipe = controller_recipe
    assert recipe.raw_columns.count("mfcArMo") == 2
    assert "mfcArMo" in recipe.columns and "mfcArMo_2" in recipe.columns
    assert any("mfcArMo" in w and "mfcArMo_2" in w for w in recipe.warnings)
    assert recipe.delay_column == "delay(s)"
    assert len(recipe.rows) == 25
    assert recipe.rows[0].values["aldv1"] == 1.0 and recipe.rows[0].delay_s == 0.05
    assert recipe.rows[0].values["mfcAr"] is None  # -1 = no change
    assert recipe.rows[9].values["aldv4"] == 1.0


def test_dead_valve_fails_the_run(controller_log: AldLog, controller_recipe) -> None:
    pulses = detect_pulses(controller_log)
    v1 = [p for p in pulses if p.channel == "valve 1"]
    v4 = [p for p in pulses if p.channel == "valve 4"]
    assert len(v1) == 30 and len(v4) == 30
    assert all(p.dead is True and "dead" in p.flags for p in v1)
    assert all(p.dead is False for p in v4)
    assert all(p.width_uncertainty_s == 1.0 for p in pulses)  # the clock's 1 s resolution
    report = run_checks(controller_log, pulses, _plan(controller_log, controller_recipe))
    rows = {r.name: r for r in report.results}
    dead = rows["dead_pulses:valve 1"]
    assert dead.status == "fail" and "30 of 30" in dead.details
    assert dead.value < dead.threshold
    for name, row in rows.items():
        if "valve 4" in name:
            assert row.status == "pass", row
    assert rows["pulse_count:valve 1"].status == "pass" and rows["pulse_count:valve 1"].value == 30
    assert rows["pulse_count:valve 4"].status == "pass"
    assert rows["purge_length:valve 1"].status == "pass"
    assert rows["run_completeness"].status == "pass"
    assert report.verdict == "fail"
    assert [r.split(":")[0] + ":" + r.split(":")[1] for r in report.reasons] == [
        "dead_pulses:valve 1"
    ]


def test_valve_map_and_recipe_labels(controller_recipe) -> None:
    log = parse_controller_log(
        EVENTLOG, ctx_for(EVENTLOG, valve_map={"valve 1": "TMA", "valve 4": "H2O"})
    )
    pulses = detect_pulses(log)
    assert {p.source_label for p in pulses} == {"TMA", "H2O"}
    plan = _plan(log, controller_recipe, valve_labels={"valve 1": "TMA", "valve 4": "H2O"})
    report = run_checks(log, pulses, plan)
    rows = {r.name: r for r in report.results}
    assert rows["dead_pulses:TMA"].status == "fail"
    assert rows["dead_pulses:H2O"].status == "pass"


def test_labels_inferred_from_a_recipe_without_valve_map(controller_log: AldLog) -> None:
    """A TMA/H2O recipe and an unmapped log: valves get labels by order of first use."""
    pulses = detect_pulses(controller_log)
    plan = planned_doses(labview_recipe())[:60]  # 30 TMA/H2O pairs
    alignment = align_to_plan(pulses, plan)
    assert alignment.label_map == {"valve 1": "TMA", "valve 4": "H2O"}
    assert alignment.matched == 60 and "inferred" in alignment.notes[0]


def test_appended_log_takes_the_last_run(tmp_path: Path) -> None:
    text = EVENTLOG.read_bytes()
    path = tmp_path / "ALD_runtimeLog.log"
    path.write_bytes(text + text.replace(b"03/14/2025", b"03/15/2025"))
    log = parse_controller_log(path, ctx_for(path))
    assert len(log.metadata["runs_in_file"]) == 2
    assert log.metadata["run_index"] == 1 and log.start_time.startswith("2025-03-15")
    assert any("2 runs" in w for w in log.warnings)
    first = parse_controller_log(path, ctx_for(path, run_index=0))
    assert first.start_time.startswith("2025-03-14") and first.series.height == 750
    with pytest.raises(ParseError) as info:
        parse_controller_log(path, ctx_for(path, run_index=5))
    assert info.value.location == "run_index"


def test_array_dump_alarms_pm_clock_and_mfc(tmp_path: Path) -> None:
    lines = [
        "07/26/2024 11:59:58 AM INFO     Starting a new run",
        "07/26/2024 11:59:59 AM INFO     here is the recipe file numpy array [[-1.  -1.   1.",
        "   0.1]",
        " [-1.  -1.  -1.",
        "   1. ]]",
        "07/26/2024 12:00:00 PM INFO     User asked to run the loops this many times 1",
        "07/26/2024 12:00:00 PM INFO     set mfc at Arto 50",
        "07/26/2024 12:00:01 PM INFO     The pressure is 0.1185",
        "07/26/2024 12:00:01 PM INFO     set valve 2to 1",
        "07/26/2024 12:00:01 PM INFO     set valve 2to 0",
        "07/26/2024 12:00:01 PM INFO     The pressure is 0.726",
        "07/26/2024 12:00:02 PM WARNING  pressure gauge slow to answer",
        "07/26/2024 12:00:03 PM ERROR    relay port not responding",
        "07/26/2024 01:00:03 PM INFO     The pressure is 0.1190",
        "",
    ]
    path = tmp_path / "runtime.log"
    path.write_text("\n".join(lines), encoding="ascii")
    log = parse_controller_log(path, ctx_for(path))
    assert log.metadata["declared_recipe"]["rows"] == [
        [-1.0, -1.0, 1.0, 0.1],
        [-1.0, -1.0, -1.0, 1.0],
    ]
    times = log.series["time_s"].to_list()
    assert times[-1] == pytest.approx(3605.0, abs=0.01)  # 11:59:58 AM -> 01:00:03 PM
    assert [a["level"] for a in log.metadata["alarms"]] == ["warning", "error"]
    setpoints = [e for e in log.events if e.kind == "setpoint"]
    assert setpoints[0].channel == "mfc Ar" and setpoints[0].value == 50.0
    assert "mfc Ar setpoint" in log.series.columns
    pulses = detect_pulses(log)
    assert len(pulses) == 1 and pulses[0].channel == "valve 2"
    report = run_checks(log, pulses, None)
    rows = {r.name: r for r in report.results}
    assert rows["alarms"].status == "fail" and "relay port" in rows["alarms"].details
    assert rows["run_completeness"].status == "warn"  # started, no end marker, no plan
    assert {s["name"] for s in report.skipped} >= {"pulse_count", "pulse_width", "purge_length"}


def test_clock_set_back_and_cut_last_line(tmp_path: Path) -> None:
    lines = [
        "11/03/2024 01:59:58 AM INFO     Starting a new run",
        "11/03/2024 01:59:59 AM INFO     The pressure is 0.1",
        "11/03/2024 01:00:00 AM INFO     The pressure is 0.1",  # DST: clock set back 1 h
        "11/03/2024 01:00:01 AM INFO     The pressure is 0.1",
        "11/03/2024 01:00:02 AM INFO     The pres",  # copy cut mid-line
    ]
    path = tmp_path / "dst.log"
    path.write_text("\n".join(lines), encoding="ascii")
    log = parse_controller_log(path, ctx_for(path))
    assert log.series.height == 3
    assert log.series["time_s"].is_sorted()
    assert any("backwards" in w for w in log.warnings)
    assert any("no line end" in w for w in log.warnings)


def test_log_cut_mid_run_fails_completeness(tmp_path: Path, controller_recipe) -> None:
    data = EVENTLOG.read_bytes()
    path = tmp_path / "cut.log"
    path.write_bytes(data[: len(data) // 2])
    log = parse_controller_log(path, ctx_for(path))
    pulses = detect_pulses(log)
    assert 25 <= len(pulses) <= 35
    report = run_checks(log, pulses, plan_from_controller_recipe(controller_recipe, 30))
    rows = {r.name: r for r in report.results}
    assert rows["run_completeness"].status == "fail"
    assert "stops after planned dose" in rows["run_completeness"].details
    assert rows["pulse_count:valve 4"].status == "fail"
