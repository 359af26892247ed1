"""Any delimited time-series log, read through a saved per-tool channel map.

Tools that write plain CSV/TSV (PLC exports, in-house software) differ in column names,
units, channel numbering and which valve feeds which port: the map says it once per tool
(``ctx.metadata['channel_map']``)::

    {
      "delimiter": ",",                       # optional: guessed from the header line
      "header_line": 3,                       # optional, 1-based: else the first line that
                                              #   names every mapped column
      "time": {"column": "Time", "unit": "s"},    # s | ms | min | h | datetime (+ "format")
      "channels": [
        {"column": "P_ch", "role": "pressure", "unit": "mbar", "name": "chamber pressure"},
        {"column": "DO3", "role": "valve", "port": "P3", "physical_channel": "DO3",
         "on_threshold": 2.5},
        {"column": "TC5", "role": "temperature", "unit": "degC", "port": "P3", "zone": "line"},
        {"column": "Xtal", "role": "qcm_mass", "unit": "ug/cm2"}
      ]
    }

(``channels`` may also be a ``{column: {...}}`` object.) Roles: pressure, valve, temperature,
temperature_setpoint, mfc, qcm_mass, qcm_frequency, power, other. A unit the map gives that we
cannot convert is an error of the map (ParseError at ``channel_map``), never a guess.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from depositions.aldlogs.tabular import (
    ColumnSpec,
    clean_time,
    count_short_rows,
    dedupe,
    open_text,
    read_rows,
    series_from,
    start_time_iso,
    timestamp_format,
    timestamps_to_seconds,
)
from depositions.aldlogs.types import CANONICAL_UNITS, ROLES, AldLog, Channel
from depositions.aldlogs.units import conversion, time_scale
from lims.ingestion.base import ParseContext, ParseError, register

VERSION = "1.0.0"


def _entries(raw: Any) -> list[dict[str, Any]]:
    if isinstance(raw, dict):
        return [
            {"column": k, **(v if isinstance(v, dict) else {"role": v})} for k, v in raw.items()
        ]
    if isinstance(raw, list) and all(isinstance(e, dict) for e in raw):
        return [dict(e) for e in raw]
    raise ParseError(
        "'channels' must be a list of objects or a {column: {...}} object", location="channel_map"
    )


def _channel(entry: dict[str, Any], used: set[str]) -> tuple[Channel, tuple[float, float]]:
    column = str(entry.get("column") or "").strip()
    if not column:
        raise ParseError("a channel entry names no column", location="channel_map")
    role = str(entry.get("role") or "other")
    if role not in ROLES:
        raise ParseError(f"channel {column!r}: unknown role {role!r}", location="channel_map")
    unit = entry.get("unit")
    conv = conversion(role, None if unit is None else str(unit))
    if conv is None:
        raise ParseError(
            f"channel {column!r}: unit {unit!r} cannot be converted for role {role}",
            location="channel_map",
        )
    name = str(entry.get("name") or column).strip()
    if name in used or name == "time_s":
        raise ParseError(f"two channels are named {name!r}", location="channel_map")
    used.add(name)
    threshold = entry.get("on_threshold")
    if threshold is not None and not isinstance(threshold, int | float):
        raise ParseError(
            f"channel {column!r}: on_threshold must be a number", location="channel_map"
        )
    channel = Channel(
        name=name,
        role=role,
        unit=CANONICAL_UNITS.get(role, str(unit or "")),
        source_column=column,
        port=None if entry.get("port") is None else str(entry["port"]),
        physical_channel=None
        if entry.get("physical_channel") is None
        else str(entry["physical_channel"]),
        on_threshold=float(threshold)
        if threshold is not None
        else (0.5 if role == "valve" else None),
        raw_unit=None if unit is None else str(unit),
        zone=None if entry.get("zone") is None else str(entry["zone"]),
    )
    return channel, conv


def _separator(line: str, declared: str | None) -> str:
    if declared:
        return {"\\t": "\t", "tab": "\t"}.get(declared, declared)
    counts = {sep: line.count(sep) for sep in ("\t", ";", ",")}
    best = max(counts, key=lambda s: counts[s])
    return best if counts[best] else ","


def parse_generic_log(path: Path, ctx: ParseContext, channel_map: dict[str, Any]) -> AldLog:
    """Read ``path`` with ``channel_map`` (see the module docstring)."""
    if not isinstance(channel_map, dict):
        raise ParseError("the channel map must be an object", location="channel_map")
    time_spec = channel_map.get("time") or {}
    if isinstance(time_spec, str):
        time_spec = {"column": time_spec, "unit": "s"}
    time_column = str(time_spec.get("column") or "").strip()
    if not time_column:
        raise ParseError("the channel map names no time column", location="channel_map")
    time_unit = str(time_spec.get("unit") or "s")
    used: set[str] = set()
    mapped = [_channel(e, used) for e in _entries(channel_map.get("channels"))]
    encoding = channel_map.get("encoding")
    if encoding:
        ctx = ParseContext(ctx.filename, ctx.size, str(encoding), ctx.metadata)
    head = open_text(path, ctx)
    wanted = {time_column, *(ch.source_column for ch, _ in mapped)}
    header_line = channel_map.get("header_line")
    if header_line is not None:
        index = int(header_line) - 1
        if not 0 <= index < len(head.lines):
            raise ParseError(
                f"header_line {header_line} is outside the file", location="channel_map"
            )
    else:
        index = next(
            (
                i
                for i, line in enumerate(head.lines[:200])
                if wanted
                <= {
                    f.strip().strip('"')
                    for f in line.split(_separator(line, channel_map.get("delimiter")))
                }
            ),
            -1,
        )
        if index < 0:
            raise ParseError(
                "no line names every mapped column ("
                + ", ".join(sorted(wanted))
                + "): wrong file or outdated channel map",
                location=f"lines 1-{min(200, len(head.lines))}",
            )
    sep = _separator(head.lines[index], channel_map.get("delimiter"))
    labels = [f.strip().strip('"') for f in head.lines[index].split(sep)]
    columns, warnings = dedupe(labels)
    warnings = head.warnings + warnings
    missing = sorted(wanted - set(labels))
    if missing:
        raise ParseError(
            f"mapped columns not in the header: {', '.join(missing)}", location=f"line {index + 1}"
        )
    column_of = {label: columns[labels.index(label)] for label in wanted}
    if not any(line.strip() for line in head.lines[index + 1 : index + 5]) and head.complete:
        raise ParseError("header only: no data rows (aborted run?)", location=f"line {index + 2}")
    dtypes: dict[str, pl.DataType] = {column_of[ch.source_column]: pl.Float64() for ch, _ in mapped}
    is_datetime = time_unit.lower() in ("datetime", "timestamp", "iso")
    dtypes[column_of[time_column]] = pl.String() if is_datetime else pl.Float64()
    keep = list(
        dict.fromkeys([column_of[time_column], *(column_of[ch.source_column] for ch, _ in mapped)])
    )
    frame, read_warnings = read_rows(
        head, header_index=index, separator=sep, columns=columns, dtypes=dtypes, keep=keep
    )
    warnings += read_warnings
    short = count_short_rows(frame, keep[-1])
    tcol = column_of[time_column]
    start = None
    if is_datetime:
        fmt = time_spec.get("format") or timestamp_format(
            frame[tcol].drop_nulls().head(20).to_list()
        )
        if fmt is None:
            raise ParseError(
                f"time column {time_column!r} holds no timestamp in a known format",
                location=f"line {index + 2}",
            )
        seconds, origin = timestamps_to_seconds(frame[tcol], str(fmt))
        frame = frame.with_columns(seconds)
        start = start_time_iso(origin)
    else:
        scale = time_scale(time_unit)
        if scale is None or not math.isfinite(scale):
            raise ParseError(f"unknown time unit {time_unit!r}", location="channel_map")
        frame = frame.with_columns((pl.col(tcol) * scale).alias("time_s"))
    frame, timebase, time_warnings = clean_time(frame, first_data_line=index + 2)
    timebase.short_rows = short
    warnings += time_warnings
    if short:
        warnings.append(f"{short} rows are shorter than the header (missing values left empty)")
    specs = [ColumnSpec(column_of[ch.source_column], ch, *conv) for ch, conv in mapped]
    series = series_from(frame, specs)
    return AldLog(
        series=series,
        channels=[ch for ch, _ in mapped],
        events=[],
        sample_period_s=timebase.sample_period_s,
        start_time=start,
        metadata={
            "format": "generic_ald_log",
            "encoding": head.encoding,
            "header_line": index + 1,
            "time_base": timebase.as_dict(),
            "channel_map": channel_map,
        },
        warnings=warnings,
        conventions={
            "time_s": f"'{time_column}' ({time_unit}) from the channel map",
            "units": "converted to Torr, degC, sccm, ng/cm2, Hz, W from the map's units",
        },
        parser="generic_ald_log",
    )


@register
class GenericAldLogParser:
    """Delimited time series + ``ctx.metadata['channel_map']``; never wins a sniff."""

    name: ClassVar[str] = "generic_ald_log"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        return 0.0  # needs the tool's channel map, which the bytes cannot show

    def parse(self, path: Path, ctx: ParseContext) -> AldLog:
        channel_map = ctx.metadata.get("channel_map")
        if channel_map is None:
            raise ParseError(
                "the generic ALD log parser needs the tool's channel map in "
                "ctx.metadata['channel_map']",
                location="channel_map",
            )
        return parse_generic_log(Path(path), ctx, channel_map)
