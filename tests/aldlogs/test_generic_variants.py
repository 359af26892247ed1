"""Other real files for the generic delimited parser, derived here from the LabVIEW fixture run.

The same run is rewritten the ways other tools and spreadsheets write time series: a preamble
above the header, tab-separated quoted fields, a timestamp column, decimal commas, a units
line, CRLF and a BOM, a copy cut mid-line. Each must read as the plain CSV does (values
converted from mbar and K), or fail with a ParseError naming the place and the cause.
"""

from __future__ import annotations

import codecs
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from depositions.aldlogs.parsers.generic import parse_generic_log
from depositions.aldlogs.parsers.types import AldLog
from lims.ingestion.parsing import ParseError
from tests.aldlogs.conftest import ctx_for

TORR_PER_MBAR = 100 / 133.322368
ROWS = 1500
CHANNELS: list[dict[str, Any]] = [
    {"column": "P_ch", "role": "pressure", "unit": "mbar", "name": "chamber pressure"},
    {"column": "DO3", "role": "valve", "port": "P3", "on_threshold": 2.5},
    {"column": "TC1", "role": "temperature", "unit": "K", "name": "reactor"},
]
MAP: dict[str, Any] = {"time": {"column": "t", "unit": "s"}, "channels": CHANNELS}


@pytest.fixture(scope="module")
def frame(labview_log: AldLog) -> pl.DataFrame:
    """The run as another tool logs it: mbar, 0/5 V valve, kelvin, a free-text column."""
    s = labview_log.series.head(ROWS)
    return pl.DataFrame(
        {
            "t": s["time_s"].round(3),
            "P_ch": (s["Chamber Pressure"] / TORR_PER_MBAR).round(7),
            "DO3": s["Mod8/do1"] * 5.0,
            "TC1": (s["Thermocouple 1"] + 273.15).round(3),
            "note": ["ok, gauge 2\tcalibrated"] * ROWS,
        }
    )


def _parse(path: Path, channel_map: dict[str, Any] | None = None) -> AldLog:
    return parse_generic_log(path, ctx_for(path), channel_map or MAP)


