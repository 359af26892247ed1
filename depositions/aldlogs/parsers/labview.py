"""LabVIEW ALD runs: the tab-separated data log and its companion files.

A run of this system writes four files, each starting with a line naming the file:

- ``*_DataLog.txt``: 2 Hz samples, ISO-8859-1, units in the headers (``Chamber Pressure
  [Torr]``, ``Mass [ng/cm²]``, ``Thermocouple 1 [ºC]``), valve digital outputs as 0/1 columns
  (``Mod8/do1``), a ``Timestamp`` (``11:23:14.559 05/24/2019``) and ``Elapsed Time [s]`` since
  the process start;
- ``*_ExecutionTable.txt``: the steps as run (precursor, fill pressure, dose and purge time,
  process type);
- ``*_Doses-DeltaM.txt``: per step, when the dose started (elapsed seconds on the data log's
  clock) and the QCM mass before and after;
- ``*_Summary.txt``: user, setpoints (``Furnace Temp. [ºC]: 425``, which may disagree with
  the thermocouples: both are kept), precursor ports (``A1=TMA, B1=H2O``), steps completed;
- newer builds (2021) also ``*_ExecutionArray.txt``, the execution table as numbers.

Columns are recognised by their header words and units, not by position, so other versions of
the program (more thermocouples, other valve modules, mbar gauges) read the same way, as do
the line ends (CRLF, CR CR LF, an empty line after every row in the 2021 build) and decimal
commas of other Windows locales (docs/ald-logs.md lists the variants). Which
valve carries which precursor is not written anywhere: :func:`infer_valve_sources` finds it by
matching the valve edges to the Doses-DeltaM start times (or to the execution table's order).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from depositions.aldlogs.parsers.tabular import (
    TIMESTAMP_FORMATS,
    ColumnSpec,
    TextHead,
    clean_time,
    count_short_rows,
    dedupe,
    locate_line,
    open_text,
    parse_timestamp,
    put_column,
    read_rows,
    read_text,
    series_from,
    start_time_iso,
    timestamps_to_seconds,
)
from depositions.aldlogs.parsers.types import (
    CANONICAL_UNITS,
    AldLog,
    Channel,
    DoseRecord,
    DosesTable,
    ExecutionStep,
    ExecutionTable,
    RunSummary,
)
from depositions.aldlogs.parsers.units import (
    conversion,
    family_of_unit,
    infer_role,
    infer_zone,
    normalize_unit,
    slug,
    split_header,
    time_scale,
)
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import guess_decimal_comma, sniff_lines

VERSION = "1.1.0"
# Digital outputs: FieldPoint/cRIO ``Mod8/do1``, DAQmx ``cDAQ1Mod5/port0/line1``.
_VALVE_DO = re.compile(r"^(c?daq\d*)?mod\d+\s*/\s*(do\d+|port\d+\s*/\s*line\d+)$", re.IGNORECASE)
_ELAPSED = re.compile(r"elapsed", re.IGNORECASE)
_TIMESTAMP = re.compile(r"^(time\s*stamp|date\s*/?\s*time|timestamp)$", re.IGNORECASE)
_XTAL_OK = re.compile(r"(xtal|crystal)\s*ok", re.IGNORECASE)
_BIT = re.compile(r"^[01]$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NUMBERS = re.compile(r"(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:\n|$))*")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$")
_STAMP_COMMA = re.compile(r"(\d{1,2}:\d{2}:\d{2}),(\d+)")
_BOOLEANS = frozenset({"TRUE", "FALSE"})
# header words of the quantities that have canonical units (a unit we do not know for one of
# them is reported; ``Xtal Life [%]`` or ``Xtal OK? [0=F, 1=T]`` are plain "other" columns)
_QUANTITY = re.compile(
    r"pressure|gauge|temp|thermocouple|heater|\bmfc\b|flow|\bmass\b|freq|power", re.IGNORECASE
)
# The program writes ``%H:%M:%S%3u %m/%d/%Y``; other builds and locales: day-first dates, a
# 12-hour clock (``4:29:26.269 PM 4/18/2021`` ends the summaries of newer builds).
STAMP_FORMATS: tuple[str, ...] = (
    *TIMESTAMP_FORMATS,
    "%I:%M:%S.%f %p %m/%d/%Y",
    "%I:%M:%S %p %m/%d/%Y",
    "%H:%M:%S.%f %d.%m.%Y",
    "%H:%M:%S %d.%m.%Y",
    "%H:%M:%S.%f %d/%m/%Y",
    "%H:%M:%S %d/%m/%Y",
    "%H:%M:%S.%f %Y-%m-%d",
    "%H:%M:%S %Y-%m-%d",
)


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.split("\t")]


def _num(text: str | None) -> float | None:
    """A number as LabVIEW writes it: ``1.787``, ``1,787`` (decimal comma of a Windows locale),
    ``NaN`` / ``N/A`` / empty = None."""
    if text is None:
        return None
    value = text.strip()
    if not value or value.upper() in ("N/A", "NA", "NAN", "-", "--", "NONE"):
        return None
    try:
        number = float(value)
    except ValueError:
        if not _DECIMAL_COMMA.match(value):
            return None
        number = float(value.replace(",", "."))
    return number if math.isfinite(number) else None


def _int(text: str | None) -> int | None:
    number = _num(text)
    return None if number is None else round(number)


def _stamp(text: str | None) -> datetime | None:
    """A LabVIEW timestamp (``11:23:14.559 05/24/2019``, ``11:23:14,559 ...`` in a decimal-comma
    locale, ``4:29:26.269 PM 4/18/2021``), None when it is none of the known formats."""
    if not text or not text.strip():
        return None
    return parse_timestamp(_STAMP_COMMA.sub(r"\1.\2", text.strip()), STAMP_FORMATS)


def _stamp_format(samples: Sequence[str]) -> str | None:
    """The first known format that reads every sample (decimal-comma fractions as points)."""
    values = [_STAMP_COMMA.sub(r"\1.\2", s.strip()) for s in samples if s and s.strip()]
    for fmt in STAMP_FORMATS if values else ():
        if all(parse_timestamp(v, (fmt,)) is not None for v in values):
            return fmt
    return None


# --- sniffing -------------------------------------------------------------------------------------


def _is_datalog_header(line: str) -> bool:
    labels = _fields(line)
    if len(labels) < 4:
        return False
    names = [split_header(label)[0] for label in labels]
    valves = sum(1 for n in names if _VALVE_DO.match(n))
    elapsed = any(_ELAPSED.search(n) for n in names)
    stamp = any(_TIMESTAMP.match(n) for n in names)
    pressure = any("pressure" in n.lower() for n in names)
    return (elapsed or stamp) and (valves >= 2 or (elapsed and pressure))


def _is_execution_header(line: str) -> bool:
    text = line.lower()
    return (
        "recipe step" in text
        and "precursor" in text
        and ("dose time" in text or "purge time" in text)
        and "delta-m" not in text
    )


def _is_execution_array_header(line: str) -> bool:
    """``Precursor | Fill Pressure [Torr] | Dose Time [sec.] | Purge Time [sec.] | Process Type``:
    the recipe as numbers (``*_ExecutionArray.txt`` of newer builds), without step numbers."""
    text = line.lower()
    return (
        "\t" in line
        and text.lstrip().startswith("precursor")
        and "dose time" in text
        and "purge time" in text
        and "recipe step" not in text
        and "delta-m" not in text
    )


def _is_doses_header(line: str) -> bool:
    text = line.lower()
    return (
        "recipe step" in text
        and "precursor" in text
        and ("delta-m" in text or "pulse/fill start" in text)
    )


_SUMMARY_KEYS = (
    "user:",
    "notes:",
    "precursors:",
    "steps completed:",
    "process end timestamp:",
    "graph/process start timestamp:",
)


def _summary_score(lines: Sequence[str]) -> int:
    return sum(1 for line in lines[:40] if line.strip().lower().startswith(_SUMMARY_KEYS))


def _head_lines(head: bytes, limit: int = 40) -> list[str]:
    return sniff_lines(head, limit) or []


# --- data log ---------------------------------------------------------------------------------


def _numeric_sample(values: Iterable[str]) -> bool:
    """Numeric unless most non-empty sample values are not numbers (all-empty is numeric):
    one unreadable cell must not turn the chamber pressure into a text column."""
    filled = [v.strip() for v in values if v.strip()]
    joined = "\n".join(filled)
    if joined.count("\n") == len(filled) - 1 and _NUMBERS.fullmatch(joined):
        return True  # all plain numbers (the usual column): one regex pass
    words = [v for v in filled if v.upper() not in _MISSING and not _NUMBER.match(v)]
    return len(words) * 2 <= len(filled)


def _boolean_sample(values: Iterable[str]) -> bool:
    """``TRUE`` / ``FALSE`` cells (a LabVIEW boolean formatted as text)."""
    filled = [v.strip().upper() for v in values if v.strip()]
    return bool(filled) and all(v in _BOOLEANS for v in filled)


_MISSING = frozenset({"NAN", "N/A", "NA", "INF", "-INF", "-", "--"})


def _first_value(column: pl.Series) -> Any:
    """The first non-null value (None for an all-null column), without copying the column."""
    if column.null_count():
        column = column.drop_nulls()
    return column[0] if column.len() else None


@dataclasses.dataclass(frozen=True)
class _FileShape:
    """What the raw bytes say about line ends (the decoded head has them stripped)."""

    double_cr: bool  # ``\r\r\n`` line ends
    ends_with_newline: bool


def _file_shape(head: TextHead) -> _FileShape:
    with head.path.open("rb") as fh:
        first = fh.read(64 * 1024)
        fh.seek(max(0, head.size - 8))  # 8 bytes: whole code units of UTF-16/32 files too
        tail = fh.read().decode(head.encoding, errors="replace")
    return _FileShape(
        double_cr=b"\r\r" in first,
        ends_with_newline=tail.endswith("\n") or tail.endswith("\r"),
    )


def _unique(base: str, used: set[str]) -> str:
    name, k = base, 2
    while name in used:
        name, k = f"{base}_{k}", k + 1
    used.add(name)
    return name


def parse_labview_datalog(path: Path, ctx: ParseContext) -> AldLog:
    """Parse a LabVIEW ``*_DataLog.txt`` into an :class:`AldLog` (no companions)."""
    head = open_text(path, ctx)
    index = locate_line(head.lines, _is_datalog_header, limit=30)
    if index is None:
        raise ParseError(
            "no LabVIEW data-log header (Timestamp / Elapsed Time / pressure / ModN/doN "
            "columns) found: not a LabVIEW ALD data log",
            location=f"lines 1-{min(30, len(head.lines))}",
        )
    labels = _fields(head.lines[index])
    while labels and not labels[-1]:
        labels.pop()  # a trailing tab is not a column
    columns, warnings = dedupe(labels)
    warnings = head.warnings + warnings
    below = head.lines[index + 1 :]
    # Newer builds write an empty line after every row (the header's too): skipped, counted.
    lead = next((i for i, line in enumerate(below) if line.strip()), len(below))
    window = below[lead : lead + 101]
    blank_rows = any(not line.strip() for line in window[:-1])
    sample = [_fields(line) for line in window if line.strip()][:50]
    if not sample:
        if head.complete:
            raise ParseError(
                "header only: the data log has no data rows (run aborted before the first sample?)",
                location=f"line {index + 2}",
            )
        raise ParseError("no data rows after the header", location=f"line {index + 2}")
    first_data_line = index + 2 + lead
    shape = _file_shape(head)
    decimal_comma = guess_decimal_comma(sample, "\t")
    if decimal_comma:
        sample = [
            [v.replace(",", ".") if _DECIMAL_COMMA.match(v) else v for v in row] for row in sample
        ]
        at_line = first_data_line + next(
            (
                i
                for i, line in enumerate(window)
                if any(_DECIMAL_COMMA.match(v) for v in _fields(line))
            ),
            0,
        )
        warnings.append(
            f"numbers are written with decimal commas (e.g. line {at_line}): read as decimals"
        )

    time_col: str | None = None
    time_factor = 1.0
    stamp_col: str | None = None
    specs: list[ColumnSpec] = []
    text_columns: list[str] = []
    boolean_columns: list[str] = []
    dtypes: dict[str, pl.DataType] = {}
    xtal_ok: str | None = None
    units_written: dict[str, str | None] = {}
    used_names: set[str] = set()
    for position, (label, column) in enumerate(zip(labels, columns, strict=True)):
        name, unit = split_header(label)
        values = [row[position] if position < len(row) else "" for row in sample]
        if time_col is None and _ELAPSED.search(name):
            factor = time_scale(unit)
            if factor is not None:
                time_col, time_factor = column, factor
                dtypes[column] = pl.Float64()
                continue
        if stamp_col is None and _TIMESTAMP.match(name):
            stamp_col = column
            continue
        if _boolean_sample(values):
            boolean_columns.append(column)
            dtypes[column] = pl.String()
        elif not _numeric_sample(values):
            text_columns.append(label)
            warnings.append(f"column {label!r} holds text, not numbers: not read as a channel")
            continue
        else:
            dtypes[column] = pl.Float64()
        if _XTAL_OK.search(name):
            xtal_ok = column
        valve_key = normalize_unit(unit)
        if _VALVE_DO.match(name) and (valve_key is None or valve_key in ("1", "v", "bool")):
            role = "valve"
        else:
            role = infer_role(name, unit)
        factor_offset = conversion(role, unit)
        if factor_offset is None or (
            role == "other" and unit and family_of_unit(unit) is None and _QUANTITY.search(name)
        ):
            # a pressure / temperature / flow ... column in a unit we cannot convert
            warnings.append(f"unknown unit {unit!r} in {label!r}: kept as written (role other)")
            role, factor_offset = "other", (1.0, 0.0)
        channel_name = _unique(slug(name), used_names)
        unit_out = CANONICAL_UNITS.get(role, unit or "")
        valve = role == "valve"
        channel = Channel(
            name=channel_name,
            role=role,
            unit=unit_out,
            source_column=label,
            physical_channel=name if valve else None,
            on_threshold=0.5 if valve else None,
            raw_unit=unit,
            zone=infer_zone(name) if role.startswith("temperature") else None,
        )
        units_written[channel_name] = unit
        specs.append(ColumnSpec(column, channel, *factor_offset))
    if time_col is None and stamp_col is None:
        raise ParseError(
            "neither an 'Elapsed Time' nor a 'Timestamp' column: no time base",
            location=f"line {index + 1}",
        )
    # The timestamps are read only when they are the time base (or the last column, whose
    # empty cells count the short rows): otherwise the first sample row gives the start time,
    # and a string per row would be parsed and stored for nothing.
    read_stamp = stamp_col is not None and (time_col is None or stamp_col == columns[-1])
    keep = [c for c in (time_col, stamp_col if read_stamp else None, xtal_ok) if c] + [
        s.column for s in specs if s.column not in (xtal_ok,)
    ]
    if stamp_col:
        dtypes[stamp_col] = pl.String()
    # 0/1 valve columns read as Int8 (a third faster than floats); any other content in a
    # later row makes read_rows fall back to floats for every column.
    at = {column: i for i, column in enumerate(columns)}
    fast = {
        s.column: pl.Int8()
        for s in specs
        if s.channel.role == "valve"
        and s.column not in boolean_columns
        and all(_BIT.match(row[at[s.column]].strip()) for row in sample if len(row) > at[s.column])
    }
    frame, read_warnings = read_rows(
        head,
        header_index=index,
        separator="\t",
        columns=columns,
        dtypes=dtypes,
        keep=list(dict.fromkeys(keep)),
        fast_dtypes={**dtypes, **fast} if fast else None,
        skip_lines=first_data_line - 1,
        decimal_comma=decimal_comma,
        normalize_newlines=shape.double_cr,
    )
    warnings += read_warnings
    if shape.double_cr:
        warnings.append("lines end with CR CR LF: read as one line end each")
    cut_dropped = any("the file was cut" in w for w in read_warnings)
    if not shape.ends_with_newline and not cut_dropped and frame.height:
        # every row the program writes ends with a line end: a last row without one was cut
        # (a copy made while the run was writing), even when its fields look complete
        frame = frame.head(frame.height - 1)
        warnings.append(
            "the last line has no line end: the file was cut (truncated copy or a run still "
            "writing); that row was dropped (its last value may be incomplete)"
        )
    line_numbers: np.ndarray | None = None
    if blank_rows and frame.height:
        blank = frame.select(pl.all_horizontal(pl.all().is_null())).to_series().to_numpy()
        n_blank = int(blank.sum())
        if n_blank:
            line_numbers = np.flatnonzero(~blank) + first_data_line
            frame = frame.filter(pl.Series(~blank))
            warnings.append(
                f"{n_blank} empty lines between the data rows were skipped (a program "
                "version that writes an empty line after each row)"
            )
    if boolean_columns:
        frame = frame.with_columns(
            pl.when(pl.col(c).str.strip_chars().str.to_uppercase() == "TRUE")
            .then(1.0)
            .when(pl.col(c).str.strip_chars().str.to_uppercase() == "FALSE")
            .then(0.0)
            .otherwise(None)
            .alias(c)
            for c in boolean_columns
            if c in frame.columns
        )
    short = count_short_rows(frame, columns[-1]) if columns[-1] in frame.columns else 0

    stamp_at = columns.index(stamp_col) if stamp_col else None
    first_stamp = next(
        (row[stamp_at] for row in sample if stamp_at is not None and len(row) > stamp_at), None
    )
    origin = _stamp(first_stamp)
    conventions = {
        "time_s": "",
        "units": "canonical: Torr, degC, sccm, ng/cm2, Hz, W (converted from the header units)",
        "valves": "ModN/doN digital outputs: 1 = open (threshold 0.5)",
    }
    if decimal_comma:
        conventions["numbers"] = "decimal commas (1,787 = 1.787)"
    if boolean_columns:
        conventions["booleans"] = (
            f"TRUE/FALSE read as 1/0 in {', '.join(repr(c) for c in boolean_columns)}"
        )
    if time_col is not None:
        elapsed = frame[time_col] if time_factor == 1.0 else frame[time_col] * time_factor
        frame = put_column(frame, elapsed.alias("time_s"))  # in seconds: no copy
        start = start_time_iso(origin, _first_value(frame["time_s"]))
        conventions["time_s"] = (
            f"'{time_col}' as written (seconds since the process start; start_time = first "
            "Timestamp - its elapsed time)"
        )
        if first_stamp and origin is None:
            warnings.append(
                f"timestamp {first_stamp!r} (line {first_data_line}) is in no known format: "
                "no start time"
            )
    else:
        assert stamp_col is not None
        stamp_fmt = _stamp_format(
            [row[stamp_at] for row in sample if stamp_at is not None and len(row) > stamp_at]
        )
        if stamp_fmt is None:
            raise ParseError(
                f"timestamps like {first_stamp!r} are in no known format",
                location=f"line {first_data_line}",
            )
        stamps = frame[stamp_col]
        if bool(stamps.str.contains(_STAMP_COMMA.pattern).any()):
            stamps = stamps.str.replace(_STAMP_COMMA.pattern, "${1}.${2}")
        seconds, origin = timestamps_to_seconds(stamps, stamp_fmt)
        frame = frame.with_columns(seconds)
        start = start_time_iso(origin)
        conventions["time_s"] = f"seconds since the first '{stamp_col}' ({stamp_fmt})"
    if xtal_ok is not None:
        bad = int((frame[xtal_ok] == 0).sum())
        if bad:
            masses = [s.column for s in specs if s.channel.role in ("qcm_mass", "qcm_frequency")]
            frame = frame.with_columns(
                pl.when(pl.col(xtal_ok) == 0).then(None).otherwise(pl.col(c)).alias(c)
                for c in masses
            )
            warnings.append(f"QCM crystal not OK on {bad} rows: QCM values set empty there")
    frame, timebase, time_warnings = clean_time(
        frame, first_data_line=first_data_line, line_numbers=line_numbers
    )
    timebase.short_rows = short
    warnings += time_warnings
    if short:
        warnings.append(f"{short} rows are shorter than the header (missing values left empty)")
    series = series_from(frame, specs)
    empty = [s.channel.name for s in specs if series[s.channel.name].null_count() == series.height]
    return AldLog(
        series=series,
        channels=[s.channel for s in specs],
        events=[],
        sample_period_s=timebase.sample_period_s,
        start_time=start,
        metadata={
            "format": "labview_datalog",
            "encoding": head.encoding,
            "title": [line for line in head.lines[:index] if line.strip()],
            "header_line": index + 1,
            "time_base": timebase.as_dict(),
            "units_as_written": units_written,
            "text_columns": text_columns,
            "empty_channels": empty,
        },
        warnings=warnings,
        conventions=conventions,
        parser="labview_datalog",
    )


# --- companion tables -------------------------------------------------------------------------


@dataclasses.dataclass
class _Table:
    index: int  # header line, 0-based
    labels: list[str]
    rows: list[list[str]]
    lines: list[int]  # 1-based line number of each row
    warnings: list[str]


def _table(head: TextHead, test: Any, what: str) -> _Table:
    index = locate_line(head.lines, test, limit=30)
    if index is None:
        raise ParseError(f"no {what} header found", location=f"lines 1-{min(30, len(head.lines))}")
    labels = _fields(head.lines[index])
    while labels and not labels[-1]:
        labels.pop()
    numbered = [(n + 1, line) for n, line in enumerate(head.lines) if n > index and line.strip()]
    warnings: list[str] = []
    if numbered and head.lines[-1].strip():
        # the program ends every row with a line end: a last row without one was cut
        warnings.append(
            f"the last line (line {numbered[-1][0]}) has no line end: the file was cut (or the "
            "run was still writing it); that row was dropped"
        )
        numbered.pop()
    rows = [_fields(line) for _, line in numbered]
    lines = [n for n, _ in numbered]
    blank = sum(1 for line in head.lines[index + 1 : -1] if not line.strip())
    if blank and rows:
        warnings.append(f"{blank} empty lines between the rows were skipped")
    commas = next(
        (
            n
            for n, row in zip(lines, rows, strict=True)
            if any(_DECIMAL_COMMA.match(v) for v in row)
        ),
        None,
    )
    if commas is not None:
        warnings.append(
            f"numbers are written with decimal commas (e.g. line {commas}): read as decimals"
        )
    return _Table(index, labels, rows, lines, warnings)


def _find(labels: Sequence[str], *words: str, exclude: str | None = None) -> int | None:
    for i, label in enumerate(labels):
        low = label.lower()
        if all(w in low for w in words) and (exclude is None or exclude not in low):
            return i
    return None


def _cell(row: Sequence[str], index: int | None) -> str | None:
    if index is None or index >= len(row):
        return None
    return row[index]


def _scaled(row: Sequence[str], index: int | None, factor: float) -> float | None:
    value = _num(_cell(row, index))
    return None if value is None else value * factor


def _unit_factor(table: _Table, index: int | None, role: str) -> float:
    """Scale of a column from its header unit. A time or pressure unit that cannot be converted
    is a ParseError at the header line (a dose time in furlongs would make a wrong plan); a QCM
    mass unit we do not know keeps the values as written, with a warning."""
    if index is None:
        return 1.0
    label = table.labels[index]
    unit = split_header(label)[1]
    if not unit:
        return 1.0
    if role == "time":
        factor = time_scale(unit.rstrip("."))  # ``[sec.]`` in the execution array
        if factor is None:
            raise ParseError(
                f"column {label!r}: {unit!r} is not a time unit", location=f"line {table.index + 1}"
            )
        return factor
    conv = conversion(role, unit)
    if conv is not None:
        return conv[0]
    if role == "qcm_mass":
        table.warnings.append(f"unknown unit {unit!r} in {label!r}: values kept as written")
        return 1.0
    raise ParseError(
        f"column {label!r}: unit {unit!r} cannot be converted to {CANONICAL_UNITS.get(role, role)}",
        location=f"line {table.index + 1}",
    )


def _short_rows(table: _Table) -> list[str]:
    short = [
        n for n, row in zip(table.lines, table.rows, strict=True) if len(row) < len(table.labels)
    ]
    if not short:
        return []
    return [f"{len(short)} rows shorter than the header (first: line {short[0]})"]


def _step_warnings(steps: Sequence[int], what: str) -> list[str]:
    """Missing, repeated or out-of-order step numbers (the tool numbers its steps 1, 2, 3...)."""
    if not steps:
        return []
    out: list[str] = []
    counts = Counter(steps)
    repeated = sorted(s for s, n in counts.items() if n > 1)
    if repeated:
        out.append(f"{what}: step numbers repeated: {_ranges(repeated)}")
    if any(b < a for a, b in itertools.pairwise(steps)):
        out.append(f"{what}: step numbers out of order")
    # the gaps between the numbers present, never a list as long as the largest number (a
    # step 9999999999 in a 275-byte table would otherwise build a 10-billion-element set)
    present = [n for n in sorted(counts) if n >= 1]
    gaps = [(a + 1, b - 1) for a, b in itertools.pairwise([0, *present]) if b - a > 1]
    if gaps:
        missing = sum(b - a + 1 for a, b in gaps)
        shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in gaps[:8])
        more = ", ..." if len(gaps) > 8 else ""
        out.append(f"{what}: steps {shown}{more} missing ({missing} rows)")
    return out


def _ranges(numbers: Sequence[int]) -> str:
    parts: list[str] = []
    for _, group in itertools.groupby(enumerate(numbers), key=lambda t: t[1] - t[0]):
        run = [n for _, n in group]
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    if len(parts) > 8:
        parts = [*parts[:8], "..."]
    return ", ".join(parts)


_FILL = re.compile(r"fill|hold|stop[\s-]*flow", re.IGNORECASE)


def step_kind(step: ExecutionStep) -> str:
    """``fill`` for a stop-flow (fill-hold) dose, ``pulse`` otherwise.

    The process type's words decide (its number changed between program versions: ``1:
    Pulse-Purge (Full Flow)`` in 2019, ``2: ALD Pulse-Purge (Full-Flow)`` in 2021); without
    words (the execution array writes only the number), a fill pressure does.
    """
    words = re.sub(r"^\s*\d+\s*:?\s*", "", step.process_type)
    if words.strip():
        return "fill" if _FILL.search(words) else "pulse"
    return "fill" if step.fill_pressure_torr is not None else "pulse"


def _step_columns(table: Any) -> tuple[Any, ...]:
    """The step columns shared by the execution table and array, and their unit factors:
    precursor, fill pressure, dose time, purge time, process type; fill, dose, purge factors."""
    labels = table.labels
    c_prec = _find(labels, "precursor")
    c_fill = _find(labels, "fill pressure")
    c_dose = _find(labels, "dose time")
    c_purge = _find(labels, "purge time")
    c_type = _find(labels, "process type")
    return (
        c_prec,
        c_fill,
        c_dose,
        c_purge,
        c_type,
        _unit_factor(table, c_fill, "pressure"),
        _unit_factor(table, c_dose, "time"),
        _unit_factor(table, c_purge, "time"),
    )


def parse_execution_table(path: Path, ctx: ParseContext) -> ExecutionTable:
    """Parse ``*_ExecutionTable.txt``: the steps as the tool ran them."""
    head = read_text(path, ctx)
    table = _table(head, _is_execution_header, "execution-table")
    c_step = _find(table.labels, "recipe step")
    c_prec, c_fill, c_dose, c_purge, c_type, fill_f, dose_f, purge_f = _step_columns(table)
    steps: list[ExecutionStep] = []
    warnings = head.warnings + table.warnings + _short_rows(table)
    for line, row in zip(table.lines, table.rows, strict=True):
        step = _int(_cell(row, c_step))
        if step is None:
            warnings.append(f"line {line}: no step number, row skipped")
            continue
        precursor = (_cell(row, c_prec) or "").strip()
        fill = _scaled(row, c_fill, fill_f)
        steps.append(
            ExecutionStep(
                step=step,
                precursor=None if precursor.lower() in ("", "none", "n/a") else precursor,
                fill_pressure_torr=None if fill is not None and fill < 0 else fill,
                dose_time_s=_scaled(row, c_dose, dose_f),
                purge_time_s=_scaled(row, c_purge, purge_f),
                process_type=(_cell(row, c_type) or "").strip(),
            )
        )
    if not steps:
        raise ParseError("the execution table has no steps", location=f"line {table.index + 2}")
    warnings += _step_warnings([s.step for s in steps], "execution table")
    return ExecutionTable(steps=steps, warnings=warnings, encoding=head.encoding)


def parse_execution_array(path: Path, ctx: ParseContext) -> ExecutionTable:
    """Parse ``*_ExecutionArray.txt`` (newer builds): the execution table as numbers.

    One row per step, no step numbers (rows are steps 1, 2, ...); the precursor is a number
    (its position in the summary's ``Precursors:`` list, 0 = none) kept as ``#1``, ``#5`` until
    :func:`resolve_precursor_numbers` names it; a fill pressure of -1 means none.
    """
    head = read_text(path, ctx)
    table = _table(head, _is_execution_array_header, "execution-array")
    c_prec, c_fill, c_dose, c_purge, c_type, fill_f, dose_f, purge_f = _step_columns(table)
    warnings = head.warnings + table.warnings + _short_rows(table)
    steps: list[ExecutionStep] = []
    for line, row in zip(table.lines, table.rows, strict=True):
        number = _int(_cell(row, c_prec))
        if number is None:
            raise ParseError(
                f"precursor {(_cell(row, c_prec) or '')!r} is not a number",
                location=f"line {line}",
            )
        fill = _scaled(row, c_fill, fill_f)
        steps.append(
            ExecutionStep(
                step=len(steps) + 1,
                precursor=None if number <= 0 else f"#{number}",
                fill_pressure_torr=None if fill is None or fill < 0 else fill,
                dose_time_s=_scaled(row, c_dose, dose_f),
                purge_time_s=_scaled(row, c_purge, purge_f),
                process_type=(_cell(row, c_type) or "").strip(),
            )
        )
    if not steps:
        raise ParseError("the execution array has no steps", location=f"line {table.index + 2}")
    return ExecutionTable(steps=steps, warnings=warnings, encoding=head.encoding)


def precursor_list(summary: RunSummary) -> list[str | None]:
    """The summary's ``Precursors:`` entries in order (None for an empty port, ``N/A``)."""
    raw = next((v for k, v in summary.fields.items() if k.lower().startswith("precursor")), "")
    out: list[str | None] = []
    for part in raw.split(","):
        port, sep, chem = part.partition("=")
        if sep and port.strip():
            out.append(None if _no_precursor(chem) else chem.strip())
    return out


def _no_precursor(name: str | None) -> bool:
    return not name or name.strip().lower() in ("", "n/a", "na", "none", "-", "--", "empty")


def resolve_precursor_numbers(
    table: ExecutionTable, doses: DosesTable | None = None, summary: RunSummary | None = None
) -> ExecutionTable:
    """Name the ``#N`` precursors of an execution array: from the doses table's ``Precursor #``
    / ``Precursor Name`` pairs, else from the N-th entry of the summary's ``Precursors:`` list."""
    names: dict[str, str] = {}
    evidence = ""
    if doses is not None:
        names = {
            f"#{d.precursor_number}": d.precursor
            for d in doses.doses
            if d.precursor and d.precursor_number
        }
        evidence = "the doses table's precursor numbers"
    if summary is not None:
        listed = precursor_list(summary)
        for k, name in enumerate(listed, start=1):
            if name and f"#{k}" not in names:
                names[f"#{k}"] = name
                evidence = evidence or "positions in the summary's precursor list"
    steps = [
        dataclasses.replace(s, precursor=names.get(s.precursor, s.precursor)) if s.precursor else s
        for s in table.steps
    ]
    left = sorted({s.precursor for s in steps if s.precursor and s.precursor.startswith("#")})
    warnings = list(table.warnings)
    if left:
        warnings.append(
            f"precursor numbers {', '.join(left)} of the execution array could not be named "
            "(no doses table or summary naming them): kept as numbers"
        )
    elif names:
        warnings.append(f"execution array: precursor numbers named from {evidence}")
    return ExecutionTable(steps=steps, warnings=warnings, encoding=table.encoding)


def parse_doses_table(path: Path, ctx: ParseContext) -> DosesTable:
    """Parse ``*_Doses-DeltaM.txt``: dose start times (data-log clock) and QCM mass change."""
    head = read_text(path, ctx)
    table = _table(head, _is_doses_header, "Doses-DeltaM")
    labels = table.labels
    c_step = _find(labels, "recipe step")
    c_pnum = _find(labels, "precursor #")
    c_name = _find(labels, "precursor name")
    c_type = _find(labels, "process type")
    c_pulse = _find(labels, "pulse", "elapsed")
    c_hold = _find(labels, "hold", "elapsed")
    c_purge = _find(labels, "purge", "elapsed")
    c_init = _find(labels, "initial mass")
    c_final = _find(labels, "final mass")
    c_delta = _find(labels, "delta")
    mass_f = _unit_factor(table, c_init, "qcm_mass")
    delta_f = _unit_factor(table, c_delta, "qcm_mass")
    time_f = _unit_factor(table, c_pulse, "time")
    warnings = head.warnings + table.warnings + _short_rows(table)
    doses: list[DoseRecord] = []
    for line, row in zip(table.lines, table.rows, strict=True):
        step = _int(_cell(row, c_step))
        if step is None:
            warnings.append(f"line {line}: no step number, row skipped")
            continue
        name = (_cell(row, c_name) or "").strip()
        doses.append(
            DoseRecord(
                step=step,
                precursor_number=_int(_cell(row, c_pnum)),
                precursor=None if name.lower() in ("", "none", "n/a") else name,
                process_type=(_cell(row, c_type) or "").strip(),
                pulse_start_s=_scaled(row, c_pulse, time_f),
                hold_start_s=_scaled(row, c_hold, time_f),
                purge_start_s=_scaled(row, c_purge, time_f),
                initial_mass_ng_cm2=_scaled(row, c_init, mass_f),
                final_mass_ng_cm2=_scaled(row, c_final, mass_f),
                delta_mass_ng_cm2=_scaled(row, c_delta, delta_f),
            )
        )
    if not doses:
        raise ParseError("the Doses-DeltaM table has no rows", location=f"line {table.index + 2}")
    warnings += _step_warnings([d.step for d in doses], "Doses-DeltaM")
    return DosesTable(doses=doses, warnings=warnings, encoding=head.encoding)


_STATUS = re.compile(
    r"\b(process|recipe|run)\s+(complete|finish|abort|stop|fail|error|cancel|interrupt)",
    re.IGNORECASE,
)
_ALARM_WORDS = re.compile(r"(abort|alarm|error|fail|interlock|emergency|stopped)", re.IGNORECASE)
# at most 9 digits: a longer "count" is not one (and int() refuses 4300+ digits anyway)
_STEPS_DONE = re.compile(r"(?<!\d)(\d{1,9})\s*(?:/|of)\s*(\d{1,9})(?!\d)")
_STEPS_EXECUTED = re.compile(
    r"^(\d{1,9})\s+(?:of\s+(\d{1,9})\s+)?steps?\s+(?:executed|completed|done|run)\b",
    re.IGNORECASE,
)
_KEY_VALUE = re.compile(r"^([A-Za-z][^:\t]{0,60}?)\s*:\s+(\S.*)$")
# free text the operator typed: never a status, never an alarm, may run over several lines
_FREE_TEXT = ("notes", "note", "comment", "comments", "description")
_NOT_SCANNED = (*_FREE_TEXT, "title", "user", "operator", "precursor")
_SAVED_TO = re.compile(r"\bsaved\s+(to|in|at)\b", re.IGNORECASE)
MESSAGES_KEY = "messages"  # summary lines that are not ``key: value`` (status lines)


def parse_summary(path: Path, ctx: ParseContext) -> RunSummary:
    """Parse ``*_Summary.txt``: ``key:<TAB>value`` lines, the status lines the program writes
    at the end (``ALD Process Complete. ...``, or in newer builds ``ALD Recipe Complete!`` /
    ``200  steps executed.`` / the end time) and the notes, which may run over several lines."""
    head = read_text(path, ctx)
    lines = [line for line in head.lines if line.strip()]
    if _summary_score(lines) < 2:
        raise ParseError(
            "no LabVIEW run-summary keys (User:, Precursors:, Steps Completed:, ...) found",
            location=f"lines 1-{min(40, len(lines))}",
        )
    warnings = list(head.warnings)
    fields: dict[str, str] = {}
    messages: list[str] = []
    last: str | None = None
    after_blank = False
    seen_first = False
    for raw in head.lines:
        line = raw.strip()
        if not line:
            after_blank = True
            continue
        first, seen_first = not seen_first, True
        if "\t" in raw and raw.split("\t", 1)[0].strip():
            key, _, value = raw.partition("\t")
            key = key.strip().rstrip(":").strip()
            if key in fields:
                warnings.append(f"key {key!r} written twice: the last value kept")
            fields[key], last, after_blank = value.strip(), key, False
            continue
        if first:
            fields["title"] = line
            continue
        if last is not None and last.lower() in _FREE_TEXT and not after_blank:
            fields[last] = f"{fields[last]}\n{line}"  # notes typed over several lines
            continue
        match = _KEY_VALUE.match(line)
        if match and not _SAVED_TO.search(match.group(1)):
            key = match.group(1).strip()
            fields[key], last, after_blank = match.group(2).strip(), key, False
            continue
        messages.append(line)
        last = None
    if messages:
        fields[MESSAGES_KEY] = "\n".join(messages)
    setpoints: dict[str, dict[str, Any]] = {}
    for key, value in fields.items():
        name, unit = split_header(key)
        number = _num(value)
        family = family_of_unit(unit)
        if number is None or family is None:
            continue
        role = "temperature_setpoint" if family == "temperature" else family
        conv = conversion(role, unit)
        if conv is None:
            continue
        setpoints[slug(name).rstrip(".")] = {
            "value": number * conv[0] + conv[1],
            "unit": CANONICAL_UNITS.get(role, normalize_unit(unit) or ""),
            "role": role,
            "as_written": f"{value} {unit}",
            "zone": infer_zone(name),
            "source": "summary",
        }
    precursors: dict[str, str] = {}
    for key, value in fields.items():
        if key.lower().startswith("precursor"):
            for part in value.split(","):
                port, sep, chem = part.partition("=")
                if sep and port.strip() and not _no_precursor(chem):
                    precursors[port.strip()] = chem.strip()
    start = end = None
    for key, value in fields.items():
        low = key.lower()
        if low in _FREE_TEXT or key == MESSAGES_KEY:
            continue
        stamp = _stamp(value)
        if stamp is None:
            continue
        if "start" in low and start is None:
            start = stamp.isoformat(timespec="milliseconds")
        elif "end" in low and end is None:
            end = stamp.isoformat(timespec="milliseconds")
    if end is None:  # newer builds end with the time alone on a line
        stamps = [s for s in (_stamp(m) for m in messages) if s is not None]
        if stamps:
            end = stamps[-1].isoformat(timespec="milliseconds")
    completed = total = None
    for key, value in fields.items():
        if "steps completed" in key.lower():
            done = _STEPS_DONE.search(value)
            if done:
                completed, total = int(done.group(1)), int(done.group(2))
            else:
                completed = _int(value)
            if completed is None:
                warnings.append(f"'{key}: {value}' is not a step count: ignored")
    if completed is None:
        for message in messages:
            executed = _STEPS_EXECUTED.match(message)
            if executed:
                completed = int(executed.group(1))
                total = int(executed.group(2)) if executed.group(2) else None
    status = None
    for text in (
        *(k for k in fields if not k.lower().startswith(_NOT_SCANNED) and k != MESSAGES_KEY),
        *(
            v
            for k, v in fields.items()
            if not k.lower().startswith(_NOT_SCANNED) and k != MESSAGES_KEY
        ),
        *messages,
    ):
        if _STATUS.search(text):
            status = text
            break
    return RunSummary(
        fields=fields,
        setpoints=setpoints,
        precursors=precursors,
        start_time=start,
        end_time=end,
        steps_completed=completed,
        steps_total=total,
        status_text=status,
        warnings=warnings,
        encoding=head.encoding,
    )


def summary_alarms(summary: RunSummary) -> list[dict[str, Any]]:
    """Abort / error words in the summary's keys, values and status lines.

    Not scanned: what the operator typed (notes, user) and the folder the data were saved to
    (``... saved to <TAB>C:\\...\\Run3_failed-valve-retest``: a run's name is not an alarm).
    """
    alarms: list[dict[str, Any]] = []
    for key, value in summary.fields.items():
        low = key.lower()
        if low.startswith(_NOT_SCANNED):
            continue
        texts = value.split("\n") if key == MESSAGES_KEY else [key, value]
        for n, text in enumerate(texts):
            saved = _SAVED_TO.search(text)
            if saved:
                text = text[: saved.start()]
            elif key != MESSAGES_KEY and n == 1 and _SAVED_TO.search(key):
                continue  # the value of a "... saved to" key is the path
            if _ALARM_WORDS.search(text):
                shown = texts[n] if key == MESSAGES_KEY else f"{key}: {value}"
                alarms.append({"time_s": None, "level": "error", "text": shown})
                if key != MESSAGES_KEY:
                    break
    return alarms


# --- valve -> precursor -------------------------------------------------------------------------


def valve_rising_edges(log: AldLog, channel: Channel) -> np.ndarray:
    """Times (s) of the samples where a valve channel switches on."""
    values = log.series[channel.name].fill_null(0.0).to_numpy()
    threshold = channel.on_threshold if channel.on_threshold is not None else 0.5
    on = values > threshold
    starts = np.flatnonzero(on & ~np.concatenate(([False], on[:-1])))
    times: np.ndarray = log.series["time_s"].to_numpy()[starts]
    return times


def _explicit_map(valve_map: dict[str, Any] | None) -> dict[str, dict[str, str | None]]:
    out: dict[str, dict[str, str | None]] = {}
    for key, value in (valve_map or {}).items():
        if isinstance(value, dict):
            out[str(key)] = {"label": value.get("label"), "port": value.get("port")}
        else:
            out[str(key)] = {"label": str(value), "port": None}
    return out


def infer_valve_sources(
    log: AldLog,
    *,
    doses: DosesTable | None = None,
    execution: ExecutionTable | None = None,
    summary: RunSummary | None = None,
    valve_map: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Which precursor each valve channel delivered, with the evidence.

    An explicit ``valve_map`` (channel or physical channel -> label or {label, port}) wins.
    Otherwise the Doses-DeltaM start times vote: a rising edge within 1.5 sample periods (at
    least 1 s) of a dose of precursor P is one vote for P; a valve takes the label most of its
    edges voted for. Without a doses table, the execution table's dose order is compared with
    the order of all valve edges. The summary's ``A1=TMA`` list gives the port of a label.
    """
    explicit = _explicit_map(valve_map)
    valves = [ch for ch in log.by_role("valve")]
    # only the companion tables vote with edges: without them, no valve column is scanned
    edges = (
        {ch.name: valve_rising_edges(log, ch) for ch in valves}
        if doses is not None or execution is not None
        else {}
    )
    period = log.sample_period_s or 0.5
    tol = max(1.5 * period, 1.0)
    port_of = {chem: port for port, chem in (summary.precursors.items() if summary else [])}
    out: dict[str, dict[str, Any]] = {}
    for ch in valves:
        for key in (ch.name, ch.physical_channel, ch.port):
            if key and key in explicit:
                label = explicit[key]["label"]
                out[ch.name] = {
                    "label": label,
                    "port": explicit[key]["port"] or port_of.get(label or "") or ch.port,
                    "evidence": "valve map given with the upload",
                }
                break
    if doses is not None:
        starts = [(d.pulse_start_s, d.precursor) for d in doses.doses if d.precursor]
        dose_times = np.array([t for t, _ in starts if t is not None], dtype=float)
        dose_names = [p for t, p in starts if t is not None]
        for ch in valves:
            if ch.name in out or edges[ch.name].size == 0 or dose_times.size == 0:
                continue
            votes: dict[str, int] = {}
            for t in edges[ch.name]:
                j = int(np.argmin(np.abs(dose_times - t)))
                if abs(dose_times[j] - t) <= tol:
                    name = dose_names[j] or ""
                    votes[name] = votes.get(name, 0) + 1
            if votes:
                label, count = max(votes.items(), key=lambda kv: kv[1])
                n = int(edges[ch.name].size)
                if count * 2 >= n:
                    out[ch.name] = {
                        "label": label,
                        "port": port_of.get(label) or ch.port,
                        "evidence": (
                            f"{count} of {n} rising edges within {tol:.3g} s of a "
                            f"Doses-DeltaM start of {label}"
                        ),
                    }
    elif execution is not None:
        sequence = [s.precursor for s in execution.steps if s.precursor and s.dose_time_s]
        fired = sorted((t, ch.name) for ch in valves if ch.name not in out for t in edges[ch.name])
        if fired and len(fired) == len(sequence):
            votes2: dict[str, dict[str, int]] = {}
            for (_, name), label in zip(fired, sequence, strict=True):
                votes2.setdefault(name, {})
                votes2[name][label] = votes2[name].get(label, 0) + 1
            for name, counts in votes2.items():
                label, count = max(counts.items(), key=lambda kv: kv[1])
                out[name] = {
                    "label": label,
                    "port": port_of.get(label),
                    "evidence": (
                        f"{count} of {sum(counts.values())} edges in the execution table's "
                        f"dose order are {label}"
                    ),
                }
    return out


# --- merging a run's files ----------------------------------------------------------------------


def merge_labview(
    datalog: AldLog,
    *,
    execution: ExecutionTable | None = None,
    doses: DosesTable | None = None,
    summary: RunSummary | None = None,
    valve_map: dict[str, Any] | None = None,
    execution_array: ExecutionTable | None = None,
) -> AldLog:
    """One :class:`AldLog` from a data log and whatever companions came with it.

    Adds the summary's setpoints (beside, never instead of, the measured channels), run info
    and alarms, the execution table as the tool's declared recipe, the doses table's counts and
    QCM deltas, and the valve -> precursor map (channels get the precursor's port). An
    execution array (newer builds) stands in for a missing execution table, its precursor
    numbers named from the doses table or the summary; beside a table it is only compared.
    """
    metadata = dict(datalog.metadata)
    warnings = list(datalog.warnings)
    events = list(datalog.events)
    companions: list[str] = []
    if execution_array is not None:
        companions.append("execution_array")
        array = resolve_precursor_numbers(execution_array, doses, summary)
        if execution is None:
            execution = dataclasses.replace(
                array,
                warnings=[
                    *array.warnings,
                    "no execution table: the steps come from the execution array",
                ],
            )
        else:
            differences = _compare_steps(execution, array)
            metadata["execution_array"] = {
                "steps": len(array.steps),
                "agrees_with_execution_table": not differences,
            }
            warnings += [f"execution array: {d}" for d in differences]
    if summary is not None:
        companions.append("summary")
        metadata["setpoints"] = {**metadata.get("setpoints", {}), **summary.setpoints}
        metadata["precursor_ports"] = summary.precursors
        total, total_source = summary.steps_total, "summary"
        if total is None and execution is not None:
            total, total_source = len(execution.steps), "execution_table"
        completed = summary.steps_completed
        metadata["run_info"] = {
            "source": "labview_summary",
            "user": summary.fields.get("User"),
            "start_time": summary.start_time,
            "end_time": summary.end_time,
            "steps_completed": completed,
            "steps_total": total,
            "steps_total_source": total_source if total is not None else None,
            "complete": None if completed is None or total is None else completed >= total,
            "status_text": summary.status_text,
            "notes": summary.fields.get("Notes"),
            "messages": summary.fields.get(MESSAGES_KEY),
        }
        alarms = summary_alarms(summary)
        metadata["alarms"] = [*metadata.get("alarms", []), *alarms]
        metadata["alarm_sources"] = [*metadata.get("alarm_sources", []), "labview_summary"]
        warnings += [f"summary: {w}" for w in summary.warnings]
    if execution is not None:
        companions.append("execution_table")
        metadata["declared_recipe"] = {
            "source": "labview_execution_table",
            "steps": [dataclasses.asdict(s) for s in execution.steps],
            "doses_per_precursor": execution.doses_per_precursor(),
        }
        warnings += [f"execution table: {w}" for w in execution.warnings]
    if doses is not None:
        companions.append("doses")
        metadata["doses_table"] = {
            "doses_per_precursor": doses.doses_per_precursor(),
            "rows": [dataclasses.asdict(d) for d in doses.doses],
        }
        warnings += [f"doses table: {w}" for w in doses.warnings]
        if execution is not None:
            dosed = {s.step for s in execution.steps if s.precursor and s.dose_time_s}
            listed = {d.step for d in doses.doses if d.precursor}
            absent = sorted(dosed - listed)
            if absent and listed:
                warnings.append(
                    f"doses table: {len(absent)} dose steps of the execution table have no row "
                    f"(steps {_ranges(absent)}): their valves are matched on the other rows"
                )
    sources = infer_valve_sources(
        datalog, doses=doses, execution=execution, summary=summary, valve_map=valve_map
    )
    metadata["valve_sources"] = sources
    metadata["companions"] = companions
    channels = [
        dataclasses.replace(ch, port=sources[ch.name]["port"] or ch.port)
        if ch.name in sources
        else ch
        for ch in datalog.channels
    ]
    return dataclasses.replace(
        datalog, channels=channels, events=events, metadata=metadata, warnings=warnings
    )


def _compare_steps(table: ExecutionTable, array: ExecutionTable) -> list[str]:
    """Where an execution array disagrees with the execution table (precursor, times)."""
    if len(table.steps) != len(array.steps):
        return [f"{len(array.steps)} steps, the execution table {len(table.steps)}"]

    def key(s: ExecutionStep) -> tuple[str | None, float, float]:
        return (s.precursor, s.dose_time_s or 0.0, s.purge_time_s or 0.0)  # N/A = 0.00

    differ = [a.step for t, a in zip(table.steps, array.steps, strict=True) if key(t) != key(a)]
    if not differ:
        return []
    return [f"steps {_ranges(differ)} differ from the execution table (the table is used)"]


def classify_labview_file(head: bytes) -> str | None:
    """Which LabVIEW file this is from its content (filenames are not trusted)."""
    lines = _head_lines(head)
    if any(_is_doses_header(line) for line in lines[:30]):
        return "doses"
    if any(_is_execution_header(line) for line in lines[:30]):
        return "execution_table"
    if any(_is_execution_array_header(line) for line in lines[:30]):
        return "execution_array"
    if any(_is_datalog_header(line) for line in lines[:30]):
        return "datalog"
    if _summary_score(lines) >= 2:
        return "summary"
    return None


def parse_labview_run(
    paths: Sequence[Path],
    ctx: ParseContext | None = None,
    *,
    valve_map: dict[str, Any] | None = None,
) -> AldLog:
    """Parse the files of one LabVIEW run (any order, any names) into one merged log."""
    found: dict[str, Path] = {}
    for path in paths:
        with Path(path).open("rb") as fh:
            kind = classify_labview_file(fh.read(64 * 1024))
        if kind is None:
            raise ParseError(f"{Path(path).name} is not a LabVIEW run file", location="file")
        if kind in found:
            raise ParseError(
                f"two {kind} files in one run: {found[kind].name} and {Path(path).name}",
                location="file",
            )
        found[kind] = Path(path)
    if "datalog" not in found:
        raise ParseError("no data log among the run's files", location="file")

    def c(p: Path) -> ParseContext:
        base = ctx or ParseContext(filename=p.name)
        return dataclasses.replace(base, filename=p.name)

    return merge_labview(
        parse_labview_datalog(found["datalog"], c(found["datalog"])),
        execution=parse_execution_table(found["execution_table"], c(found["execution_table"]))
        if "execution_table" in found
        else None,
        doses=parse_doses_table(found["doses"], c(found["doses"])) if "doses" in found else None,
        summary=parse_summary(found["summary"], c(found["summary"]))
        if "summary" in found
        else None,
        valve_map=valve_map,
        execution_array=parse_execution_array(found["execution_array"], c(found["execution_array"]))
        if "execution_array" in found
        else None,
    )


# --- registered parsers -------------------------------------------------------------------------


def _companions_from_ctx(ctx: ParseContext) -> list[Path]:
    paths = ctx.metadata.get("companion_paths") or []
    return [Path(p) for p in paths]


class LabviewDatalogParser:
    """LabVIEW ``*_DataLog.txt``; companions named in ``ctx.metadata['companion_paths']``."""

    name: ClassVar[str] = "labview_datalog"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = _head_lines(head)
        return 0.95 if any(_is_datalog_header(line) for line in lines[:30]) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> AldLog:
        companions = _companions_from_ctx(ctx)
        valve_map = ctx.metadata.get("valve_map")
        if companions:
            return parse_labview_run([Path(path), *companions], ctx, valve_map=valve_map)
        return merge_labview(parse_labview_datalog(Path(path), ctx), valve_map=valve_map)


class _TableParser(ABC):
    """A LabVIEW companion table recognised by its header line (one of the first 30)."""

    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"
    confidence: ClassVar[float] = 0.95

    @abstractmethod
    def is_header(self, line: str) -> bool: ...

    @abstractmethod
    def read(self, path: Path, ctx: ParseContext) -> Any: ...

    def sniff(self, head: bytes, filename: str) -> float:
        lines = _head_lines(head)
        return self.confidence if any(self.is_header(line) for line in lines[:30]) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> Any:
        return self.read(Path(path), ctx)


class LabviewExecutionTableParser(_TableParser):
    name: ClassVar[str] = "labview_execution_table"

    def is_header(self, line: str) -> bool:
        return _is_execution_header(line)

    def read(self, path: Path, ctx: ParseContext) -> ExecutionTable:
        return parse_execution_table(path, ctx)


class LabviewExecutionArrayParser(_TableParser):
    """``*_ExecutionArray.txt`` of newer builds: the recipe as numbers (precursors by their
    position in the summary's port list, named when merged with the doses or the summary)."""

    name: ClassVar[str] = "labview_execution_array"
    confidence: ClassVar[float] = 0.9

    def is_header(self, line: str) -> bool:
        return _is_execution_array_header(line)

    def read(self, path: Path, ctx: ParseContext) -> ExecutionTable:
        return parse_execution_array(path, ctx)


class LabviewDosesParser(_TableParser):
    name: ClassVar[str] = "labview_doses"

    def is_header(self, line: str) -> bool:
        return _is_doses_header(line)

    def read(self, path: Path, ctx: ParseContext) -> DosesTable:
        return parse_doses_table(path, ctx)


class LabviewSummaryParser:
    name: ClassVar[str] = "labview_summary"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        score = _summary_score(_head_lines(head))
        return 0.9 if score >= 3 else 0.6 if score == 2 else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> RunSummary:
        return parse_summary(Path(path), ctx)
