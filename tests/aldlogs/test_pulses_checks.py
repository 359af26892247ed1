"""Pulse detection, alignment and every check rule on small synthetic logs with known faults."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from depositions.aldlogs.checks import (
    AldCheck,
    CheckReport,
    DoseContext,
    Thresholds,
    overall_verdict,
    run_checks,
)
from depositions.aldlogs.parsers.types import AldLog, Channel
from depositions.aldlogs.pulses import align_to_plan, detect_pulses, planned_doses
from depositions.dose import LoadArea, required_umol
from depositions.expansion import BlockSpec, RecipeSpec, StepSpec, SubCycleSpec, iter_steps

PERIOD = 0.5


def _recipe(cycles: int, tma_s: float = 1.0, purge_s: float = 10.0) -> RecipeSpec:
    def step(o: int, kind: str, label: str, d: float) -> StepSpec:
        return StepSpec(order=o, kind=kind, source_label=label, duration_s=d)

    return RecipeSpec(
        subcycles=(
            SubCycleSpec(
                "Al2O3",
                (
                    step(1, "pulse", "TMA", tma_s),
                    step(2, "purge", "", purge_s),
                    step(3, "pulse", "H2O", 1.0),
                    step(4, "purge", "", purge_s),
                ),
            ),
        ),
        blocks=(BlockSpec("Al2O3", cycles),),
        repeats=1,
        pre_steps=(step(1, "purge", "", 10.0),),
    )


def _log(
    pulses: list[tuple[str, float, float, float]], duration: float, *, noise: float = 0.002
) -> AldLog:
    """Valve channels V1 (TMA) and V2 (H2O) at 2 Hz; each (valve, start, width, amplitude)
    opens its valve and adds a decaying pressure response of that amplitude."""
    rng = np.random.default_rng(5)
    t = np.round(np.arange(0, duration, PERIOD), 3)
    valves = {"V1": np.zeros(t.size), "V2": np.zeros(t.size)}
    p = 1.0 + rng.normal(0, noise, t.size)
    for valve, start, width, amplitude in pulses:
        valves[valve][(t >= start) & (t < start + width - 1e-9)] = 1.0
        since = t - start
        p += np.where(since >= 0, amplitude * np.exp(-np.clip(since - width, 0, None) / 1.0), 0.0)
    series = pl.DataFrame({"time_s": t, "P": p, **valves})
    return AldLog(
        series=series,
        channels=[
            Channel("P", "pressure", "Torr", "P", zone="chamber"),
            Channel("V1", "valve", "1", "V1", physical_channel="V1", on_threshold=0.5),
            Channel("V2", "valve", "1", "V2", physical_channel="V2", on_threshold=0.5),
        ],
        sample_period_s=PERIOD,
        metadata={"valve_sources": {"V1": {"label": "TMA"}, "V2": {"label": "H2O"}}},
    )


def _run(
    cycles: int,
    *,
    tma_width: float = 1.0,
    purge: float = 10.0,
    amp=lambda k: 0.1,
    skip=(),
    extra=(),
):
    cycle = 1.0 + purge + 1.0 + purge
    events = []
    for k in range(cycles):
        base = 10.0 + k * cycle
        events.append(("V1", base, tma_width, amp(k)))
        if k not in skip:
            events.append(("V2", base + 1.0 + purge, 1.0, 0.1))
    events.extend(extra)
    return _log(events, 10.0 + cycles * cycle + 5.0)


def _rows(report: CheckReport) -> dict[str, AldCheck]:
    return {r.name: r for r in report.results}


def test_widths_and_starts_from_valve_channels() -> None:
    log = _run(3)
    pulses = detect_pulses(log)
    assert [(p.source_label, p.start_s, p.width_s) for p in pulses[:2]] == [
        ("TMA", 10.0, 1.0),
        ("H2O", 21.0, 1.0),
    ]
    assert all(p.width_uncertainty_s == PERIOD for p in pulses)
    assert all(p.rise == pytest.approx(0.1, abs=0.02) for p in pulses)
    assert all(p.dead is False for p in pulses)


def test_alignment_tolerates_missing_and_extra_pulses() -> None:
    log = _run(10, skip={3}, extra=[("V1", 10.0 + 6 * 22.0 + 3.0, 1.0, 0.1)])
    pulses = detect_pulses(log)
    assert len(pulses) == 20  # 10 TMA + 1 extra TMA + 9 H2O
    alignment = align_to_plan(pulses, _recipe(10))
    assert alignment.matched == 19 and len(alignment.missing) == 1 and len(alignment.extra) == 1
    assert alignment.missing == [7]  # the H2O dose of cycle 3 (0-based planned dose 7)
    extra = next(p for p in pulses if p.index == alignment.extra[0])
    assert extra.start_s == pytest.approx(10.0 + 6 * 22.0 + 3.0) and extra.planned_index is None
    last = max(pulses, key=lambda p: p.start_s)
    assert (last.source_label, last.repetition, last.planned_index) == ("H2O", 9, 19)
    report = run_checks(log, pulses, _recipe(10), alignment=alignment)
    rows = _rows(report)
    assert rows["pulse_count:TMA"].status == "warn" and rows["pulse_count:TMA"].value == 11
    assert rows["pulse_count:H2O"].status == "warn" and rows["pulse_count:H2O"].value == 9
    assert rows["plan_alignment"].status == "warn"
    strict = run_checks(log, pulses, _recipe(10), Thresholds(count_warn=0), alignment=alignment)
    assert _rows(strict)["pulse_count:H2O"].status == "fail"


def test_plan_from_steps_equals_plan_from_spec() -> None:
    spec = _recipe(4)
    assert planned_doses(spec) == planned_doses(list(iter_steps(spec)))
    doses = planned_doses(spec)
    assert [d.purge_s for d in doses] == [10.0] * 8
    assert doses[0].start_s == 10.0 and doses[-1].repetition == 3


def test_width_and_purge_violations_fail() -> None:
    log = _run(10, tma_width=3.0, purge=5.0)
    report = run_checks(log, detect_pulses(log), _recipe(10))
    rows = _rows(report)
    assert rows["pulse_width:TMA"].status == "fail" and rows["pulse_width:TMA"].value == 3.0
    assert rows["pulse_width:H2O"].status == "pass"
    assert rows["purge_length:TMA"].status == "fail"  # 3 s of the 10 s plan after a 3 s pulse
    assert rows["purge_length:H2O"].status == "fail"
    assert report.verdict == "fail"


def test_delivery_drift() -> None:
    falling = _run(20, amp=lambda k: 0.1 * (1 - 0.035 * k))
    rows = _rows(run_checks(falling, detect_pulses(falling), _recipe(20)))
    assert rows["delivery_drift:TMA"].status == "fail" and rows["delivery_drift:TMA"].value < -0.5
    assert rows["delivery_drift:H2O"].status == "pass"
    steady = _run(20)
    rows = _rows(run_checks(steady, detect_pulses(steady), _recipe(20)))
    assert rows["delivery_drift:TMA"].status == "pass"


def test_dead_pulses_and_thresholds() -> None:
    log = _run(10, amp=lambda k: 0.0 if k in (2, 5) else 0.1)
    pulses = detect_pulses(log)
    assert [p.index for p in pulses if p.dead] == [4, 10]
    rows = _rows(run_checks(log, pulses, _recipe(10)))
    assert rows["dead_pulses:TMA"].status == "fail"  # 2 of 10 > 5 %
    lenient = Thresholds.from_dict({"dead_warn_fraction": 0.25})
    rows = _rows(run_checks(log, pulses, _recipe(10), lenient))
    assert rows["dead_pulses:TMA"].status == "warn"


def test_incomplete_purge() -> None:
    log = _run(10, purge=2.0)  # pressure still high when the next dose comes
    rows = _rows(run_checks(log, detect_pulses(log), _recipe(10, purge_s=2.0)))
    assert rows["purge_completeness:TMA"].status == "fail"


def test_no_pressure_channel_skips_pressure_checks() -> None:
    log = _run(5)
    log.series = log.series.drop("P")
    log.channels = [c for c in log.channels if c.role != "pressure"]
    report = run_checks(log, detect_pulses(log), _recipe(5))
    skipped = {s["name"]: s["reason"] for s in report.skipped}
    assert "no chamber pressure" in skipped["dead_pulses:TMA"]
    assert "delivery_drift:TMA" in skipped
    assert _rows(report)["pulse_count:TMA"].status == "pass"


def test_unplanned_valve_and_unplanned_source() -> None:
    log = _run(5, extra=[("V2", 200.0, 1.0, 0.1)])
    log.metadata["valve_sources"] = {"V1": {"label": "TMA"}}  # V2 not mapped
    report = run_checks(log, detect_pulses(log), _recipe(5))
    rows = _rows(report)
    assert rows["unplanned_valves"].status == "warn" and "V2" in rows["unplanned_valves"].details
    assert rows["pulse_count:H2O"].status == "fail"  # no valve delivered H2O
    log.metadata["valve_sources"] = {"V1": {"label": "TMA"}, "V2": {"label": "O3"}}
    rows = _rows(run_checks(log, detect_pulses(log), _recipe(5)))
    assert rows["pulse_count:O3"].status == "fail" and rows["pulse_count:O3"].threshold == 0


def test_dose_checks_against_powder_surface() -> None:
    log = _run(6)
    pulses = detect_pulses(log)
    load = LoadArea("NMC811 lot A", mass_g=10.0, bet_m2_g=0.5)
    need = required_umol(area_m2=5.0, site_density_per_m2=5e18)
    assert need == pytest.approx(41.5, abs=0.1)
    for per_pulse, expected in ((10.0, "fail"), (60.0, "warn"), (100.0, "pass")):
        ctx = DoseContext({"TMA": per_pulse, "H2O": None}, [load])
        rows = _rows(run_checks(log, pulses, _recipe(6), dose_context=ctx))
        assert rows["dose_vs_surface:TMA"].status == expected
        assert rows["total_dose:TMA"].value == pytest.approx(6 * per_pulse)
        assert rows["total_dose:TMA"].status == "pass"
    report = run_checks(log, pulses, _recipe(6), dose_context=ctx)
    assert "total_dose:H2O" in {s["name"] for s in report.skipped}


def test_thresholds_from_dict() -> None:
    th = Thresholds.from_dict(
        {"dead_k_sigma": "4", "count_warn": 0.0, "setpoint_channels": {"A": "B"}}
    )
    assert th.dead_k_sigma == 4.0 and th.count_warn == 0 and th.setpoint_channels == {"A": "B"}
    assert th.detection_options().dead_k_sigma == 4.0
    with pytest.raises(ValueError, match="dead_k_sgima"):
        Thresholds.from_dict({"dead_k_sgima": 4})
    assert Thresholds.from_dict(None) == Thresholds()


def test_verdict_rules() -> None:
    assert overall_verdict([]) == "pass"
    log = _run(3)
    report = run_checks(log, detect_pulses(log), _recipe(3))
    assert report.verdict == "pass" and report.reasons == []
    assert {s["name"] for s in report.skipped} >= {"temperature_stability", "alarms", "qcm"}


def test_every_threshold_has_a_line_of_help_for_the_editor() -> None:
    import dataclasses

    from depositions.aldlogs.checks import THRESHOLD_HELP, Thresholds

    assert set(THRESHOLD_HELP) == {f.name for f in dataclasses.fields(Thresholds)}


def test_stop_flow_fills_are_not_judged_by_a_planned_width(labview_log) -> None:
    """A fill ends when the fill pressure is reached: its planned time is no width to meet."""
    import dataclasses

    from depositions.aldlogs.checks import (
        run_checks,
    )
    from depositions.aldlogs.pulses import detect_pulses
    from tests.aldlogs.conftest import labview_recipe

    spec = labview_recipe()
    filled = tuple(
        dataclasses.replace(
            sc,
            steps=tuple(
                dataclasses.replace(st, kind="fill", duration_s=3.0)
                if st.source_label == "TMA"
                else st
                for st in sc.steps
            ),
        )
        for sc in spec.subcycles
    )
    spec = dataclasses.replace(spec, subcycles=filled)
    report = run_checks(labview_log, detect_pulses(labview_log), spec)
    skipped = {s["name"]: s["reason"] for s in report.skipped}
    assert skipped["pulse_width:TMA"].startswith("fill doses (stop-flow)")
    status = {r.name: r.status for r in report.results}
    assert status["pulse_width:H2O"] == "pass" and status["pulse_count:TMA"] == "pass"
