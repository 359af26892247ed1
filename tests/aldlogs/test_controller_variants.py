"""Other real files of the controller's formats, derived here from the fixture's text.

Real logs of that controller (other runs, other machines, other builds of the program) differ
from the synthetic fixture in line ends, code page, clock format, valve numbering, what the
file ends with and how runs were appended; its recipes get saved from spreadsheets. Each
variant must give the fixture's result (when it holds the same run) or a clear, reported
repair, or a ParseError naming the line and the cause.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from depositions.aldlogs.checks import Thresholds, run_checks
from depositions.aldlogs.parsers.controller import (
    ControllerEventLogParser,
    ControllerRecipeParser,
    parse_controller_log,
    parse_controller_recipe,
)
from depositions.aldlogs.parsers.types import AldLog, ControllerRecipe
from depositions.aldlogs.plans import plan_from_controller_recipe
from depositions.aldlogs.pulses import detect_pulses, planned_doses
from lims.ingestion.parsing import ParseError
from tests.aldlogs.conftest import EVENTLOG, RECIPE_CSV, ctx_for

TEXT = EVENTLOG.read_text(encoding="ascii")
LINES = TEXT.splitlines()
_ENTRY = re.compile(r"^(\d\d/\d\d/\d{4} \d\d:\d\d:\d\d [AP]M) (\w+)(\s+)(.*)$")
STAMP = "%m/%d/%Y %I:%M:%S %p"


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("ascii") if isinstance(data, str) else data)
    return path


def _parse(tmp_path: Path, data: bytes | str, name: str = "ALD_runtimeLog.log", **md) -> AldLog:
    path = _write(tmp_path, name, data)
    return parse_controller_log(path, ctx_for(path, **md))


def _restamp(lines: list[str], render: Callable[[datetime, int, str, str, str], str]) -> list[str]:
    """Rewrite every entry's stamp: ``render(dt, index within its second, level, pad, msg)``."""
    out: list[str] = []
    previous, k = None, 0
    for line in lines:
        match = _ENTRY.match(line)
        if not match:
            out.append(line)
            continue
        dt = datetime.strptime(match[1], STAMP)
        k = k + 1 if dt == previous else 0
        previous = dt
        out.append(render(dt, k, match[2], match[3], match[4]))
    return out


def _pressures(log: AldLog) -> list[float]:
    return log.series["chamber pressure"].to_list()


def _same_run(log: AldLog, reference: AldLog) -> None:
    assert log.series.equals(reference.series)
    assert log.events == reference.events
    assert log.metadata["run_info"] == reference.metadata["run_info"]


# --- line ends, BOM, code pages ----------------------------------------------------------


def test_crlf_bom_and_blank_lines_change_nothing(tmp_path: Path, controller_log: AldLog) -> None:
    crlf = _parse(tmp_path, TEXT.replace("\n", "\r\n"))
    _same_run(crlf, controller_log)
    assert crlf.warnings == []
    bom = _parse(tmp_path, codecs.BOM_UTF8 + TEXT.replace("\n", "\r\n").encode("ascii"))
    _same_run(bom, controller_log)
    assert bom.warnings == [] and bom.start_time == controller_log.start_time
    spaced = _parse(tmp_path, TEXT.replace("\n", "\n\n   \n"))
    _same_run(spaced, controller_log)
    assert spaced.warnings == []


def test_cp1252_free_text_is_decoded(tmp_path: Path, controller_log: AldLog) -> None:
    note = "03/14/2025 09:58:03 AM INFO     substrate heater at 150 °C, TMA bubbler 5 µl"
    lines = [LINES[0], note, *LINES[1:]]
    log = _parse(tmp_path, ("\n".join(lines) + "\n").encode("cp1252"))
    assert log.metadata["encoding"] in ("cp1252", "windows-1252")
    assert any(e.kind == "message" and "150 °C" in e.text and "5 µl" in e.text for e in log.events)
    assert log.series.equals(controller_log.series)
    assert log.warnings == []


def test_a_run_appended_from_a_cp1252_machine_after_utf8_runs(
    tmp_path: Path, controller_log: AldLog
) -> None:
    """The encoding is detected on the head: a late cp1252 line must not become U+FFFD."""
    utf8_run = TEXT.replace(
        "User asked to run",
        "bake-out done at 150 °C\n03/14/2025 09:58:10 AM INFO     User asked to run",
        1,
    )
    late = TEXT.replace("03/14/2025", "03/20/2025").replace(
        "User asked to run", "heater 150 °C\n03/20/2025 09:58:10 AM INFO     User asked to run", 1
    )
    data = utf8_run.encode("utf-8") * 3 + late.encode("cp1252")
    assert len(data) > 256 * 1024  # beyond the head the encoding is detected on
    log = _parse(tmp_path, data)
    assert log.metadata["run_index"] == 3 and log.start_time.startswith("2025-03-20")
    assert any("not valid UTF-8" in w and "cp1252" in w for w in log.warnings)
    texts = [e.text for e in log.events if e.kind == "message"]
    assert "heater 150 °C" in texts and not any("\ufffd" in t for t in texts)
    assert _pressures(log) == _pressures(controller_log)


# --- clocks --------------------------------------------------------------------------------


def _24h(dt: datetime, k: int, level: str, pad: str, msg: str) -> str:
    return f"{dt:%m/%d/%Y %H:%M:%S} {level}{pad}{msg}"


