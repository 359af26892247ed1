"""Broken, truncated and re-encoded logs: a clear ParseError with a location, or a correct
parse with warnings; never another exception. Broken files are made here from the fixtures."""

from __future__ import annotations

import codecs
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from depositions.aldlogs.checks import run_checks
from depositions.aldlogs.parsers.controller import parse_controller_log, parse_controller_recipe
from depositions.aldlogs.parsers.labview import (
    parse_doses_table,
    parse_execution_table,
    parse_labview_datalog,
    parse_summary,
)
from depositions.aldlogs.parsers.types import AldLog
from depositions.aldlogs.pulses import detect_pulses
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.registry import all_parsers
from tests.aldlogs.conftest import (
    DATALOG,
    DOSES,
    EVENTLOG,
    EXECUTION,
    RECIPE_CSV,
    SUMMARY,
    ctx_for,
)

ALD_PARSERS = sorted((p for p in all_parsers() if p.kind == "ald_log"), key=lambda p: p.name)
GENERIC_MAP = {
    "time": {"column": "Elapsed Time [s]", "unit": "s"},
    "channels": [{"column": "Chamber Pressure [Torr]", "role": "pressure", "unit": "Torr"}],
}


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _garbage(tmp_path: Path) -> Path:
    rng = random.Random(11)
    return _write(tmp_path, "garbage.bin", bytes(rng.randrange(256) for _ in range(20000)))


def _random_text(tmp_path: Path) -> Path:
    rng = random.Random(12)
    words = ["alpha", "12.5", "\t", ",", "\n", "x;y", "NaN", "--", "é"]
    text = "".join(rng.choice(words) for _ in range(5000))
    return _write(tmp_path, "noise.txt", text.encode("utf-8"))


def _empty(tmp_path: Path) -> Path:
    return _write(tmp_path, "empty.txt", b"")


def _stub(tmp_path: Path) -> Path:
    head = b"".join(DATALOG.read_bytes().splitlines(keepends=True)[:2])
    return _write(tmp_path, "stub_DataLog.txt", head)


