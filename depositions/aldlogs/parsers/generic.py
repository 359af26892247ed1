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

(``channels`` may also be a ``{column: {...}}`` object; ``"decimal": ","`` says the numbers
use decimal commas, else they are recognised in ``;``/tab files.) Roles: pressure, valve,
temperature, temperature_setpoint, mfc, qcm_mass, qcm_frequency, power, other. A unit the map
gives that we cannot convert, or that contradicts the unit the file writes for the column
(in its header label or a units line under the header), is an error of the map (ParseError),
never a guess. Tab-separated files with quoted fields and a units line under the header are
read; timestamps with a decimal comma (``09:58:10,123``) too.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from depositions.aldlogs.parsers.tabular import (
    ColumnSpec,
    TextHead,
    _cut_last_line,
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
from depositions.aldlogs.parsers.types import CANONICAL_UNITS, ROLES, AldLog, Channel
from depositions.aldlogs.parsers.units import conversion, split_header, time_scale
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import (
    NULL_VALUES,
    ascii_compatible,
    bom_encoding,
    guess_decimal_comma,
    polars_parse_error,
)

VERSION = "1.1.0"
_NUMBER = re.compile(r"^[-+]?(?:\d+[.,]?\d*|[.,]\d+)(?:[eE][-+]?\d+)?$|^(?:nan|NaN|inf)$")
_COMMA_FRACTION = r"(\d:\d{2}),(\d)"  # 09:58:10,123 (logging's default, European exports)


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


def _fields(line: str, sep: str) -> list[str]:
    """The cells of one line, quotes honoured (``"a, b"`` stays one cell)."""
    row = next(csv.reader([line], delimiter=sep), [])
    return [f.strip().strip('"').strip() for f in row]


def _header_index(
    head: TextHead, channel_map: dict[str, Any], wanted: set[str], declared: str | None
) -> int:
    """0-based index of the header line: the map's ``header_line``, else the first line that
    names every mapped column."""
    header_line = channel_map.get("header_line")
    if header_line is not None:
        try:
            index = int(header_line) - 1
        except (TypeError, ValueError):
            raise ParseError(
                f"header_line {header_line!r} is not a line number", location="channel_map"
            ) from None
        if not 0 <= index < len(head.lines):
            raise ParseError(
                f"header_line {header_line} is outside the file ({len(head.lines)} lines)",
                location="channel_map",
            )
        return index
    best, best_found = -1, 0
    for i, line in enumerate(head.lines[:200]):
        named = wanted & set(_fields(line, _separator(line, declared)))
        if named == wanted:
            return i
        if len(named) > best_found:
            best, best_found = i, len(named)
    near = ""
    if best >= 0:
        sep = _separator(head.lines[best], declared)
        lacking = sorted(wanted - set(_fields(head.lines[best], sep)))
        near = f"; the closest header, line {best + 1}, lacks " + ", ".join(map(repr, lacking))
    raise ParseError(
        "no line names every column of the channel_map ("
        + ", ".join(map(repr, sorted(wanted)))
        + f"){near}: wrong file or outdated channel map",
        location=f"lines 1-{min(200, len(head.lines))}",
    )


def _written_unit_conflicts(
    labels: Sequence[str],
    units_line: Sequence[str] | None,
    mapped: Sequence[tuple[Channel, tuple[float, float]]],
    time_column: str,
    time_unit: str,
    line: int,
) -> None:
    """ParseError when the file writes a unit for a mapped column that the map contradicts."""

    def written(column: str) -> str | None:
        at = labels.index(column)
        if units_line is not None and at < len(units_line) and units_line[at]:
            return units_line[at].strip("[]() ")
        return split_header(column)[1]

    for ch, conv in mapped:
        unit = written(ch.source_column)
        if unit is None or ch.raw_unit is None:
            continue
        file_conv = conversion(ch.role, unit)
        if file_conv is not None and file_conv != conv:
            raise ParseError(
                f"channel_map gives column {ch.source_column!r} in {ch.raw_unit!r} but the file "
                f"writes {unit!r}: the map is outdated or for another tool",
                location=f"line {line}",
            )
    unit = written(time_column)
    if unit is not None and time_unit.lower() not in ("datetime", "timestamp", "iso"):
        file_scale, map_scale = time_scale(unit), time_scale(time_unit)
        if file_scale is not None and map_scale is not None and file_scale != map_scale:
            raise ParseError(
                f"channel_map gives time column {time_column!r} in {time_unit!r} but the file "
                f"writes {unit!r}",
                location=f"line {line}",
            )


def _units_line(cells: Sequence[str], positions: Sequence[int]) -> bool:
    """A line under the header holding units (``s;mbar;K``): text where numbers belong."""
    values = [cells[p] for p in positions if p < len(cells) and cells[p] not in ("", *NULL_VALUES)]
    return bool(values) and not any(_NUMBER.match(v) for v in values)


def _read_dialect(
    head: TextHead,
    *,
    header_index: int,
    separator: str,
    columns: Sequence[str],
    dtypes: dict[str, pl.DataType],
    keep: Sequence[str],
    decimal_comma: bool,
) -> tuple[pl.DataFrame, list[str]]:
    """Like :func:`tabular.read_rows`, for quoted tab-separated fields and decimal commas."""
    warnings: list[str] = []
    source: Path | io.BytesIO = head.path
    if not ascii_compatible(head.encoding):
        data = head.path.read_bytes()
        bom = bom_encoding(data)
        text = data[bom[1] if bom else 0 :].decode(head.encoding, errors="replace")
        source = io.BytesIO(text.encode("utf-8"))
    options: dict[str, Any] = {
        "has_header": False,
        "separator": separator,
        "skip_lines": header_index + 1,
        "truncate_ragged_lines": True,
        "raise_if_empty": False,
        "encoding": "utf8-lossy",
        "quote_char": '"',
        "decimal_comma": decimal_comma,
        "schema": {name: dtypes.get(name, pl.String()) for name in columns},
    }

    def scan(**extra: Any) -> pl.DataFrame:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        return pl.scan_csv(source, **options, **extra).select(list(keep)).collect()

    frame: pl.DataFrame | None = None
    error: BaseException | None = None
    for extra in ({}, {"null_values": NULL_VALUES}):
        try:
            frame = scan(**extra)
            break
        except (pl.exceptions.PolarsError, OSError) as exc:
            error = exc
    if frame is None:
        assert error is not None
        problem = polars_parse_error(error)
        warnings.append(
            f"{problem.message}{' ' + problem.location if problem.location else ''}: "
            "cells that do not parse were read as empty"
        )
        try:
            frame = scan(null_values=NULL_VALUES, ignore_errors=True)
        except (pl.exceptions.PolarsError, OSError) as again:
            raise polars_parse_error(again) from again
    cut = _cut_last_line(head, separator, len(columns))
    if cut is not None and frame.height:
        frame = frame.head(frame.height - 1)
        warnings.append(cut)
    return frame, warnings


def _datetime_seconds(
    frame: pl.DataFrame, tcol: str, time_spec: dict[str, Any], time_column: str, line: int
) -> tuple[pl.DataFrame, str | None]:
    """``time_s`` from a timestamp column (format from the map, else recognised)."""
    values = raw = frame[tcol]
    declared = time_spec.get("format")
    fmt = None if declared is None else str(declared)
    if bool(values.str.contains(_COMMA_FRACTION).any()):
        values = values.str.replace(_COMMA_FRACTION, "${1}.${2}")
        fmt = None if fmt is None else fmt.replace(",%f", ".%f")
    if fmt is None:
        fmt = timestamp_format(values.drop_nulls().head(20).to_list())
        if fmt is None:
            raise ParseError(
                f"time column {time_column!r} holds no timestamp in a known format (first: "
                f"{raw.drop_nulls().head(1).to_list()!r}); give one as time.format",
                location=f"line {line}",
            )
    try:
        seconds, origin = timestamps_to_seconds(values, fmt)
    except pl.exceptions.PolarsError as exc:
        raise ParseError(
            f"time format {declared!r} cannot be used: {str(exc).splitlines()[0]}",
            location="channel_map",
        ) from exc
    if origin is None and values.drop_nulls().len():
        raise ParseError(
            f"no value of time column {time_column!r} matches the format {declared or fmt!r} "
            f"(first: {raw.drop_nulls()[0]!r})",
            location=f"line {line}",
        )
    return frame.with_columns(seconds), start_time_iso(origin)


def _map_parts(
    channel_map: Any,
) -> tuple[str, str, bool, float | None, Any, list[tuple[Channel, tuple[float, float]]]]:
    """The map's time column, time unit (datetime or not, seconds per unit), decimal mark and
    channels, each checked: ParseError at ``channel_map`` for the first problem."""
    if not isinstance(channel_map, dict):
        raise ParseError("the channel map must be an object", location="channel_map")
    time_spec = channel_map.get("time") or {}
    if isinstance(time_spec, str):
        time_spec = {"column": time_spec, "unit": "s"}
    if not isinstance(time_spec, dict):
        raise ParseError("'time' must be a column name or an object", location="channel_map")
    time_column = str(time_spec.get("column") or "").strip()
    if not time_column:
        raise ParseError("the channel map names no time column", location="channel_map")
    time_unit = str(time_spec.get("unit") or "s")
    is_datetime = time_unit.lower() in ("datetime", "timestamp", "iso")
    scale = None if is_datetime else time_scale(time_unit)
    if not is_datetime and (scale is None or not math.isfinite(scale)):
        raise ParseError(f"unknown time unit {time_unit!r}", location="channel_map")
    decimal = channel_map.get("decimal")
    if decimal not in (None, ".", ","):
        raise ParseError(f"decimal must be '.' or ',', not {decimal!r}", location="channel_map")
    used: set[str] = set()
    mapped = [_channel(e, used) for e in _entries(channel_map.get("channels"))]
    return time_column, time_unit, is_datetime, scale, decimal, mapped


def parse_generic_log(path: Path, ctx: ParseContext, channel_map: dict[str, Any]) -> AldLog:
    """Read ``path`` with ``channel_map`` (see the module docstring)."""
    time_column, time_unit, is_datetime, scale, decimal, mapped = _map_parts(channel_map)
    time_spec = channel_map.get("time") or {}
    if isinstance(time_spec, str):
        time_spec = {"column": time_spec, "unit": "s"}
    encoding = channel_map.get("encoding")
    if encoding:
        ctx = ParseContext(ctx.filename, ctx.size, str(encoding), ctx.metadata)
    head = open_text(path, ctx)
    wanted = {time_column, *(ch.source_column for ch, _ in mapped)}
    declared_sep = channel_map.get("delimiter")
    index = _header_index(head, channel_map, wanted, declared_sep)
    sep = _separator(head.lines[index], declared_sep)
    labels = _fields(head.lines[index], sep)
    columns, warnings = dedupe(labels)
    warnings = head.warnings + warnings
    missing = sorted(wanted - set(labels))
    if missing:
        raise ParseError(
            f"columns of the channel_map not in the header line {index + 1}: "
            + ", ".join(map(repr, missing))
            + f" (the header names {', '.join(map(repr, labels[:12]))}"
            + (", ...)" if len(labels) > 12 else ")"),
            location=f"line {index + 1}",
        )
    column_of = {label: columns[labels.index(label)] for label in wanted}
    data_lines = [
        (i, _fields(line, sep))
        for i, line in enumerate(head.lines[index + 1 : index + 60], start=index + 1)
        if line.strip()
    ]
    if not data_lines and head.complete:
        raise ParseError("header only: no data rows (aborted run?)", location=f"line {index + 2}")
    numeric_at = [labels.index(ch.source_column) for ch, _ in mapped]
    if not is_datetime:
        numeric_at.append(labels.index(time_column))
    units_line: list[str] | None = None
    skip = index
    if data_lines and data_lines[0][0] == index + 1 and _units_line(data_lines[0][1], numeric_at):
        units_line = data_lines[0][1]
        skip = index + 1
        warnings.append(
            f"line {index + 2} holds units, not data ("
            + ", ".join(c for c in units_line if c)[:80]
            + "): checked against the channel map and skipped"
        )
        data_lines = data_lines[1:]
        if not data_lines and head.complete:
            raise ParseError(
                "header and units only: no data rows (aborted run?)", location=f"line {index + 3}"
            )
    _written_unit_conflicts(labels, units_line, mapped, time_column, time_unit, index + 1)
    sample = [[cells[p] for p in numeric_at if p < len(cells)] for _, cells in data_lines]
    if decimal is None and sep != ",":
        decimal_comma = guess_decimal_comma(sample, sep)
        if decimal_comma:
            first = next(
                (
                    i + 1
                    for (i, _), row in zip(data_lines, sample, strict=True)
                    if "," in "".join(row)
                ),
                index + 2,
            )
            warnings.append(
                f"numbers with decimal commas (e.g. line {first}) were read as decimals; say "
                '"decimal": "," in the channel map to confirm'
            )
    elif decimal == "," and sep == ",":
        raise ParseError("decimal ',' needs a delimiter other than ','", location="channel_map")
    else:
        decimal_comma = decimal == ","
    quoted = sep == "\t" and any(
        v.strip().startswith('"') for i, _ in data_lines for v in head.lines[i].split("\t")
    )
    dtypes: dict[str, pl.DataType] = {column_of[ch.source_column]: pl.Float64() for ch, _ in mapped}
    dtypes[column_of[time_column]] = pl.String() if is_datetime else pl.Float64()
    keep = list(
        dict.fromkeys([column_of[time_column], *(column_of[ch.source_column] for ch, _ in mapped)])
    )
    if quoted or decimal_comma:
        frame, read_warnings = _read_dialect(
            head,
            header_index=skip,
            separator=sep,
            columns=columns,
            dtypes=dtypes,
            keep=keep,
            decimal_comma=decimal_comma,
        )
    else:
        frame, read_warnings = read_rows(
            head, header_index=skip, separator=sep, columns=columns, dtypes=dtypes, keep=keep
        )
    warnings += read_warnings
    short = count_short_rows(frame, keep[-1])
    tcol = column_of[time_column]
    start = None
    if is_datetime:
        frame, start = _datetime_seconds(frame, tcol, time_spec, time_column, skip + 2)
    else:
        frame = frame.with_columns((pl.col(tcol) * scale).alias("time_s"))
    rows_read = frame.height
    frame, timebase, time_warnings = clean_time(frame, first_data_line=skip + 2)
    if rows_read and frame.height == 0:
        raise ParseError(
            f"no row has a readable value in time column {time_column!r}",
            location=f"line {skip + 2}",
        )
    timebase.short_rows = short
    warnings += time_warnings
    if short:
        warnings.append(f"{short} rows are shorter than the header (missing values left empty)")
    specs = [ColumnSpec(column_of[ch.source_column], ch, *conv) for ch, conv in mapped]
    series = series_from(frame, specs)
    conventions = {
        "time_s": f"'{time_column}' ({time_unit}) from the channel map",
        "units": "converted to Torr, degC, sccm, ng/cm2, Hz, W from the map's units",
    }
    if decimal_comma:
        conventions["numbers"] = "decimal commas"
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
            **({"units_line": skip + 1} if units_line is not None else {}),
        },
        warnings=warnings,
        conventions=conventions,
        parser="generic_ald_log",
    )


class GenericAldLogParser:
    """Delimited time series + ``ctx.metadata['channel_map']``; never wins a sniff."""

    specificity = 0  # reads any table through a column map: vendor parsers win ties

    name: ClassVar[str] = "generic_ald_log"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        return 0.0  # needs the tool's channel map, which the bytes cannot show

    def parse(self, path: Path, ctx: ParseContext) -> AldLog:
        # "column_mapping": a saved map (lims.ColumnMapping) the ingestion service resolved
        channel_map = ctx.metadata.get("channel_map") or ctx.metadata.get("column_mapping")
        if channel_map is None:
            raise ParseError(
                "the generic ALD log parser needs the tool's channel map in "
                "ctx.metadata['channel_map'] (or a saved column mapping)",
                location="channel_map",
            )
        return parse_generic_log(Path(path), ctx, channel_map)

    def validate_mapping(self, mapping: Any) -> None:
        """What can be checked without a file (when a map is saved): ParseError otherwise."""
        _map_parts(mapping)