def _logging_default(dt: datetime, k: int, level: str, pad: str, msg: str) -> str:
    return f"{dt:%Y-%m-%d %H:%M:%S},{20 * k:03d} {level} {msg}"


def _dashes(dt: datetime, k: int, level: str, pad: str, msg: str) -> str:
    return f"{dt:%Y-%m-%d %H:%M:%S},{20 * k:03d} - {level} - {msg}"


def test_24_hour_clock_alone_and_mixed_with_12_hour_lines(
    tmp_path: Path, controller_log: AldLog
) -> None:
    only = _restamp(LINES, _24h)
    assert any(" 10:0" in line for line in only)
    _same_run(_parse(tmp_path, "\n".join(only) + "\n"), controller_log)
    mixed = [a if i % 2 else b for i, (a, b) in enumerate(zip(LINES, only, strict=True))]
    log = _parse(tmp_path, "\n".join(mixed) + "\n")
    _same_run(log, controller_log)
    assert log.warnings == []


def test_afternoon_run_on_a_24_hour_clock(tmp_path: Path, controller_log: AldLog) -> None:
    later = _restamp(
        LINES, lambda dt, k, lv, pad, msg: _24h(dt + timedelta(hours=6), k, lv, pad, msg)
    )
    log = _parse(tmp_path, "\n".join(later) + "\n")
    assert log.start_time == "2025-03-14T15:58:03"
    assert log.series["time_s"].equals(controller_log.series["time_s"])


@pytest.mark.parametrize("render", [_logging_default, _dashes], ids=["default", "dashes"])
def test_logging_default_format_with_milliseconds(
    tmp_path: Path, controller_log: AldLog, render
) -> None:
    log = _parse(tmp_path, "\n".join(_restamp(LINES, render)) + "\n")
    assert log.start_time == "2025-03-14T09:58:03.000"
    assert log.metadata["time_resolution_s"] == 0.001
    assert "0.001 s resolution" in log.conventions["time_s"]
    assert _pressures(log) == _pressures(controller_log)
    times = log.series["time_s"].to_numpy()
    assert (times[1:] > times[:-1]).all()
    reference = controller_log.series["time_s"].to_numpy()
    assert abs(times - reference).max() < 0.2  # ms within the second instead of 1 ms steps
    assert log.sample_period_s == pytest.approx(1.0, abs=0.05)
    pulses = detect_pulses(log)
    assert len(pulses) == 60
    assert all(p.width_uncertainty_s == 0.001 for p in pulses)
    assert all(p.dead for p in pulses if p.channel == "valve 1")
    assert not any(p.dead for p in pulses if p.channel == "valve 4")
    assert log.warnings == []


@pytest.mark.parametrize(
    ("start", "iso"),
    [
        (datetime(2025, 3, 14, 23, 55, 0), "2025-03-14T23:55:00"),  # 11:59:59 PM -> 12:00:00 AM
        (datetime(2025, 3, 14, 11, 55, 0), "2025-03-14T11:55:00"),  # 11:59:59 AM -> 12:00:00 PM
        (datetime(2025, 3, 14, 0, 0, 0), "2025-03-14T00:00:00"),  # 12:xx AM throughout
        (datetime(2025, 3, 14, 12, 0, 0), "2025-03-14T12:00:00"),  # 12:xx PM, then 1 PM
    ],
)
def test_midnight_and_noon_on_the_12_hour_clock(
    tmp_path: Path, controller_log: AldLog, start: datetime, iso: str
) -> None:
    shift = start - datetime(2025, 3, 14, 9, 58, 3)
    lines = _restamp(
        LINES, lambda dt, k, level, pad, msg: f"{dt + shift:{STAMP}} {level}{pad}{msg}"
    )
    assert any(" 12:0" in line for line in lines)
    log = _parse(tmp_path, "\n".join(lines) + "\n")
    assert log.start_time == iso
    assert log.series.equals(controller_log.series)
    assert log.warnings == []


def test_day_first_dates(tmp_path: Path, controller_log: AldLog) -> None:
    lines = _restamp(
        LINES, lambda dt, k, level, pad, msg: f"{dt:%d/%m/%Y %I:%M:%S %p} {level}{pad}{msg}"
    )
    log = _parse(tmp_path, "\n".join(lines) + "\n")
    assert log.start_time == "2025-03-14T09:58:03" and log.metadata["date_order"] == "DMY"
    assert log.series.equals(controller_log.series)
    assert any("day-first" in w for w in log.warnings)


def test_no_readable_timestamp_names_the_line(tmp_path: Path) -> None:
    bad = "\n".join(line.replace("03/14/2025", "13/45/2025") for line in LINES[:40]) + "\n"
    with pytest.raises(ParseError) as info:
        _parse(tmp_path, bad)
    assert info.value.location == "line 1" and "13/45/2025" in info.value.message
    some = [*LINES[:20], LINES[20].replace("03/14/2025", "02/30/2025"), *LINES[21:]]
    log = _parse(tmp_path, "\n".join(some) + "\n")
    assert any("unreadable timestamp" in w and "line 21" in w for w in log.warnings)


# --- appended runs -------------------------------------------------------------------------


