"""Anneal profile (600 degC for 2 h) and furnace-log parsing and checks on synthetic logs."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from depositions import qc
from depositions.choices import CheckStatus, SegmentKind
from depositions.furnace import parser as furnace_parser
from depositions.furnace import profile as furnace_profile
from depositions.furnace.checks import furnace_log_check
from depositions.furnace.parser import parse_furnace_log
from depositions.furnace.profile import SegmentSpec, planned_profile
from depositions.qc import CheckResult, overall_status
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
    assert series.encoding == "cp1252"  # a Western single-byte page: the ° signs read right
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
    ("data", "message", "location"),
    [
        (b"", "the file is empty", "byte 0"),
        (b"\n\n  \n", "only blank lines", "line 1"),
        (b"time (s),Temperature [\xb0C]\n", "no data rows under the header", "line 2"),
        (b"just some words\nand more\n", "no header with a time and a temperature", "lines 1-2"),
        (b"time (fortnights),T (C)\n0,25\n", "unknown time unit 'fortnights'", "line 1"),
        (b"x\ntime (s),T (R)\n0,25\n", "header ('time (s)', 'T (R)') has no time and", "line 2"),
        (b"time (s),Temp (Re)\n0,25\n", "unknown temperature unit 'RE'", "line 1"),
        (b"time (s),T (C)\n0,hot\n", "'hot' in column 'T (C)' is not a number", "line 2"),
        (b"PK\x03\x04\x00\x00binary", "binary content (byte 0x03)", "byte 2"),
        (b"time (s),T (C)\n0," + b"9" * 70_000 + b"\n", "a line longer than 65536", "line 2"),
    ],
)
def test_parser_errors_say_what_is_wrong_and_where(data, message, location):
    with pytest.raises(ParseError, match=re.escape(message)) as caught:
        parse_furnace_log(data)
    assert caught.value.location == location


def test_parser_bounds_the_rows_it_keeps(monkeypatch):
    monkeypatch.setattr(furnace_parser, "MAX_ROWS", 100)
    rows = "\n".join(f"{t},25" for t in range(101))
    with pytest.raises(ParseError, match="more than 100 rows") as caught:
        parse_furnace_log(f"time (s),T (C)\n{rows}\n".encode())
    assert caught.value.location == "line 102"


def test_clock_times_count_from_the_first_and_pass_midnight():
    text = "Date;Time;Program;Temperature [°C];Output [%]\n"
    text += "24.05.2019;23:59:00;1;600,0;40\n24.05.2019;23:59:30;1;600,5;41\n"
    text += "25.05.2019;00:00:00;1;601,0;40\n"
    series = parse_furnace_log(text.encode("cp1252"))
    assert series.times_s == [0.0, 30.0, 60.0]  # the date column makes the day
    no_date = "Time,Temperature (C)\n23:59:00,600\n23:59:30,600\n00:00:30,601\n"
    series = parse_furnace_log(no_date.encode())
    assert series.times_s == [0.0, 30.0, 90.0]
    assert "passed midnight 1 time(s)" in series.warnings[0]
    elapsed = parse_furnace_log(b"Elapsed time,TC1\n0:00:00,25\n25:30:00,600\n")
    assert elapsed.times_s == [0.0, 91800.0]


def test_date_times_iso_or_dotted_and_aware_ones_in_utc():
    iso = b"Timestamp,Temperature (C)\n2024-03-01T10:00:00+01:00,25\n2024-03-01T09:01:00Z,26\n"
    assert parse_furnace_log(iso).times_s == [0.0, 60.0]
    dotted = b"Date/Time;Temperature (C)\n01.03.2024 10:00;25\n01.03.2024 10:02;27\n"
    assert parse_furnace_log(dotted).times_s == [0.0, 120.0]


def test_utf16_and_bom_files_read_like_any_other():
    text = "time (min)\tTemperature (°C)\n0\t25\n1\t30\n"
    for encoding in ("utf-16", "utf-16-le", "utf-8-sig"):
        series = parse_furnace_log(text.encode(encoding))
        assert series.times_s == [0.0, 60.0] and series.temperatures_c == [25.0, 30.0]
        assert series.temperature_column == "Temperature (°C)", encoding


def test_time_in_days_and_fahrenheit():
    series = parse_furnace_log(b"time (d),Temperature (F)\n0,212\n0.5,32\n")
    assert series.times_s == [0.0, 43200.0]
    assert series.temperatures_c == pytest.approx([100.0, 0.0])


def test_furnace_that_never_reaches_the_dwell_fails_both_checks():
    rows = ["time (s),TC1 (C)"] + [f"{t},{min(25 + t / 12, 450):.1f}" for t in range(0, 20000, 60)]
    results, _ = check("\n".join(rows).encode())
    assert results["dwell_1_temperature"].status == "fail"
    assert "never within 600 ± 5 degC; closest 450.0 degC" in results["dwell_1_temperature"].details
    assert results["dwell_1_duration"].status == "fail"


def test_shared_check_types_add_up_to_the_worst_status():
    def r(status: str) -> CheckResult:
        return CheckResult("c", status, None, None, "")

    assert overall_status([]) == "pass"
    assert overall_status([r("pass"), r("warn")]) == "warn"
    assert overall_status([r("warn"), r("fail"), r("pass")]) == "fail"
    with pytest.raises(ValueError, match="unknown status 'ok'"):
        r("ok")


def test_pure_vocabularies_match_the_stored_choices():
    assert tuple(CheckStatus.values) == qc.STATUSES
    kinds = (furnace_profile.RAMP, furnace_profile.DWELL, furnace_profile.COOL)
    assert kinds == tuple(SegmentKind.values)


def test_profile_parser_and_checks_import_no_models():
    """They run anywhere (worker prepare phase, notebooks) without the ORM."""
    code = (
        "import sys\n"
        "import depositions.furnace.checks, depositions.furnace.parser\n"
        "import depositions.furnace.profile, depositions.qc\n"
        "bad = [m for m in sys.modules if m.startswith(('django.db', 'depositions.models',"
        " 'depositions.choices', 'depositions.aldlogs', 'cells'))]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