def _png(tmp_path: Path) -> Path:
    return _write(tmp_path, "plot.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))


BROKEN: list[Callable[[Path], Path]] = [_garbage, _random_text, _empty, _stub, _png]


@pytest.mark.parametrize("parser", ALD_PARSERS, ids=lambda p: p.name)
@pytest.mark.parametrize("make", BROKEN, ids=lambda f: f.__name__.strip("_"))
def test_broken_files_raise_parse_error_with_location(tmp_path: Path, parser, make) -> None:
    path = make(tmp_path)
    ctx = ParseContext(filename=path.name, metadata={"channel_map": GENERIC_MAP})
    try:
        parser.parse(path, ctx)
    except ParseError as exc:
        assert exc.message and exc.location, exc
    # a parse that succeeds must be on content it can read (checked per format below)


def test_empty_and_stub_messages(tmp_path: Path) -> None:
    with pytest.raises(ParseError) as info:
        parse_labview_datalog(_empty(tmp_path), ParseContext(filename="empty.txt"))
    assert info.value.location == "byte 0"
    stub = _stub(tmp_path)
    with pytest.raises(ParseError) as info:
        parse_labview_datalog(stub, ctx_for(stub))
    assert "header only" in info.value.message and info.value.location == "line 3"
    with pytest.raises(ParseError) as info:
        parse_labview_datalog(_png(tmp_path), ParseContext(filename="plot.png"))
    assert "binary" in info.value.message and info.value.location.startswith("byte offset")


def test_truncated_datalog_is_parsed_up_to_the_cut(tmp_path: Path, datalog_only: AldLog) -> None:
    data = DATALOG.read_bytes()
    cut = data[: int(len(data) * 0.6)]
    assert not cut.endswith(b"\n")
    path = _write(tmp_path, "cut_DataLog.txt", cut)
    log = parse_labview_datalog(path, ctx_for(path))
    complete_rows = cut.count(b"\n") - 2  # title + header lines
    assert log.series.height == complete_rows
    assert any("cut" in w for w in log.warnings)
    assert log.series.equals(datalog_only.series.head(complete_rows))
    pulses = detect_pulses(log)
    assert 0 < len(pulses) < 150


def test_truncated_inside_the_header(tmp_path: Path) -> None:
    path = _write(tmp_path, "cut.txt", DATALOG.read_bytes()[:150])
    with pytest.raises(ParseError) as info:
        parse_labview_datalog(path, ctx_for(path))
    assert info.value.location


def _utf16(path: Path, tmp_path: Path) -> Path:
    text = path.read_bytes().decode("latin-1")
    return _write(tmp_path, path.name, codecs.BOM_UTF16_LE + text.encode("utf-16-le"))


def test_utf16_copies_parse_identically(
    tmp_path: Path, datalog_only: AldLog, controller_log
) -> None:
    log = parse_labview_datalog(_utf16(DATALOG, tmp_path), ctx_for(DATALOG))
    assert log.metadata["encoding"].startswith("utf-16")
    assert log.series.equals(datalog_only.series)
    assert [c.name for c in log.channels] == [c.name for c in datalog_only.channels]
    event = parse_controller_log(_utf16(EVENTLOG, tmp_path), ctx_for(EVENTLOG))
    assert event.series.equals(controller_log.series)
    doses = parse_doses_table(_utf16(DOSES, tmp_path), ctx_for(DOSES))
    assert doses.doses_per_precursor() == {"TMA": 80, "H2O": 70}
    summary = parse_summary(_utf16(SUMMARY, tmp_path), ctx_for(SUMMARY))
    assert summary.setpoints["Furnace Temp"]["value"] == 425.0
    table = parse_execution_table(_utf16(EXECUTION, tmp_path), ctx_for(EXECUTION))
    assert len(table.steps) == 154
    recipe = parse_controller_recipe(_utf16(RECIPE_CSV, tmp_path), ctx_for(RECIPE_CSV))
    assert len(recipe.rows) == 25


def test_latin1_degree_sign_and_kelvin(tmp_path: Path, datalog_only: AldLog) -> None:
    data = DATALOG.read_bytes()
    degree = _write(tmp_path, "deg_DataLog.txt", data.replace(b"[\xbaC]", b"[\xb0C]"))
    log = parse_labview_datalog(degree, ctx_for(degree))
    assert [c.name for c in log.by_role("temperature")] == [
        f"Thermocouple {k}" for k in range(1, 5)
    ]
    assert log.series["Thermocouple 1"].equals(datalog_only.series["Thermocouple 1"])
    kelvin = _write(
        tmp_path, "k_DataLog.txt", data.replace(b"Thermocouple 1 [\xbaC]", b"Thermocouple 1 [K]")
    )
    log = parse_labview_datalog(kelvin, ctx_for(kelvin))
    assert log.channel("Thermocouple 1").raw_unit == "K"
    delta = (datalog_only.series["Thermocouple 1"] - log.series["Thermocouple 1"]).abs().max()
    assert delta == pytest.approx(273.15)


def test_wrong_declared_encoding_is_corrected_with_a_warning(datalog_only: AldLog) -> None:
    ctx = ParseContext(filename=DATALOG.name, encoding="utf-8")
    log = parse_labview_datalog(DATALOG, ctx)
    assert any("does not decode" in w for w in log.warnings)
    assert log.series.equals(datalog_only.series)


def test_short_rows_gaps_backwards_time_and_bad_cells(tmp_path: Path) -> None:
    lines = DATALOG.read_bytes().split(b"\n")
    body = lines[2:]
    body[20] = b"\t".join(body[20].split(b"\t")[:20])  # row shorter than the header
    body[40] = body[40].replace(b"\t 1.7", b"\t abc", 1)  # unreadable cell
    body[60], body[61] = body[61], body[60]  # time going backwards once
    del body[200:300]  # 50 s gap
    path = _write(tmp_path, "broken_DataLog.txt", b"\n".join(lines[:2] + body))
    log = parse_labview_datalog(path, ctx_for(path))
    tb = log.metadata["time_base"]
    assert tb["short_rows"] == 1 and tb["rows_backwards"] == 1
    assert tb["gaps"] == 1 and tb["largest_gap_s"] == pytest.approx(50.5, abs=0.01)
    assert any("parse" in w for w in log.warnings)
    assert log.series.height == 9450 - 100 - 1
    report = run_checks(log, detect_pulses(log), None)
    quality = next(r for r in report.results if r.name == "log_quality")
    assert quality.status == "warn" and "gaps" in quality.details


def test_recipe_csv_errors(tmp_path: Path) -> None:
    bad = _write(tmp_path, "r.csv", b"aldv1,delay(s)\n1,0.1\nx,1\n")
    with pytest.raises(ParseError) as info:
        parse_controller_recipe(bad, ctx_for(bad))
    assert info.value.location == "line 3"
    headless = _write(tmp_path, "h.csv", b"1,0.1\n")
    with pytest.raises(ParseError):
        parse_controller_recipe(headless, ctx_for(headless))
    short = _write(tmp_path, "s.csv", b"aldv1,aldv2,delay(s)\n1,-1,0.1\n-1\n")
    with pytest.raises(ParseError) as info:
        parse_controller_recipe(short, ctx_for(short))
    assert "delay" in info.value.message