def test_three_appended_runs_the_last_without_valves(
    tmp_path: Path, controller_log: AldLog
) -> None:
    aborted = [
        "03/16/2025 08:00:00 AM INFO     Starting a new run",
        "03/16/2025 08:00:05 AM INFO     The pressure is 0.0841",
    ]
    text = TEXT + TEXT.replace("03/14/2025", "03/15/2025") + "\n".join(aborted) + "\n"
    path = _write(tmp_path, "appended.log", text)
    log = parse_controller_log(path, ctx_for(path))
    assert [r["index"] for r in log.metadata["runs_in_file"]] == [0, 1, 2]
    assert log.metadata["run_index"] == 1 and log.start_time.startswith("2025-03-15")
    warning = next(w for w in log.warnings if "3 runs" in w)
    assert "2025-03-16 08:00:00 (0 valve commands)" in warning and "120 valve commands" in warning
    assert log.series.equals(controller_log.series)
    first = parse_controller_log(path, ctx_for(path, run_index=0))
    _same_run(first, controller_log)
    last = parse_controller_log(path, ctx_for(path, run_index=-1))
    assert last.series.height == 1 and not any(e.kind == "valve" for e in last.events)
    with pytest.raises(ParseError) as info:
        parse_controller_log(path, ctx_for(path, run_index="second"))
    assert info.value.location == "run_index"


def test_one_session_running_two_recipes(tmp_path: Path, controller_log: AldLog) -> None:
    """The program logs 'Starting a new run' once; each recipe it runs logs its array."""
    dump = [
        "03/14/2025 10:30:00 AM INFO     here is the recipe file numpy array [[-1.   -1.   1.",
        "   0.05]",
        " [-1.   -1.   -1.    1.  ]]",
    ]
    second = _restamp(
        LINES[1:],
        lambda dt, k, level, pad, msg: f"{dt + timedelta(minutes=32):{STAMP}} {level}{pad}{msg}",
    )
    log = _parse(tmp_path, "\n".join([*LINES, *dump, *second]) + "\n")
    assert len(log.metadata["runs_in_file"]) == 2 and log.metadata["run_index"] == 1
    assert log.start_time == "2025-03-14T10:30:00"
    assert log.metadata["declared_recipe"]["rows"] == [[-1.0, -1.0, 1.0, 0.05], [-1, -1, -1, 1]]
    assert log.metadata["run_info"]["started"] and log.metadata["run_info"]["loops_requested"] == 30
    assert _pressures(log) == _pressures(controller_log)
    first = _parse(tmp_path, "\n".join([*LINES, *dump, *second]) + "\n", run_index=0)
    _same_run(first, controller_log)


def test_crash_mid_line_then_a_new_run_on_the_same_line(
    tmp_path: Path, controller_log: AldLog
) -> None:
    cut = [*LINES[:800], LINES[800][:45] + LINES[0].replace("03/14/2025", "03/15/2025")]
    text = "\n".join(cut + [line.replace("03/14/2025", "03/15/2025") for line in LINES[1:]])
    log = _parse(tmp_path, text + "\n")
    assert len(log.metadata["runs_in_file"]) == 2 and log.start_time.startswith("2025-03-15")
    assert any("cut short" in w and "line 801" in w for w in log.warnings)
    _same_run(log, controller_log)


def test_copy_starting_inside_an_entry(tmp_path: Path, controller_log: AldLog) -> None:
    data = TEXT.encode("ascii")
    start = data.index(b"\n", 300) - 20  # the copy begins mid-line
    log = _parse(tmp_path, data[start:])
    assert any("before the first timestamped entry" in w and "line 1" in w for w in log.warnings)
    assert log.series.height > 700


# --- how a run ends ------------------------------------------------------------------------

TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "/home/ald/ALD_run.py", line 171, in aldRun',
    "    setVar(dataNP[j], dataNP[j-1])",
    '  File "/home/ald/ALD_run.py", line 98, in setValve',
    '    relayPort.write(("relay on"+ " "+ str(addr) + "\\n\\r").encode())',
    "serial.serialutil.SerialException: write failed: [Errno 5] Input/output error",
]


@pytest.mark.parametrize(
    "tail",
    [
        ["03/14/2025 10:04:31 AM ERROR    relay port not responding", *TRACEBACK],
        TRACEBACK,
        [
            "03/14/2025 10:04:31 AM WARNING  pressure gauge slow to answer:",
            "  retrying (2 of 3)",
            "03/14/2025 10:04:32 AM CRITICAL giving up: run aborted",
        ],
    ],
    ids=["error_and_traceback", "bare_traceback", "warning_block"],
)
def test_run_aborted_mid_way(tmp_path: Path, controller_log: AldLog, tail: list[str]) -> None:
    kept = LINES[:800]
    log = _parse(tmp_path, "\n".join(kept + tail) + "\n")
    assert log.metadata["run_info"]["finished"] is False
    readings = sum("The pressure is" in line for line in kept)
    assert log.series.equals(controller_log.series.head(readings))
    alarms = log.metadata["alarms"]
    assert alarms and alarms[-1]["level"] == "error"
    crash = next(i for i, t in enumerate(tail) if re.search(r"ERROR|CRITICAL|^Traceback", t))
    assert alarms[-1]["line"] == 801 + crash
    if "Traceback" in tail[-1] or any("Traceback" in t for t in tail):
        assert "SerialException" in alarms[-1]["text"] and "Traceback" in alarms[-1]["text"]
    assert not any("cannot belong" in w for w in log.warnings)
    pulses = detect_pulses(log)
    assert 0 < len([p for p in pulses if p.channel == "valve 4"]) < 30
    rows = {r.name: r for r in run_checks(log, pulses, None).results}
    assert rows["alarms"].status == "fail"


