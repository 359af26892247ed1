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
  the thermocouples: both are kept), precursor ports (``A1=TMA, B1=H2O``), steps completed.

Columns are recognised by their header words and units, not by position, so other versions of
the program (more thermocouples, other valve modules, mbar gauges) read the same way. Which
valve carries which precursor is not written anywhere: :func:`infer_valve_sources` finds it by
matching the valve edges to the Doses-DeltaM start times (or to the execution table's order).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from cells.parsers.textio import sniff_lines
from depositions.aldlogs.tabular import (
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
    timestamp_format,
    timestamps_to_seconds,
)
from depositions.aldlogs.types import (
    CANONICAL_UNITS,
    AldLog,
    Channel,
    DoseRecord,
    DosesTable,
    ExecutionStep,
    ExecutionTable,
    RunSummary,
)
from depositions.aldlogs.units import (
    conversion,
    family_of_unit,
    infer_role,
    infer_zone,
    normalize_unit,
    slug,
    split_header,
    time_scale,
)
from depositions.expansion import PlannedStep
from lims.ingestion.base import ParseContext, ParseError, register

VERSION = "1.0.0"
_VALVE_DO = re.compile(r"^mod\d+\s*/\s*do\d+$", re.IGNORECASE)
_ELAPSED = re.compile(r"elapsed", re.IGNORECASE)
_TIMESTAMP = re.compile(r"^(time\s*stamp|date\s*/?\s*time|timestamp)$", re.IGNORECASE)
_XTAL_OK = re.compile(r"(xtal|crystal)\s*ok", re.IGNORECASE)
_BIT = re.compile(r"^[01]$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_NUMBERS = re.compile(r"(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:\n|$))*")


def _fields(line: str) -> list[str]:
    return [f.strip() for f in line.split("\t")]


def _num(text: str | None) -> float | None:
    if text is None:
        return None
    value = text.strip()
    if not value or value.upper() in ("N/A", "NA", "NAN", "-", "--", "NONE"):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _int(text: str | None) -> int | None:
    number = _num(text)
    return None if number is None else round(number)


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


_MISSING = frozenset({"NAN", "N/A", "NA", "INF", "-INF", "-", "--"})


def _first_value(column: pl.Series) -> Any:
    """The first non-null value (None for an all-null column), without copying the column."""
    if column.null_count():
        column = column.drop_nulls()
    return column[0] if column.len() else None


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
    sample = [_fields(line) for line in head.lines[index + 1 : index + 51] if line.strip()]
    if not sample:
        if head.complete:
            raise ParseError(
                "header only: the data log has no data rows (run aborted before the first sample?)",
                location=f"line {index + 2}",
            )
        raise ParseError("no data rows after the header", location=f"line {index + 2}")

    time_col: str | None = None
    time_factor = 1.0
    stamp_col: str | None = None
    specs: list[ColumnSpec] = []
    text_columns: list[str] = []
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
        if not _numeric_sample(values):
            text_columns.append(label)
            warnings.append(f"column {label!r} holds text, not numbers: not read as a channel")
            continue
        dtypes[column] = pl.Float64()
        if _XTAL_OK.search(name):
            xtal_ok = column
        role = infer_role(name, unit)
        factor_offset = conversion(role, unit)
        if factor_offset is None:
            warnings.append(f"unknown unit {unit!r} in {label!r}: kept as written (role other)")
            role, factor_offset = "other", (1.0, 0.0)
        channel_name = slug(name)
        if channel_name in used_names:
            channel_name = slug(column)
        used_names.add(channel_name)
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
    )
    warnings += read_warnings
    short = count_short_rows(frame, columns[-1]) if columns[-1] in frame.columns else 0

    stamp_at = columns.index(stamp_col) if stamp_col else None
    first_stamp = next(
        (row[stamp_at] for row in sample if stamp_at is not None and len(row) > stamp_at), None
    )
    stamp_fmt = timestamp_format([first_stamp]) if first_stamp else None
    origin = parse_timestamp(first_stamp) if first_stamp else None
    conventions = {
        "time_s": "",
        "units": "canonical: Torr, degC, sccm, ng/cm2, Hz, W (converted from the header units)",
        "valves": "ModN/doN digital outputs: 1 = open (threshold 0.5)",
    }
    if time_col is not None:
        elapsed = frame[time_col] if time_factor == 1.0 else frame[time_col] * time_factor
        frame = put_column(frame, elapsed.alias("time_s"))  # in seconds: no copy
        start = start_time_iso(origin, _first_value(frame["time_s"]))
        conventions["time_s"] = (
            f"'{time_col}' as written (seconds since the process start; start_time = first "
            "Timestamp - its elapsed time)"
        )
    else:
        assert stamp_col is not None
        if stamp_fmt is None:
            raise ParseError(
                f"timestamps like {first_stamp!r} are in no known format",
                location=f"line {index + 2}",
            )
        seconds, origin = timestamps_to_seconds(frame[stamp_col], stamp_fmt)
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
    frame, timebase, time_warnings = clean_time(frame, first_data_line=index + 2)
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


