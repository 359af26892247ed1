"""Anneal profile (600 degC for 2 h) and furnace-log parsing and checks on synthetic logs."""

from __future__ import annotations

import pytest

from depositions.anneal import (
    SegmentSpec,
    furnace_log_check,
    overall_status,
    parse_furnace_log,
    planned_profile,
)
from lims.ingestion.parsing import ParseError
from tests.depositions.factories import furnace_csv

LI3PO4_ANNEAL = [  # 600 degC for 2 h in O2 = ramp + dwell (+ controlled cool)
    SegmentSpec("ramp", 600.0, rate_k_per_min=5.0),
    SegmentSpec("dwell", 600.0, duration_min=120.0),
    SegmentSpec("cool", 25.0, rate_k_per_min=5.0),
]


def check(data: bytes, **kw):
    series = parse_furnace_log(data)
    profile = planned_profile(LI3PO4_ANNEAL)
    results = furnace_log_check(
        profile=profile, times_s=series.times_s, temperatures_c=series.temperatures_c, **kw
    )
    return {r.name: r for r in results}, series


def test_600c_2h_profile_is_ramp_dwell_cool():
    profile = planned_profile(LI3PO4_ANNEAL)
    points = [(p.t_s, p.temperature_c) for p in profile.points]
    assert points == [(0.0, 25.0), (6900.0, 600.0), (14100.0, 600.0), (21000.0, 25.0)]
    (dwell,) = profile.dwells
    assert (dwell.target_c, dwell.start_s, dwell.duration_s) == (600.0, 6900.0, 7200.0)
    assert profile.total_s == 21000.0


def test_ramp_by_duration_and_natural_cooling():
    profile = planned_profile(
        [
            SegmentSpec("ramp", 400.0, duration_min=60.0),
            SegmentSpec("dwell", 400.0, duration_min=30.0),
            SegmentSpec("cool", 25.0),
        ],
        start_c=20.0,
    )
    assert [p.t_s for p in profile.points] == [0.0, 3600.0, 5400.0]
    assert profile.total_s is None and "natural cooling" in profile.notes[0]


def test_dwell_without_ramp_is_refused():
    with pytest.raises(ValueError, match="add a ramp first"):
        planned_profile([SegmentSpec("dwell", 600.0, duration_min=120.0)])


def test_good_log_passes_and_reads_the_measured_column():
    results, series = check(furnace_csv())
    assert series.encoding == "latin-1"
    assert series.temperature_column == "Temperature [°C]"  # not the setpoint column
    assert results["dwell_1_duration"].status == "pass"
    assert results["dwell_1_duration"].threshold == 7200.0
    assert results["dwell_1_temperature"].status == "pass"
    assert overall_status(list(results.values())) == "pass"


def test_short_dwell_fails():
    results, _ = check(furnace_csv(hold_s=5400.0))  # 90 min instead of 120
    duration = results["dwell_1_duration"]
    assert duration.status == "fail"
    # soak time counts from entering the ±5 K band: 1 min of ramp-in and 1 min of cool-out
    assert duration.value == pytest.approx(5400.0 + 60 + 60, abs=30)
    assert overall_status(list(results.values())) == "fail"


def test_dwell_short_by_less_than_one_sample_period_warns():
    # in the band from 6840 s (595 degC on the ramp) to 13980 s: 7140 s, 60 s short = 1 period
    results, _ = check(furnace_csv(hold_s=7050.0, period_s=60))
    assert results["dwell_1_duration"].value == pytest.approx(7140.0)
    assert results["dwell_1_duration"].status == "warn"


def test_temperature_off_by_more_than_tolerance_fails_and_tolerance_is_configurable():
    results, _ = check(furnace_csv(offset_k=-8.0))
    assert results["dwell_1_temperature"].status == "fail"
    assert "mean 592.0" in results["dwell_1_temperature"].details
    assert results["dwell_1_duration"].status == "fail"  # crossed the band on the ramp only
    way_off, _ = check(furnace_csv(offset_k=-8.0), tolerance_k=1.0)
    assert way_off["dwell_1_temperature"].status == "fail"
    relaxed, _ = check(furnace_csv(offset_k=-8.0), tolerance_k=10.0)
    assert relaxed["dwell_1_temperature"].status == "pass"
    assert relaxed["dwell_1_duration"].status == "pass"


def test_a_single_excursion_warns_on_temperature_and_cuts_the_hold():
    results, _ = check(furnace_csv(dip_at_s=6900 + 3600, dip_k=-12.0))
    assert results["dwell_1_temperature"].status == "warn"  # mean still on target
    assert results["dwell_1_temperature"].value == pytest.approx(12.0)
    assert results["dwell_1_duration"].status == "fail"  # the band was left mid-dwell


def test_parser_handles_semicolons_decimal_commas_minutes_and_utf8():
    text = "Zeit [min];T (K)\n0,0;298,15\n0,5;300,15\n1,0;302,15\nbroken\n"
    series = parse_furnace_log(text.encode("utf-8"))
    assert series.times_s == [0.0, 30.0, 60.0]
    assert series.temperatures_c == pytest.approx([25.0, 27.0, 29.0])
    assert series.warnings == ["1 row(s) short or not numeric were skipped"]
    semi, _ = check(furnace_csv(sep=";", encoding="utf-8"))
    assert semi["dwell_1_duration"].status == "pass"


def test_parser_without_header_assumes_seconds_and_celsius():
    series = parse_furnace_log(b"0 25\n10 30\n20 35\n")
    assert series.times_s == [0.0, 10.0, 20.0] and series.temperatures_c == [25.0, 30.0, 35.0]
    assert "no header" in series.warnings[0]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"time (s),Temperature [\xb0C]\n", "no data rows"),
        (b"just some words\nand more\n", "no header"),
    ],
)
def test_parser_errors_say_what_is_wrong(data, message):
    with pytest.raises(ParseError, match=message):
        parse_furnace_log(data)


def test_furnace_that_never_reaches_the_dwell_fails_both_checks():
    rows = ["time (s),TC1 (C)"] + [f"{t},{min(25 + t / 12, 450):.1f}" for t in range(0, 20000, 60)]
    results, _ = check("\n".join(rows).encode())
    assert results["dwell_1_temperature"].status == "fail"
    assert "never within 600 ± 5 degC; closest 450.0 degC" in results["dwell_1_temperature"].details
    assert results["dwell_1_duration"].status == "fail"
