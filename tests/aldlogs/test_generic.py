"""The generic delimited log with a per-tool channel map, and pressure-spike pulses."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from depositions.aldlogs.checks import Thresholds, run_checks
from depositions.aldlogs.parsers.generic import GenericAldLogParser, parse_generic_log
from depositions.aldlogs.parsers.types import AldLog, Channel
from depositions.aldlogs.pulses import DetectionOptions, detect_pulses
from depositions.expansion import BlockSpec, RecipeSpec, StepSpec, SubCycleSpec
from lims.ingestion.parsing import ParseError
from tests.aldlogs.conftest import ctx_for

TORR_PER_MBAR = 100 / 133.322368

CHANNEL_MAP = {
    "time": {"column": "t", "unit": "ms"},
    "channels": [
        {"column": "P_ch", "role": "pressure", "unit": "mbar", "name": "chamber pressure"},
        {
            "column": "DO3",
            "role": "valve",
            "port": "P3",
            "physical_channel": "DO3",
            "on_threshold": 2.5,
        },
        {
            "column": "DO4",
            "role": "valve",
            "port": "P4",
            "physical_channel": "DO4",
            "on_threshold": 2.5,
        },
        {"column": "TC1", "role": "temperature", "unit": "K", "name": "reactor"},
        {"column": "QCM", "role": "qcm_mass", "unit": "µg/cm²"},
    ],
}


def _generic_copy(log: AldLog, path: Path) -> None:
    """The LabVIEW run rewritten as another tool would: ms, mbar, 0/5 V valves, K, µg/cm²."""
    s = log.series
    frame = pl.DataFrame(
        {
            "t": (s["time_s"] * 1000).round(0),
            "P_ch": (s["Chamber Pressure"] / TORR_PER_MBAR).round(5),
            "DO3": s["Mod8/do1"] * 5.0,
            "DO4": s["Mod8/do2"] * 5.0,
            "TC1": (s["Thermocouple 1"] + 273.15).round(2),
            "QCM": s["Mass"] / 1000.0,
            "comment": ["ok"] * s.height,
        }
    )
    with path.open("w", encoding="cp1252", newline="") as out:
        out.write("Tool export v2 ° degrees\nsite,Lab 1\n")
        out.write(frame.write_csv())


def test_generic_log_reads_like_the_labview_one(tmp_path: Path, labview_log: AldLog) -> None:
    path = tmp_path / "export.csv"
    _generic_copy(labview_log, path)
    parser = GenericAldLogParser()
    assert parser.sniff(path.read_bytes()[:4096], path.name) == 0.0
    log = parser.parse(
        path,
        ctx_for(path, channel_map={**CHANNEL_MAP, "valve_map": None}),
    )
    assert log.metadata["header_line"] == 3
    assert log.sample_period_s == pytest.approx(0.5, abs=1e-3)
    assert float(log.series["reactor"].median()) == pytest.approx(121.6, abs=0.2)
    assert log.series["QCM"][-1] == pytest.approx(labview_log.series["Mass"][-1])  # µg -> ng
    pulses = detect_pulses(log, source_map={"P3": "TMA", "DO4": "H2O"})
    tma = [p for p in pulses if p.source_label == "TMA"]
    h2o = [p for p in pulses if p.source_label == "H2O"]
    assert len(tma) == 80 and len(h2o) == 70
    assert {p.source for p in tma} == {"P3"}
    assert statistics.median(p.width_s for p in h2o) == pytest.approx(2.0)
    assert statistics.median(p.baseline for p in tma) == pytest.approx(1.797, abs=0.005)
    assert all(p.qcm_delta is not None for p in pulses)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda m: {k: v for k, v in m.items() if k != "time"}, "channel_map"),
        (
            lambda m: {
                **m,
                "channels": [{"column": "P_ch", "role": "pressure", "unit": "bananas"}],
            },
            "channel_map",
        ),
        (lambda m: {**m, "channels": [{"column": "P_ch", "role": "thing"}]}, "channel_map"),
        (
            lambda m: {**m, "channels": [{"column": "nope", "role": "pressure", "unit": "Torr"}]},
            "lines",
        ),
    ],
)
def test_bad_channel_maps_are_clear_errors(
    tmp_path: Path, labview_log: AldLog, mutate, where
) -> None:
    path = tmp_path / "export.csv"
    _generic_copy(labview_log, path)
    with pytest.raises(ParseError) as info:
        parse_generic_log(path, ctx_for(path), mutate(dict(CHANNEL_MAP)))
    assert info.value.location and info.value.location.startswith(where)


def test_generic_parser_without_map_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("t,p\n1,2\n")
    with pytest.raises(ParseError) as info:
        GenericAldLogParser().parse(path, ctx_for(path))
    assert info.value.location == "channel_map"


def test_line_colder_than_source_fails(tmp_path: Path) -> None:
    t = np.arange(0, 600, 1.0)
    frame = pl.DataFrame(
        {
            "time": t,
            "LiOtBu source": np.full(t.size, 160.0),
            "LiOtBu line": 175.0 - t / 20.0,  # drifts below the source after 5 min
            "P": 0.5 + 0.001 * np.sin(t),
        }
    )
    path = tmp_path / "temps.csv"
    frame.write_csv(path)
    channel_map = {
        "time": "time",
        "channels": [
            {
                "column": "LiOtBu source",
                "role": "temperature",
                "unit": "degC",
                "port": "P2",
                "zone": "source",
            },
            {
                "column": "LiOtBu line",
                "role": "temperature",
                "unit": "degC",
                "port": "P2",
                "zone": "line",
            },
            {"column": "P", "role": "pressure", "unit": "Torr"},
        ],
    }
    log = parse_generic_log(path, ctx_for(path), channel_map)
    report = run_checks(
        log, [], None, port_temperatures={"P1": (150.0, 160.0), "P2": (170.0, 165.0)}
    )
    rows = {r.name: r for r in report.results}
    assert rows["line_source_temperature:P2"].status == "fail"
    assert rows["line_source_setpoint:P1"].status == "pass"
    assert rows["line_source_setpoint:P2"].status == "fail"
    assert rows["temperature_stability:LiOtBu line"].status == "fail"  # 20 K drift
    assert rows["temperature_stability:LiOtBu source"].status == "pass"


def _spike_log(tmp_path: Path, n_cycles: int = 12) -> tuple[AldLog, RecipeSpec]:
    """1 Hz pressure, 15 ms doses: each seen only as a one-sample spike; no valve logged."""
    rng = np.random.default_rng(3)
    t = np.arange(0, 60 + n_cycles * 20.0, 1.0)
    p = 0.100 + rng.normal(0, 0.001, t.size)
    for k in range(n_cycles):
        for offset, height in ((10.0, 0.05), (20.0, 0.08)):
            i = int(30 + k * 20 + offset - 10)
            p[i] += height
            p[i + 1] += height * 0.3
    path = tmp_path / "spikes.csv"
    pl.DataFrame({"t": t, "p": p}).write_csv(path)
    log = parse_generic_log(
        path,
        ctx_for(path),
        {"time": "t", "channels": [{"column": "p", "role": "pressure", "unit": "Torr"}]},
    )

    def step(o: int, kind: str, label: str, d: float) -> StepSpec:
        return StepSpec(order=o, kind=kind, source_label=label, duration_s=d)

    spec = RecipeSpec(
        subcycles=(
            SubCycleSpec(
                "Al2O3",
                (
                    step(1, "pulse", "TMA", 0.015),
                    step(2, "purge", "", 9.985),
                    step(3, "pulse", "H2O", 0.015),
                    step(4, "purge", "", 9.985),
                ),
            ),
        ),
        blocks=(BlockSpec("Al2O3", n_cycles),),
        repeats=1,
    )
    return log, spec


def test_pressure_spikes_when_no_valve_is_logged(tmp_path: Path) -> None:
    log, spec = _spike_log(tmp_path)
    pulses = detect_pulses(log)
    assert len(pulses) == 24
    assert {p.detection for p in pulses} == {"pressure_spike"}
    assert all(p.width_uncertainty_s == pytest.approx(1.0) for p in pulses)
    report = run_checks(log, pulses, spec)
    rows = {r.name: r for r in report.results}
    assert [p.source_label for p in sorted(pulses, key=lambda p: p.start_s)][:4] == [
        "TMA",
        "H2O",
        "TMA",
        "H2O",
    ]
    assert rows["pulse_count:TMA"].status == "pass" and rows["pulse_count:H2O"].status == "pass"
    skipped = {s["name"]: s["reason"] for s in report.skipped}
    assert "pressure spikes" in skipped["pulse_width:TMA"]


def test_valve_channel_that_never_catches_a_short_dose(tmp_path: Path) -> None:
    """A valve logged at 1 Hz misses 15 ms doses: pulses come from the pressure instead."""
    log, _ = _spike_log(tmp_path)
    log.series = log.series.with_columns(pl.lit(0.0).alias("V"))
    log.channels.append(Channel("V", "valve", "1", "V", on_threshold=0.5))
    assert len(detect_pulses(log)) == 24
    only_valves = Thresholds(pulse_detection="valves").detection_options()
    assert detect_pulses(log, options=only_valves) == []
    with pytest.raises(ValueError, match="detection mode"):
        detect_pulses(log, options=DetectionOptions(mode="magic"))