def test_stray_lines_after_a_reading_are_kept_and_reported(tmp_path: Path) -> None:
    lines = [*LINES[:3], "  (gauge 2 on the foreline)", *LINES[3:]]
    log = _parse(tmp_path, "\n".join(lines) + "\n")
    assert any("cannot belong" in w and "line 4" in w for w in log.warnings)
    assert any(e.text == "  (gauge 2 on the foreline)" for e in log.events)


def test_valve_open_when_the_log_ends(tmp_path: Path, controller_log: AldLog) -> None:
    last_close = max(i for i, line in enumerate(LINES) if "set valve 4to 0" in line)
    lines = LINES[:last_close] + LINES[last_close + 1 :]
    log = _parse(tmp_path, "\n".join(lines) + "\n")
    warning = next(w for w in log.warnings if "never closed" in w)
    assert "valve 4" in warning and f"line {last_close}" in warning
    (still_open,) = log.metadata["valve_commands"]["open_at_end"]
    assert still_open["valve"] == "valve 4" and still_open["line"] == last_close
    assert log.series["valve 4"][-1] == 1.0
    pulses = [p for p in detect_pulses(log) if p.channel == "valve 4"]
    assert len(pulses) == 30
    assert pulses[-1].flags == ["open_at_log_end"]
    end = max(e.time_s for e in log.events)
    assert pulses[-1].width_s == pytest.approx(end - still_open["opened_s"])


def test_repeated_open_commands(tmp_path: Path, controller_log: AldLog) -> None:
    first_open = next(i for i, line in enumerate(LINES) if "set valve 4to 1" in line)
    lines = [*LINES[: first_open + 1], LINES[first_open], *LINES[first_open + 1 :]]
    log = _parse(tmp_path, "\n".join(lines) + "\n")
    assert any("already open" in w and f"line {first_open + 2}" in w for w in log.warnings)
    assert log.metadata["valve_commands"]["repeated_open"] == 1
    pulses = detect_pulses(log)
    reference = detect_pulses(controller_log)
    assert len(pulses) == len(reference) == 60
    assert [p.start_s for p in pulses if p.channel == "valve 1"] == [
        p.start_s for p in reference if p.channel == "valve 1"
    ]


# --- valves and readings -------------------------------------------------------------------


def test_two_digit_and_zero_padded_valve_numbers(tmp_path: Path, controller_log: AldLog) -> None:
    text = TEXT.replace("set valve 1to", "set valve 11 to").replace(
        "set valve 4to", "set valve 12to"
    )
    log = _parse(tmp_path, text)
    assert [c.name for c in log.by_role("valve")] == ["valve 11", "valve 12"]
    assert [c.port for c in log.by_role("valve")] == ["11", "12"]
    pulses = detect_pulses(log)
    assert sum(p.channel == "valve 11" and p.dead for p in pulses) == 30
    assert sum(p.channel == "valve 12" and not p.dead for p in pulses) == 30
    padded = _parse(tmp_path, TEXT.replace("set valve 4to", "set valve 04to"))
    assert [c.name for c in padded.by_role("valve")] == ["valve 1", "valve 4"]

    def key(log: AldLog) -> list[tuple]:
        return [(e.time_s, e.kind, e.channel, e.value) for e in log.events]

    assert key(padded) == key(controller_log)
    assert padded.series.equals(controller_log.series)


def test_valve_without_a_relay_address(tmp_path: Path) -> None:
    """The controller's address table has empty entries: 'set valve to 1'."""
    log = _parse(tmp_path, TEXT.replace("set valve 1to", "set valve to"))
    assert [c.name for c in log.by_role("valve")] == ["valve 4", "valve ?"]
    assert any("name no valve" in w and "'valve ?'" in w for w in log.warnings)
    assert sum(p.channel == "valve ?" for p in detect_pulses(log)) == 30


def test_unreadable_valve_and_pressure_values_are_reported(tmp_path: Path) -> None:
    first = next(i for i, line in enumerate(LINES) if "set valve 4to 1" in line)
    lines = list(LINES)
    lines[first] = lines[first].replace("4to 1", "4to None")
    lines[2] = lines[2].replace("is 0.084", "is error ")
    log = _parse(tmp_path, "\n".join(lines) + "\n")
    assert any("unreadable values" in w and "first: line 3" in w for w in log.warnings)
    assert sum(e.kind == "valve" for e in log.events) == 119


@pytest.mark.parametrize(
    ("render", "unit"),
    [
        (lambda p: f"{p:.6e}", None),
        (lambda p: f"{p:.6E} Torr", "Torr"),
        (lambda p: f"{p * 1000:.6f} mTorr", "mTorr"),
        (lambda p: f"{p * 133.322368:.8g}Pa", "Pa"),
        (lambda p: f"{p * 1.33322368:.8g} mbar.", "mbar"),
        (lambda p: f"[{p:.10f}]", None),
    ],
    ids=["sci", "sci_torr", "mtorr", "pa", "mbar", "numpy_array"],
)
def test_pressure_notations_and_units(
    tmp_path: Path, controller_log: AldLog, render, unit: str | None
) -> None:
    text = re.sub(
        r"The pressure is (\S+)", lambda m: f"The pressure is {render(float(m[1]))}", TEXT
    )
    log = _parse(tmp_path, text)
    assert log.series.height == controller_log.series.height
    got = log.series["chamber pressure"].to_numpy()
    want = controller_log.series["chamber pressure"].to_numpy()
    assert abs(got / want - 1).max() < 1e-5
    assert log.channels[0].raw_unit == (unit or "Torr")
    assert log.warnings == []
    if unit:
        assert log.metadata["pressure_units_written"] == {unit: 750}