def _table(head: TextHead, test: Any, what: str) -> tuple[int, list[str], list[list[str]]]:
    index = locate_line(head.lines, test, limit=30)
    if index is None:
        raise ParseError(f"no {what} header found", location=f"lines 1-{min(30, len(head.lines))}")
    labels = _fields(head.lines[index])
    while labels and not labels[-1]:
        labels.pop()
    rows = [_fields(line) for line in head.lines[index + 1 :] if line.strip()]
    return index, labels, rows


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


def _label_factor(labels: Sequence[str], index: int | None, role: str) -> float:
    if index is None:
        return 1.0
    unit = split_header(labels[index])[1]
    conv = conversion(role, unit) if unit else None
    return conv[0] if conv else 1.0


def _short_rows(rows: Sequence[Sequence[str]], width: int, first_line: int) -> list[str]:
    short = [i for i, row in enumerate(rows) if len(row) < width]
    if not short:
        return []
    return [f"{len(short)} rows shorter than the header (first: line {short[0] + first_line})"]


def parse_execution_table(path: Path, ctx: ParseContext) -> ExecutionTable:
    """Parse ``*_ExecutionTable.txt``: the steps as the tool ran them."""
    head = read_text(path, ctx)
    index, labels, rows = _table(head, _is_execution_header, "execution-table")
    c_step = _find(labels, "recipe step")
    c_prec = _find(labels, "precursor")
    c_fill = _find(labels, "fill pressure")
    c_dose = _find(labels, "dose time")
    c_purge = _find(labels, "purge time")
    c_type = _find(labels, "process type")
    fill_f = _label_factor(labels, c_fill, "pressure")
    dose_f = time_scale(split_header(labels[c_dose])[1]) if c_dose is not None else 1.0
    purge_f = time_scale(split_header(labels[c_purge])[1]) if c_purge is not None else 1.0
    steps: list[ExecutionStep] = []
    warnings = head.warnings + _short_rows(rows, len(labels), index + 2)
    for n, row in enumerate(rows):
        step = _int(_cell(row, c_step))
        if step is None:
            warnings.append(f"line {index + 2 + n}: no step number, row skipped")
            continue
        precursor = (_cell(row, c_prec) or "").strip()
        steps.append(
            ExecutionStep(
                step=step,
                precursor=None if precursor.lower() in ("", "none", "n/a") else precursor,
                fill_pressure_torr=_scaled(row, c_fill, fill_f),
                dose_time_s=_scaled(row, c_dose, dose_f or 1.0),
                purge_time_s=_scaled(row, c_purge, purge_f or 1.0),
                process_type=(_cell(row, c_type) or "").strip(),
            )
        )
    if not steps:
        raise ParseError("the execution table has no steps", location=f"line {index + 2}")
    return ExecutionTable(steps=steps, warnings=warnings, encoding=head.encoding)