@pytest.fixture(scope="module")
def reference(frame: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> AldLog:
    path = tmp_path_factory.mktemp("generic") / "plain.csv"
    frame.write_csv(path)
    return _parse(path)


def _write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def test_plain_copy_converts_mbar_and_kelvin(reference: AldLog, labview_log: AldLog) -> None:
    s = labview_log.series.head(ROWS)
    assert reference.warnings == []
    got = reference.series["chamber pressure"].to_numpy()
    assert np.allclose(got, s["Chamber Pressure"].to_numpy(), rtol=1e-6, atol=1e-9)
    assert np.allclose(reference.series["reactor"].to_numpy(), s["Thermocouple 1"].to_numpy())
    assert reference.channel("reactor").raw_unit == "K"
    assert reference.channel("reactor").unit == "degC"
    assert reference.channel("chamber pressure").unit == "Torr"
    assert reference.series["DO3"].max() == 5.0  # the valve's on_threshold (2.5) decides


def test_header_line_after_a_preamble(
    tmp_path: Path, frame: pl.DataFrame, reference: AldLog
) -> None:
    preamble = "Tool export v2;site=Lab 1\ncolumns: t,P_ch,DO3,TC1,note\nexported 2019-05-24\n"
    path = _write(tmp_path, "export.csv", preamble + frame.write_csv())
    log = _parse(path, {**MAP, "header_line": 4})
    assert log.metadata["header_line"] == 4
    assert log.series.equals(reference.series) and log.warnings == []
    for bad in ("four", 0, 10**6):
        with pytest.raises(ParseError) as info:
            _parse(path, {**MAP, "header_line": bad})
        assert info.value.location == "channel_map" and str(bad) in info.value.message


def test_tsv_with_quoted_fields(tmp_path: Path, frame: pl.DataFrame, reference: AldLog) -> None:
    path = _write(tmp_path, "export.tsv", frame.write_csv(separator="\t", quote_style="always"))
    assert path.read_text().startswith('"t"\t"P_ch"')
    log = _parse(path)
    assert log.series.equals(reference.series)
    assert log.warnings == []
    # only the text column quoted (a tab inside it)
    some = _write(tmp_path, "some.tsv", frame.write_csv(separator="\t"))
    assert '"ok, gauge 2\tcalibrated"' in some.read_text()
    log = _parse(some)
    assert log.series.equals(reference.series) and log.warnings == []


def _stamps(frame: pl.DataFrame, fmt: str, comma: bool = False) -> list[str]:
    """Timestamps of the rows, milliseconds as tools write them (``,559`` when ``comma``)."""
    origin = datetime(2019, 5, 24, 11, 23, 13, 990000)
    out = []
    for t in frame["t"].to_list():
        text = (origin + timedelta(seconds=t)).strftime(fmt)[:-3]
        out.append(",".join(text.rsplit(".", 1)) if comma else text)
    return out


@pytest.mark.parametrize(
    ("fmt", "declared", "comma"),
    [
        ("%d.%m.%Y %H:%M:%S.%f", "%d.%m.%Y %H:%M:%S.%f", False),
        ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S,%f", True),  # logging's 11:23:14,559
        ("%Y-%m-%d %H:%M:%S.%f", None, False),  # recognised without a format
        ("%Y-%m-%d %H:%M:%S.%f", None, True),
    ],
    ids=["german", "logging_comma", "recognised", "recognised_comma"],
)
def test_datetime_time_column(
    tmp_path: Path,
    frame: pl.DataFrame,
    reference: AldLog,
    fmt: str,
    declared: str | None,
    comma: bool,
) -> None:
    stamps = _stamps(frame, fmt, comma)
    table = frame.with_columns(pl.Series("Zeit", stamps)).drop("t")
    path = _write(tmp_path, "dt.csv", table.select("Zeit", pl.exclude("Zeit")).write_csv())
    time = {"column": "Zeit", "unit": "datetime", **({"format": declared} if declared else {})}
    log = _parse(path, {**MAP, "time": time})
    assert log.start_time == "2019-05-24T11:23:14.559"
    expected = reference.series["time_s"] - reference.series["time_s"][0]
    assert np.allclose(log.series["time_s"].to_numpy(), expected.to_numpy(), atol=1e-3)
    assert log.series.drop("time_s").equals(reference.series.drop("time_s"))
    assert log.warnings == []


def test_datetime_format_that_matches_nothing(tmp_path: Path, frame: pl.DataFrame) -> None:
    stamps = _stamps(frame, "%d.%m.%Y %H:%M:%S.%f")
    table = frame.with_columns(pl.Series("Zeit", stamps)).drop("t")
    path = _write(tmp_path, "dt.csv", table.write_csv(separator=";"))
    time = {"column": "Zeit", "unit": "datetime", "format": "%Y-%m-%d %H:%M:%S"}
    with pytest.raises(ParseError) as info:
        _parse(path, {**MAP, "time": time})
    assert info.value.location == "line 2"
    assert "%Y-%m-%d %H:%M:%S" in info.value.message and stamps[0] in info.value.message


def test_decimal_commas_in_a_semicolon_export(
    tmp_path: Path, frame: pl.DataFrame, reference: AldLog
) -> None:
    path = _write(tmp_path, "de.csv", frame.write_csv(separator=";", decimal_comma=True))
    assert re.search(r";\d+,\d+;", path.read_text())
    log = _parse(path)
    assert log.series.equals(reference.series)
    assert any("decimal commas" in w and "line 2" in w for w in log.warnings)
    assert log.conventions["numbers"] == "decimal commas"
    declared = _parse(path, {**MAP, "decimal": ","})
    assert declared.series.equals(reference.series) and declared.warnings == []
    with pytest.raises(ParseError) as info:
        _parse(path, {**MAP, "decimal": "comma"})
    assert info.value.location == "channel_map"


def test_units_line_under_the_header(
    tmp_path: Path, frame: pl.DataFrame, reference: AldLog
) -> None:
    header, body = frame.write_csv().split("\n", 1)
    path = _write(tmp_path, "units.csv", f"{header}\ns,mbar,V,K,\n{body}")
    log = _parse(path)
    assert log.series.equals(reference.series)
    assert log.metadata["units_line"] == 2
    assert any("line 2 holds units" in w for w in log.warnings)
    wrong = _write(tmp_path, "wrong.csv", f"{header}\ns,Torr,V,K,\n{body}")
    with pytest.raises(ParseError) as info:
        _parse(wrong)
    assert info.value.location == "line 1"
    assert "channel_map" in info.value.message and "'Torr'" in info.value.message
    ms = _write(tmp_path, "ms.csv", f"{header}\nms,mbar,V,K,\n{body}")
    with pytest.raises(ParseError) as info:
        _parse(ms)
    assert "time column" in info.value.message


def test_unit_in_the_header_label_contradicting_the_map(
    tmp_path: Path, frame: pl.DataFrame
) -> None:
    table = frame.rename({"P_ch": "P_ch [Torr]"})
    path = _write(tmp_path, "label.csv", table.write_csv())
    channels = [{**CHANNELS[0], "column": "P_ch [Torr]"}, *CHANNELS[1:]]
    with pytest.raises(ParseError) as info:
        _parse(path, {**MAP, "channels": channels})
    assert "P_ch [Torr]" in info.value.message and "mbar" in info.value.message
    fine = [{**CHANNELS[0], "column": "P_ch [Torr]", "unit": "Torr"}, *CHANNELS[1:]]
    log = _parse(path, {**MAP, "channels": fine})
    assert np.allclose(
        log.series["chamber pressure"].to_numpy(), frame["P_ch"].to_numpy(), rtol=1e-12
    )


def test_mapped_column_missing_from_the_file(tmp_path: Path, frame: pl.DataFrame) -> None:
    path = _write(tmp_path, "export.csv", "Tool export v2\n" + frame.drop("TC1").write_csv())
    with pytest.raises(ParseError) as info:
        _parse(path)
    assert "channel_map" in info.value.message and "'TC1'" in info.value.message
    assert "line 2" in info.value.message  # the closest header
    assert info.value.location.startswith("lines 1-")
    with pytest.raises(ParseError) as info:
        _parse(path, {**MAP, "header_line": 2})
    assert "channel_map" in info.value.message and "'TC1'" in info.value.message
    assert info.value.location == "line 2"


def test_crlf_bom_and_a_cut_last_line(
    tmp_path: Path, frame: pl.DataFrame, reference: AldLog
) -> None:
    text = frame.write_csv().replace("\n", "\r\n")
    path = _write(tmp_path, "win.csv", codecs.BOM_UTF8 + text.encode("utf-8"))
    log = _parse(path)
    assert log.series.equals(reference.series) and log.warnings == []
    cut = _write(tmp_path, "cut.csv", text[: text.rstrip().rfind("\r\n") + 12])
    log = _parse(cut)
    assert log.series.equals(reference.series.head(ROWS - 1))
    assert any("no line end" in w for w in log.warnings)


def test_time_column_without_a_single_number(tmp_path: Path, frame: pl.DataFrame) -> None:
    table = frame.with_columns(pl.lit("n.a.").alias("t"))
    path = _write(tmp_path, "not.csv", table.write_csv())
    with pytest.raises(ParseError) as info:
        _parse(path)
    assert info.value.location == "line 2" and "'t'" in info.value.message