def test_pressure_units_that_disagree(tmp_path: Path, controller_log: AldLog) -> None:
    torr = re.sub(r"The pressure is (\S+)", r"The pressure is \1 Torr", TEXT)
    log = _parse(tmp_path, torr, pressure_unit="Pa")
    assert any("pressure_unit is 'Pa'" in w for w in log.warnings)
    assert _pressures(log) == _pressures(controller_log)  # the line's unit wins
    odd = re.sub(r"The pressure is (\S+)", r"The pressure is \1 furlongs", TEXT, count=3)
    log = _parse(tmp_path, odd)
    assert log.series.height == 747
    assert any("'furlongs'" in w and "line 3" in w for w in log.warnings)
    assert not any("without a unit" in w for w in log.warnings)  # no unit was known


def test_abbreviated_numpy_dump_is_not_a_declared_recipe(tmp_path: Path) -> None:
    lines = [
        LINES[0],
        "03/14/2025 09:58:04 AM INFO     here is the recipe file numpy array "
        "[[-1. -1. ... -1.  0.05]",
        " [-1. -1. ... -1.  1.  ]",
        " ...",
        " [-1. -1. ... -1.  1.  ]]",
        *LINES[1:],
    ]
    log = _parse(tmp_path, "\n".join(lines) + "\n")
    assert "declared_recipe" not in log.metadata
    assert any("abbreviated" in w and "line 2" in w for w in log.warnings)


# --- files cut during the copy ---------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.13, 0.5, 0.77, 0.999])
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_file_cut_mid_line(
    tmp_path: Path, controller_log: AldLog, fraction: float, newline: str
) -> None:
    data = TEXT.replace("\n", newline).encode("ascii")
    cut = data[: int(len(data) * fraction)]
    if cut.endswith(b"\n"):
        cut = cut[:-1]
    log = _parse(tmp_path, cut)
    complete = cut[: cut.rfind(b"\n") + 1].decode("ascii")
    readings = complete.count("The pressure is")
    assert any("no line end" in w for w in log.warnings)
    assert log.series.select("time_s", "chamber pressure").equals(
        controller_log.series.head(readings).select("time_s", "chamber pressure")
    )


# --- recipe CSVs ---------------------------------------------------------------------------


def _recipe_text() -> str:
    return RECIPE_CSV.read_text(encoding="ascii")


def _same_recipe(recipe: ControllerRecipe, reference: ControllerRecipe) -> None:
    assert recipe.columns == reference.columns and recipe.delay_column == reference.delay_column
    assert [r.values for r in recipe.rows] == [r.values for r in reference.rows]
    assert [r.delay_s for r in recipe.rows] == pytest.approx([r.delay_s for r in reference.rows])


def test_recipe_saved_by_a_european_spreadsheet(
    tmp_path: Path, controller_recipe: ControllerRecipe
) -> None:
    """UTF-8 BOM, ';' separators, decimal commas, CRLF, blank and delimiter-only rows."""
    lines = [line.replace(",", ";").replace("0.05", "0,05") for line in _recipe_text().splitlines()]
    lines += [";" * 14, ";" * 14, "", ""]
    data = codecs.BOM_UTF8 + "\r\n".join(lines).encode("utf-8")
    path = _write(tmp_path, "recipe.csv", data)
    recipe = parse_controller_recipe(path, ctx_for(path))
    _same_recipe(recipe, controller_recipe)
    assert recipe.raw_columns.count("mfcArMo") == 2 and "mfcArMo_2" in recipe.columns
    assert any("mfcArMo_2" in w for w in recipe.warnings)
    assert any("decimal commas" in w and "line 2" in w and "'0,05'" in w for w in recipe.warnings)
    assert any("2 rows without any value" in w for w in recipe.warnings)
    plan = plan_from_controller_recipe(recipe, 30)
    assert plan == plan_from_controller_recipe(controller_recipe, 30)


def test_recipe_delay_in_ms_and_other_units(
    tmp_path: Path, controller_recipe: ControllerRecipe
) -> None:
    lines = _recipe_text().splitlines()
    body = [line.rsplit(",", 1) for line in lines[1:]]
    ms = [lines[0].replace("delay(s)", "delay(ms)")] + [
        f"{head},{float(delay) * 1000:g}" for head, delay in body
    ]
    path = _write(tmp_path, "recipe_ms.csv", "\n".join(ms) + "\n")
    recipe = parse_controller_recipe(path, ctx_for(path))
    assert recipe.delay_column == "delay(ms)" and recipe.rows[0].delay_s == pytest.approx(0.05)
    assert [r.delay_s for r in recipe.rows] == pytest.approx(
        [r.delay_s for r in controller_recipe.rows]
    )
    bad = _write(
        tmp_path, "recipe_bad.csv", "\n".join([lines[0].replace("(s)", "(ticks)"), *lines[1:]])
    )
    with pytest.raises(ParseError) as info:
        parse_controller_recipe(bad, ctx_for(bad))
    assert info.value.location == "line 1" and "ticks" in info.value.message