def parse_doses_table(path: Path, ctx: ParseContext) -> DosesTable:
    """Parse ``*_Doses-DeltaM.txt``: dose start times (data-log clock) and QCM mass change."""
    head = read_text(path, ctx)
    index, labels, rows = _table(head, _is_doses_header, "Doses-DeltaM")
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
    mass_f = _label_factor(labels, c_init, "qcm_mass")
    delta_f = _label_factor(labels, c_delta, "qcm_mass")
    warnings = head.warnings + _short_rows(rows, len(labels), index + 2)
    doses: list[DoseRecord] = []
    for n, row in enumerate(rows):
        step = _int(_cell(row, c_step))
        if step is None:
            warnings.append(f"line {index + 2 + n}: no step number, row skipped")
            continue
        name = (_cell(row, c_name) or "").strip()
        doses.append(
            DoseRecord(
                step=step,
                precursor_number=_int(_cell(row, c_pnum)),
                precursor=None if name.lower() in ("", "none", "n/a") else name,
                process_type=(_cell(row, c_type) or "").strip(),
                pulse_start_s=_num(_cell(row, c_pulse)),
                hold_start_s=_num(_cell(row, c_hold)),
                purge_start_s=_num(_cell(row, c_purge)),
                initial_mass_ng_cm2=_scaled(row, c_init, mass_f),
                final_mass_ng_cm2=_scaled(row, c_final, mass_f),
                delta_mass_ng_cm2=_scaled(row, c_delta, delta_f),
            )
        )
    if not doses:
        raise ParseError("the Doses-DeltaM table has no rows", location=f"line {index + 2}")
    return DosesTable(doses=doses, warnings=warnings, encoding=head.encoding)


_STATUS = re.compile(r"process\s+(complete|abort|stop|fail|error|cancel)", re.IGNORECASE)
_ALARM_WORDS = re.compile(r"(abort|alarm|error|fail|interlock|emergency|stopped)", re.IGNORECASE)


def parse_summary(path: Path, ctx: ParseContext) -> RunSummary:
    """Parse ``*_Summary.txt`` (``key:<TAB>value`` lines)."""
    head = read_text(path, ctx)
    lines = [line for line in head.lines if line.strip()]
    if _summary_score(lines) < 2:
        raise ParseError(
            "no LabVIEW run-summary keys (User:, Precursors:, Steps Completed:, ...) found",
            location=f"lines 1-{min(40, len(lines))}",
        )
    fields: dict[str, str] = {}
    last: str | None = None
    for n, line in enumerate(lines):
        if "\t" in line:
            key, _, value = line.partition("\t")
            key = key.strip().rstrip(":").strip()
            fields[key] = value.strip()
            last = key
        elif n == 0:
            fields["title"] = line.strip()
        elif last is not None:
            fields[last] = f"{fields[last]}\n{line.strip()}"
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
                if sep and port.strip() and chem.strip():
                    precursors[port.strip()] = chem.strip()
    start = end = None
    for key, value in fields.items():
        low = key.lower()
        stamp = parse_timestamp(value)
        if stamp is None:
            continue
        if "start" in low and start is None:
            start = stamp.isoformat(timespec="milliseconds")
        elif "end" in low and end is None:
            end = stamp.isoformat(timespec="milliseconds")
    completed = total = None
    for key, value in fields.items():
        if "steps completed" in key.lower():
            done, sep, of = value.partition("/")
            completed, total = _int(done), (_int(of) if sep else None)
    status = next((k for k in fields if _STATUS.search(k)), None)
    if status is None:
        status = next((v for v in fields.values() if _STATUS.search(v)), None)
    return RunSummary(
        fields=fields,
        setpoints=setpoints,
        precursors=precursors,
        start_time=start,
        end_time=end,
        steps_completed=completed,
        steps_total=total,
        status_text=status,
        warnings=list(head.warnings),
        encoding=head.encoding,
    )