def test_recipe_with_trailing_delimiters_tabs_and_quotes(
    tmp_path: Path, controller_recipe: ControllerRecipe
) -> None:
    lines = _recipe_text().splitlines()
    trailing = _write(tmp_path, "t.csv", "\n".join(line + ",," for line in lines) + "\n")
    recipe = parse_controller_recipe(trailing, ctx_for(trailing))
    _same_recipe(recipe, controller_recipe)
    assert any("2 empty unnamed columns" in w for w in recipe.warnings)
    tabs = _write(tmp_path, "t.tsv", "\n".join(line.replace(",", "\t") for line in lines))
    _same_recipe(parse_controller_recipe(tabs, ctx_for(tabs)), controller_recipe)
    quoted = [lines[0]] + [line.replace("0.05", '"0,05"') for line in lines[1:]]
    path = _write(tmp_path, "q.csv", "\n".join(quoted) + "\n")
    recipe = parse_controller_recipe(path, ctx_for(path))
    _same_recipe(recipe, controller_recipe)
    assert any("decimal commas" in w for w in recipe.warnings)


def test_recipe_rows_the_controller_could_not_run(tmp_path: Path) -> None:
    lines = _recipe_text().splitlines()
    nan = [*lines[:3], lines[3].replace("-1,", "nan,", 1), *lines[4:]]
    path = _write(tmp_path, "nan.csv", "\n".join(nan) + "\n")
    with pytest.raises(ParseError) as info:
        parse_controller_recipe(path, ctx_for(path))
    assert info.value.location == "line 4" and "mfcAr" in info.value.message
    extra = [*lines[:5], lines[5] + ",7", *lines[6:]]
    path = _write(tmp_path, "extra.csv", "\n".join(extra) + "\n")
    recipe = parse_controller_recipe(path, ctx_for(path))
    assert any("beyond the 15 named columns" in w and "6" in w for w in recipe.warnings)
    assert len(recipe.rows) == 25


def test_sniffers_still_recognise_the_variants(tmp_path: Path) -> None:
    lines = _restamp(LINES, _logging_default)
    head = ("\n".join(lines[:60]) + "\n").encode("ascii")
    assert ControllerEventLogParser().sniff(head, "x.log") > 0.9
    crlf = codecs.BOM_UTF8 + TEXT[:4000].replace("\n", "\r\n").encode("ascii")
    assert ControllerEventLogParser().sniff(crlf, "x.log") > 0.9
    recipe = codecs.BOM_UTF8 + _recipe_text().replace(",", ";").encode("ascii")
    assert ControllerRecipeParser().sniff(recipe, "r.csv") > 0.5


# --- how the real controller times a valve pulse -----------------------------------------------
#
# The program opens the valve (logged), sleeps the row's delay (not logged), closes it (logged),
# and only then, except on a loop's first row, logs "going to sleep for X" and sleeps X again.
# With a 1 s clock the open and the close usually share a stamp. The excerpts below are short
# synthetic runs in that line format: a 4-row recipe (valve 2 for 0.1 s, 1 s, valve 3 for 0.1 s,
# 1 s), run twice, printed as the program prints it.

_DAY = "07/26/2024"


def _at(clock: str, msg: str, level: str = "INFO") -> str:
    return f"{_DAY} {clock} PM {level:<8} {msg}"


def _array_row(cells: dict[int, float], delay: float, nan: bool = False) -> str:
    row = ["nan" if nan and i < 3 else f"{cells.get(i, -1.0):g}." for i in range(14)]
    return "[" + "  ".join(row) + f"  {delay:g}]"


_ARRAY = [
    _array_row({7: 1.0}, 0.1),
    _array_row({}, 1.0),
    _array_row({8: 1.0}, 0.1),
    _array_row({}, 1.0),
]


def _timed_run(
    array: list[str] | None = _ARRAY, close_2nd_loop_valve_3: str = "12:48:24"
) -> list[str]:
    head = [_at("12:48:11", "Starting a new run")]
    if array is not None:
        head += [
            _at("12:48:20", "here is the recipe file numpy array [" + array[0]),
            *(" " + row for row in array[1:-1]),
            " " + array[-1] + "]",
        ]
    return [
        *head,
        _at("12:48:20", "User asked to run the loops this many times 2"),
        _at("12:48:20", "The pressure is 0.1185"),
        _at("12:48:20", "The pressure is 0.1185"),  # loop 1, row 1
        _at("12:48:20", "set valve 2to 1"),
        _at("12:48:20", "set valve 2to 0"),
        _at("12:48:20", "The pressure is 0.1230"),  # row 2
        _at("12:48:20", "going to sleep for 1.0 seconds"),
        _at("12:48:21", "The pressure is 0.1192"),  # row 3
        _at("12:48:21", "set valve 3to 1"),
        _at("12:48:21", "set valve 3to 0"),
        _at("12:48:21", "going to sleep for 0.1 seconds"),
        _at("12:48:21", "The pressure is 0.7260"),  # row 4
        _at("12:48:21", "going to sleep for 1.0 seconds"),
        _at("12:48:22", "The pressure is 0.3097"),  # loop 2, row 1
        _at("12:48:22", "set valve 2to 1"),
        _at("12:48:23", "set valve 2to 0"),  # the sleep ran over a second boundary
        _at("12:48:23", "The pressure is 0.1292"),
        _at("12:48:23", "going to sleep for 1.0 seconds"),
        _at("12:48:24", "The pressure is 0.1275"),
        _at("12:48:24", "set valve 3to 1"),
        _at(close_2nd_loop_valve_3, "set valve 3to 0"),
        _at(close_2nd_loop_valve_3, "going to sleep for 0.1 seconds"),
        _at(close_2nd_loop_valve_3, "The pressure is 0.9120"),
        _at(close_2nd_loop_valve_3, "going to sleep for 1.0 seconds"),
        _at("12:48:30", "The pressure is 0.1301"),
    ]