def summary_alarms(summary: RunSummary) -> list[dict[str, Any]]:
    """Abort / error words in the summary's status and fields (notes excluded: free text)."""
    alarms: list[dict[str, Any]] = []
    for key, value in summary.fields.items():
        if key.lower().startswith(("notes", "title", "user")):
            continue
        for text in (key, value):
            if _ALARM_WORDS.search(text):
                alarms.append({"time_s": None, "level": "error", "text": f"{key}: {value}"})
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
) -> AldLog:
    """One :class:`AldLog` from a data log and whatever companions came with it.

    Adds the summary's setpoints (beside, never instead of, the measured channels), run info
    and alarms, the execution table as the tool's declared recipe, the doses table's counts and
    QCM deltas, and the valve -> precursor map (channels get the precursor's port).
    """
    metadata = dict(datalog.metadata)
    warnings = list(datalog.warnings)
    events = list(datalog.events)
    companions: list[str] = []
    if summary is not None:
        companions.append("summary")
        metadata["setpoints"] = {**metadata.get("setpoints", {}), **summary.setpoints}
        metadata["precursor_ports"] = summary.precursors
        metadata["run_info"] = {
            "source": "labview_summary",
            "user": summary.fields.get("User"),
            "start_time": summary.start_time,
            "end_time": summary.end_time,
            "steps_completed": summary.steps_completed,
            "steps_total": summary.steps_total,
            "complete": summary.complete,
            "status_text": summary.status_text,
            "notes": summary.fields.get("Notes"),
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


def plan_from_execution_table(table: ExecutionTable) -> list[PlannedStep]:
    """The execution table as a planned sequence (doses then purges, offsets summed)."""
    steps: list[PlannedStep] = []
    t = 0.0
    for row in table.steps:
        if row.precursor and row.dose_time_s:
            kind = "fill" if "fill" in row.process_type.lower() else "pulse"
            steps.append(_planned(row.step, kind, row.precursor, t, row.dose_time_s))
            t += row.dose_time_s
        if row.purge_time_s:
            steps.append(_planned(row.step, "purge", "", t, row.purge_time_s))
            t += row.purge_time_s
    return steps


def _planned(order: int, kind: str, label: str, start: float, duration: float) -> PlannedStep:
    return PlannedStep(
        phase="cycle",
        supercycle=None,
        block=None,
        subcycle=None,
        repetition=None,
        order=order,
        kind=kind,
        source_label=label,
        start_s=round(start, 6),
        duration_s=duration,
    )


def classify_labview_file(head: bytes) -> str | None:
    """Which LabVIEW file this is from its content (filenames are not trusted)."""
    lines = _head_lines(head)
    if any(_is_doses_header(line) for line in lines[:30]):
        return "doses"
    if any(_is_execution_header(line) for line in lines[:30]):
        return "execution_table"
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
    )


# --- registered parsers -------------------------------------------------------------------------


def _companions_from_ctx(ctx: ParseContext) -> list[Path]:
    paths = ctx.metadata.get("companion_paths") or []
    return [Path(p) for p in paths]


@register
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


@register
class LabviewExecutionTableParser:
    name: ClassVar[str] = "labview_execution_table"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = _head_lines(head)
        return 0.95 if any(_is_execution_header(line) for line in lines[:30]) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> ExecutionTable:
        return parse_execution_table(Path(path), ctx)


@register
class LabviewDosesParser:
    name: ClassVar[str] = "labview_doses"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = _head_lines(head)
        return 0.95 if any(_is_doses_header(line) for line in lines[:30]) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> DosesTable:
        return parse_doses_table(Path(path), ctx)


@register
class LabviewSummaryParser:
    name: ClassVar[str] = "labview_summary"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        score = _summary_score(_head_lines(head))
        return 0.9 if score >= 3 else 0.6 if score == 2 else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> RunSummary:
        return parse_summary(Path(path), ctx)