def _valve_times(log: AldLog, valve: str) -> list[float]:
    return [e.time_s for e in log.events if e.kind == "valve" and e.channel == valve]


def test_unlogged_pulse_sleep_is_placed_from_the_printed_recipe(tmp_path: Path) -> None:
    log = _parse(tmp_path, "\n".join(_timed_run()) + "\n")
    assert log.warnings == []
    for valve in ("valve 2", "valve 3"):
        times = _valve_times(log, valve)
        assert [round(b - a, 6) for a, b in zip(times[::2], times[1::2], strict=True)] == [
            0.1,
            0.1,
        ]
    # the reading logged after a close in the same second is taken after the close
    opened, close = _valve_times(log, "valve 2")[:2]
    readings = [e.time_s for e in log.events if e.kind == "pressure"]
    assert min(t for t in readings if t > opened) > close  # no reading inside the pulse
    assert min(t for t in readings if t > close) - close < 0.01
    # a close stamped one second after its open: the open is put the delay before the close
    opened, closed = _valve_times(log, "valve 2")[2:]
    assert closed == 12.0  # 12:48:23, 12 s after the start marker
    assert round(closed - opened, 6) == 0.1  # was 12:48:22.001
    commands = log.metadata["valve_commands"]
    assert commands["back_to_back"] == 4
    assert commands["back_to_back_across_ticks"] == 1
    assert commands["width_from_recipe"] == 4
    assert "without logging it" in log.conventions["valves"]
    pulses = detect_pulses(log)
    assert sorted(round(p.width_s, 6) for p in pulses) == [0.1] * 4
    assert log.series["time_s"].is_sorted()


def test_unlogged_pulse_sleep_without_a_printed_recipe_keeps_the_stamps(tmp_path: Path) -> None:
    log = _parse(tmp_path, "\n".join(_timed_run(array=None)) + "\n")
    widths = sorted(round(p.width_s, 3) for p in detect_pulses(log))
    assert widths == [0.001, 0.001, 0.001, 0.999]  # the clock's order of lines, not a width
    assert log.metadata["valve_commands"]["width_from_recipe"] == 0
    assert "known to 1 s only" in log.conventions["valves"]
    assert all(p.width_uncertainty_s == 1.0 for p in detect_pulses(log))


def test_pulse_longer_than_the_printed_delay_keeps_its_stamps(tmp_path: Path) -> None:
    log = _parse(tmp_path, "\n".join(_timed_run(close_2nd_loop_valve_3="12:48:27")) + "\n")
    assert any(
        "1 valve pulses last longer" in w and "valve 3" in w and "at least 2 s vs 0.1 s" in w
        for w in log.warnings
    )
    widths = sorted(round(p.width_s, 3) for p in detect_pulses(log) if p.channel == "valve 3")
    assert widths[0] == 0.1 and widths[1] > 2.9
    recipe = _recipe_from(tmp_path, _RECIPE_CSV)
    pulses = detect_pulses(log)
    report = run_checks(log, pulses, plan_from_controller_recipe(recipe, 2))
    width = {r.name: r for r in report.results}["pulse_width:valve 3"]
    assert width.status == "fail" and "1 of 2 outside" in width.details


def test_valve_pulsed_with_two_delays_keeps_its_stamps(tmp_path: Path) -> None:
    array = [_ARRAY[0], _ARRAY[1], _array_row({7: 0.0, 8: 1.0}, 0.1), _array_row({7: 1.0}, 0.5)]
    log = _parse(tmp_path, "\n".join(_timed_run(array)) + "\n")
    assert log.metadata["valve_commands"]["width_from_recipe"] == 2  # valve 3 only
    widths = {p.channel: round(p.width_s, 3) for p in detect_pulses(log)}
    assert widths == {"valve 2": 0.999, "valve 3": 0.1}  # last pulse of each


def test_printed_recipe_with_blank_cells(tmp_path: Path) -> None:
    """A blank CSV cell prints as nan; the program stops at that row (int(nan) fails)."""
    array = [_ARRAY[0], _ARRAY[1], _array_row({8: 1.0}, 0.1, nan=True), _ARRAY[3]]
    log = _parse(tmp_path, "\n".join(_timed_run(array)) + "\n")
    rows = log.metadata["declared_recipe"]["rows"]
    assert len(rows) == 4 and rows[2][:4] == [None, None, None, -1.0]
    assert any("blank cells ('nan') in 1 rows (first: row 3)" in w for w in log.warnings)
    widths = {p.channel: round(p.width_s, 3) for p in detect_pulses(log)}
    assert widths["valve 2"] == 0.1 and widths["valve 3"] == 0.001  # valve 3: never reached


def test_zero_in_a_valve_column_is_a_wait_between_two_closes(tmp_path: Path) -> None:
    lines = [
        _at("05:01:46", "Starting a new run"),
        _at("05:01:46", "User asked to run the loops this many times 1"),
        _at("05:01:47", "The pressure is 0.0364"),
        _at("05:01:47", "set valve 2to 1"),
        _at("05:01:47", "set valve 2to 0"),
        _at("05:01:47", "The pressure is 0.0364"),
        _at("05:01:47", "set valve 2to 0"),  # row 2 writes 0: close, 10 s unlogged, close
        _at("05:01:57", "set valve 2to 0"),
        _at("05:01:57", "going to sleep for 10.0 seconds"),
        _at("05:02:07", "The pressure is 0.0365"),
    ]
    log = _parse(tmp_path, "\n".join(lines) + "\n")
    commands = log.metadata["valve_commands"]
    assert commands["back_to_back"] == 1 and commands["closed_while_closed"] == 2
    assert len(detect_pulses(log)) == 1


_HEADER = (
    "mfcAr,mfcN2,mfcArMo,mfcH2,plasmaaddr,plasmaset,aldv1,aldv2,aldv3,aldv4,"
    "mfcArMo,mfcv2,mfcv3,mfcv4,delay(s)"
)


def _csv_row(cells: dict[int, str], delay: str) -> str:
    return ",".join([cells.get(i, "-1") for i in range(14)] + [delay])


_RECIPE_CSV = "\n".join(
    [
        _HEADER,
        _csv_row({7: "1"}, "0.1"),
        _csv_row({}, "1"),
        _csv_row({8: "1"}, "0.1"),
        _csv_row({}, "1"),
    ]
)


def _recipe_from(tmp_path: Path, text: str) -> ControllerRecipe:
    path = _write(tmp_path, "recipe.csv", text + "\n")
    return parse_controller_recipe(path, ctx_for(path))


def test_plan_follows_the_controller_row_by_row(tmp_path: Path) -> None:
    recipe = _recipe_from(
        tmp_path,
        "\n".join(
            [
                _HEADER,
                _csv_row({7: "1"}, "0.1"),  # loop's first row: pulse, no sleep after it
                _csv_row({7: "1"}, "0.5"),  # same value as above: not set again, 0.5 s sleep
                _csv_row({7: "0"}, "2"),  # 0: close, 2 s, close, then 2 s: a 4 s wait
                _csv_row({}, "1"),
                _csv_row({8: "1.5"}, "0.1"),  # integer part 1: a pulse, then 0.1 s
                _csv_row({8: "0.5"}, "0.3"),  # integer part 0: a 0.3 + 0.3 s wait
            ]
        ),
    )
    plan = plan_from_controller_recipe(recipe, 2)
    doses = [
        (s.supercycle, s.source_label, s.start_s, s.duration_s) for s in plan if s.kind == "pulse"
    ]
    assert doses == [
        (0, "valve 2", 0.0, 0.1),
        (0, "valve 3", 5.6, 0.1),
        (1, "valve 2", 6.4, 0.1),  # 0.1 + 0.5 + 4 + 1 + 0.2 + 0.6 = 6.4 s a loop
        (1, "valve 3", 12.0, 0.1),
    ]
    assert {s.source_label for s in plan if s.kind == "purge"} == {""}
    doses_planned = planned_doses(plan)
    assert [d.purge_s for d in doses_planned][:2] == pytest.approx([5.5, 0.7])
    idle = _recipe_from(tmp_path, "\n".join([_HEADER, _csv_row({}, "0.1"), _csv_row({}, "0.1")]))
    steps = plan_from_controller_recipe(idle, 3)
    assert sum(s.duration_s for s in steps) == pytest.approx(0.3)  # first rows take no time


def test_real_run_shape_checks_widths_against_the_plan(tmp_path: Path) -> None:
    log = _parse(tmp_path, "\n".join(_timed_run()) + "\n")
    recipe = _recipe_from(tmp_path, _RECIPE_CSV)
    plan = plan_from_controller_recipe(recipe, log.metadata["run_info"]["loops_requested"])
    pulses = detect_pulses(log)
    tight = Thresholds.from_dict({"width_tolerance_s": 0.02})
    report = run_checks(log, pulses, plan, tight)
    rows = {r.name: r for r in report.results}
    for valve in ("valve 2", "valve 3"):
        assert rows[f"pulse_count:{valve}"].status == "pass"
        assert rows[f"pulse_width:{valve}"].status == "pass"
        assert rows[f"pulse_width:{valve}"].value == pytest.approx(0.1)
    purge = rows["purge_length:valve 3"]
    assert purge.threshold == pytest.approx(1.1)  # the 0.1 s sleep after the close + 1 s


def test_recipe_header_without_the_delay_name(tmp_path: Path) -> None:
    """An early recipe: 14 names, 15 values a row (the delay unnamed), spaces after commas."""
    text = "\n".join(
        [
            "mfc1, mfc2, mfc3, mfc4, plasmaaddr,plasmaset,aldv1,aldv2,aldv3,aldv4,"
            "mfcv1,mfcv2,mfcv3,mfcv4",
            _csv_row({6: "1"}, "1"),
            _csv_row({6: "0"}, "5"),
        ]
    )
    path = _write(tmp_path, "recipe", text)  # no line end after the last row either
    recipe = parse_controller_recipe(path, ctx_for(path))
    assert recipe.delay_column == "delay" and [r.delay_s for r in recipe.rows] == [1.0, 5.0]
    assert len(recipe.raw_columns) == 14 and recipe.raw_columns[0] == "mfc1"
    assert any("one value more than the 14 names" in w for w in recipe.warnings)
    assert not any("beyond the" in w for w in recipe.warnings)


def test_recipe_blank_cells_are_reported(tmp_path: Path) -> None:
    text = "\n".join([_HEADER, _csv_row({7: "1"}, "0.1"), _csv_row({0: "", 1: ""}, "2")])
    recipe = _recipe_from(tmp_path, text)
    assert recipe.rows[1].values["mfcAr"] is None
    assert any(
        "2 blank cells (first: line 3, column 'mfcAr')" in w and "stops the run" in w
        for w in recipe.warnings
    )
