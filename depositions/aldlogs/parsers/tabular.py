"""Reading delimited ALD logs: encodings, headers, ragged rows and broken time bases.

The head of the file is decoded with the detected encoding (never assumed UTF-8) to find the
header; data rows go to ``pl.read_csv`` with an explicit schema, because numbers are ASCII in
every ASCII-compatible code page (UTF-16/32 files are transcoded in memory first). Problems
real files have are repaired and reported, never crashed on: rows shorter than the header
(missing values become null), a last row cut mid-line (dropped), unparsable cells (null, with
a warning), time going backwards (those rows dropped) and gaps (counted).
"""

from __future__ import annotations

import codecs
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from depositions.aldlogs.parsers.types import Channel
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import (
    NULL_VALUES,
    ascii_compatible,
    binary_offset,
    bom_encoding,
    check_line_lengths,
    detect_encoding,
    nonempty_size,
    polars_parse_error,
    read_head,
)

HEAD_BYTES = 256 * 1024
MAX_TEXT_BYTES = 64 * 1024 * 1024  # companion files and event logs are decoded whole
GAP_FACTOR = 3.0  # a time step above 3 sample periods is a gap
# No tool-log line comes near this (a 40-channel data log row is ~400 bytes, a printed recipe
# wraps at 75 characters): a longer one is a missing line break or another kind of file. The
# text toolkit's own bound (1 MiB) is for any text export; tool logs are refused sooner.
MAX_LINE_BYTES = 64 * 1024
_CR_RUN = re.compile(rb"\r+\n")


@dataclass
class TextHead:
    """The decoded start of a text file."""

    path: Path
    size: int
    encoding: str
    lines: list[str]
    complete: bool  # the head is the whole file
    warnings: list[str] = field(default_factory=list)


def _encoding_for(head: bytes, declared: str | None, warnings: list[str]) -> str:
    """Declared encoding if it decodes the head, else the detected one (with a warning)."""
    if declared:
        name = detect_encoding(head, declared)
        cut = head[: head.rfind(b"\n") + 1] or head
        bom = bom_encoding(cut)
        try:
            cut[bom[1] if bom else 0 :].decode(name)
            return name
        except UnicodeDecodeError as exc:
            found = detect_encoding(head)
            warnings.append(
                f"declared encoding {declared!r} does not decode the file (byte "
                f"0x{cut[exc.start]:02x} at offset {exc.start}); read as {found}"
            )
            return found
    return detect_encoding(head)


def open_text(path: Path, ctx: ParseContext, head_bytes: int = HEAD_BYTES) -> TextHead:
    """Decode the head of ``path``; ParseError for empty, unreadable or binary files."""
    size = nonempty_size(path)
    head = read_head(path, head_bytes)
    warnings: list[str] = []
    encoding = _encoding_for(head, ctx.encoding, warnings)
    offset = None if encoding.startswith(("utf-16", "utf-32")) else binary_offset(head)
    if offset is not None:
        raise ParseError(
            f"binary content (byte 0x{head[offset]:02x}) where a text log was expected",
            location=f"byte offset {offset}",
        )
    # before a reader holds an over-long line (csv's field limit, a polars row) in memory;
    # UTF-16/32 lines take up to 4 bytes a character between their 0x0A bytes
    check_line_lengths(
        path, MAX_LINE_BYTES * (4 if encoding.startswith(("utf-16", "utf-32")) else 1)
    )
    bom = bom_encoding(head)
    body = head[bom[1] :] if bom else head
    complete = len(head) >= size
    text = body.decode(encoding, errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the head ends inside a line
    return TextHead(path, size, encoding, lines, complete, warnings)


def read_text(path: Path, ctx: ParseContext) -> TextHead:
    """The whole file decoded (companion tables, event logs); refuses absurdly large files
    (:func:`open_text` refused lines longer than :data:`MAX_LINE_BYTES`)."""
    head = open_text(path, ctx)
    if head.size > MAX_TEXT_BYTES:
        raise ParseError(
            f"file of {head.size} bytes is too large for a text table of this kind",
            location="file",
        )
    if head.complete:
        return head
    data = path.read_bytes()
    bom = bom_encoding(data)
    text = data[bom[1] if bom else 0 :].decode(head.encoding, errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    return TextHead(path, head.size, head.encoding, lines, True, head.warnings)


def dedupe(labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """Unique column names (``x``, ``x_2``...) and a warning per duplicated label."""
    seen: dict[str, int] = {}
    out: list[str] = []
    warnings: list[str] = []
    for index, label in enumerate(labels):
        name = label or f"column_{index + 1}"
        if name in seen:
            seen[name] += 1
            new = f"{name}_{seen[name]}"
            while new in seen:
                seen[name] += 1
                new = f"{name}_{seen[name]}"
            warnings.append(
                f"column {index + 1} repeats the name {name!r}: kept as {new!r} "
                "(both columns are read; check which one the instrument meant)"
            )
            seen[new] = 1
            name = new
        else:
            seen[name] = 1
        out.append(name)
    return out, warnings


def read_rows(
    head: TextHead,
    *,
    header_index: int,
    separator: str,
    columns: Sequence[str],
    dtypes: dict[str, pl.DataType],
    keep: Sequence[str],
    fast_dtypes: dict[str, pl.DataType] | None = None,
    skip_lines: int | None = None,
    decimal_comma: bool = False,
    normalize_newlines: bool = False,
) -> tuple[pl.DataFrame, list[str]]:
    """The data rows below ``header_index`` as typed columns ``keep``.

    Attempts, cheapest first: ``fast_dtypes`` (e.g. Int8 for 0/1 valve columns, a third faster
    to read than floats), then ``dtypes``, then with null markers (N/A, --), and last with
    unparsable cells read as null and a warning naming the first failure. A last line without
    line end and with fewer fields than the header was cut during copy: it is dropped.

    Opt-in, for formats that need them (defaults read the file as is): ``skip_lines`` (lines
    before the first data row, default the header's line + 1), ``decimal_comma`` (``1,787``),
    ``normalize_newlines`` (``\\r\\r\\n`` line ends, as Windows programs that add a CR to a CRLF
    write, read as one line end; the file is then read into memory).
    """
    warnings: list[str] = []
    source: Path | io.BytesIO
    if ascii_compatible(head.encoding) and not normalize_newlines:
        source = head.path
    else:
        data = head.path.read_bytes()
        bom = bom_encoding(data)
        data = data[bom[1] if bom else 0 :]
        if not ascii_compatible(head.encoding):
            data = data.decode(head.encoding, errors="replace").encode("utf-8")
        if normalize_newlines:
            data = _CR_RUN.sub(b"\n", data)
        source = io.BytesIO(data)
    options: dict[str, Any] = {
        "has_header": False,
        "separator": separator,
        "skip_lines": header_index + 1 if skip_lines is None else skip_lines,
        "truncate_ragged_lines": True,
        "raise_if_empty": False,
        "encoding": "utf8-lossy",
        "quote_char": '"' if separator != "\t" else None,
    }
    if decimal_comma:
        options["decimal_comma"] = True

    def scan(types: dict[str, pl.DataType], **extra: Any) -> pl.DataFrame:
        if isinstance(source, io.BytesIO):
            source.seek(0)
        schema = {name: types.get(name, dtypes.get(name, pl.String())) for name in columns}
        return pl.scan_csv(source, schema=schema, **options, **extra).select(list(keep)).collect()

    # Numbers and NaN parse as floats on their own; null markers (N/A, --) cost a third more
    # reading time, so they are only looked for when the plain read fails.
    attempts: list[tuple[dict[str, pl.DataType], dict[str, Any]]] = [
        *([(fast_dtypes, {})] if fast_dtypes else []),
        (dtypes, {}),
        (dtypes, {"null_values": NULL_VALUES}),
    ]
    frame: pl.DataFrame | None = None
    error: BaseException | None = None
    for types, extra in attempts:
        try:
            frame = scan(types, **extra)
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
            frame = scan(dtypes, null_values=NULL_VALUES, ignore_errors=True)
        except (pl.exceptions.PolarsError, OSError) as again:
            raise polars_parse_error(again) from again
    cut = _cut_last_line(head, separator, len(columns))
    if cut is not None and frame.height:
        frame = frame.head(frame.height - 1)
        warnings.append(cut)
    return frame, warnings


def _cut_last_line(head: TextHead, separator: str, n_columns: int) -> str | None:
    """A warning when the file ends inside a row that has fewer fields than the header."""
    try:
        with head.path.open("rb") as fh:
            fh.seek(max(0, head.size - 65536))
            tail = fh.read()
    except OSError:
        return None
    text = tail.decode(head.encoding, errors="replace") if tail else ""
    if not text or text.endswith("\n"):
        return None
    last = text.replace("\r", "").split("\n")[-1]
    fields = len(last.split(separator))
    if fields >= n_columns:
        return None
    return (
        f"the last line has {fields} of {n_columns} fields and no line end: the file was cut "
        "(truncated copy or a run still writing); that row was dropped"
    )


# --- time -------------------------------------------------------------------------------------

TIMESTAMP_FORMATS: tuple[str, ...] = (
    "%H:%M:%S.%f %m/%d/%Y",  # LabVIEW: 11:23:14.559 05/24/2019
    "%H:%M:%S %m/%d/%Y",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y %I:%M:%S %p",  # 12-hour clock
    "%m/%d/%Y %I:%M:%S.%f %p",
    "%m/%d/%Y %H:%M:%S.%f",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S.%f",
    "%d.%m.%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
)


def parse_timestamp(text: str, formats: Sequence[str] = TIMESTAMP_FORMATS) -> datetime | None:
    value = text.strip()
    for fmt in formats:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


def timestamp_format(samples: Sequence[str]) -> str | None:
    """The first format that reads every non-empty sample value."""
    values = [s.strip() for s in samples if s and s.strip()]
    if not values:
        return None
    for fmt in TIMESTAMP_FORMATS:
        try:
            for value in values:
                datetime.strptime(value, fmt)
        except ValueError:
            continue
        return fmt
    return None


def timestamps_to_seconds(column: pl.Series, fmt: str) -> tuple[pl.Series, datetime | None]:
    """Seconds since the first parsable timestamp (null where a value does not parse)."""
    polars_fmt = fmt.replace(".%f", "%.f")
    parsed = column.str.strip_chars().str.strptime(pl.Datetime("us"), polars_fmt, strict=False)
    first = parsed.drop_nulls().head(1)
    if first.is_empty():
        return pl.Series("time_s", [None] * column.len(), dtype=pl.Float64), None
    origin = first.item()
    seconds = (parsed - origin).dt.total_microseconds().cast(pl.Float64) / 1e6
    return seconds.alias("time_s"), origin


@dataclass
class TimeBase:
    """What the time column looked like: kept in metadata, used by the log-quality check."""

    rows_read: int = 0
    rows_without_time: int = 0
    rows_backwards: int = 0
    first_backwards_row: int | None = None
    gaps: int = 0
    largest_gap_s: float | None = None
    short_rows: int = 0
    sample_period_s: float | None = None
    jitter_s: float = 0.0  # 99th percentile of |step - period| outside gaps

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def clean_time(
    frame: pl.DataFrame,
    *,
    first_data_line: int,
    gap_factor: float = GAP_FACTOR,
    line_numbers: np.ndarray | None = None,
) -> tuple[pl.DataFrame, TimeBase, list[str]]:
    """Drop rows without time or going back in time; measure the period and the gaps.

    ``frame`` must have ``time_s``. Rows earlier than an earlier row (clock reset, glitch) are
    dropped rather than sorted in, because sorting would interleave two runs of a file that was
    appended to. A clean time base (the usual case) costs one pass for the steps, reused for
    the period, the jitter and the gaps. Warnings name row ``i``'s line as ``first_data_line +
    i``, or ``line_numbers[i]`` when given (rows read from a file with lines left out).
    """

    def line_of(row: int) -> int:
        return int(line_numbers[row]) if line_numbers is not None else row + first_data_line

    warnings: list[str] = []
    tb = TimeBase(rows_read=frame.height)
    column = frame["time_s"].cast(pl.Float64)
    raw = (column.fill_null(np.nan) if column.null_count() else column).to_numpy()
    missing = ~np.isfinite(raw)
    any_missing = bool(missing.any())
    if any_missing:
        tb.rows_without_time = int(missing.sum())
        first = line_of(int(np.flatnonzero(missing)[0]))
        warnings.append(
            f"{tb.rows_without_time} rows without a time value were dropped (first: line {first})"
        )
    steps = np.diff(raw)
    if any_missing or bool((steps < 0).any()):
        filled = np.where(missing, -np.inf, raw)
        previous_max = np.concatenate(([-np.inf], np.maximum.accumulate(filled)[:-1]))
        backwards = ~missing & (raw < previous_max)
        if backwards.any():
            tb.rows_backwards = int(backwards.sum())
            row = line_of(int(np.flatnonzero(backwards)[0]))
            tb.first_backwards_row = row
            warnings.append(
                f"time goes backwards on {tb.rows_backwards} rows (first: line {row}); those "
                "rows were dropped"
            )
        keep = ~(missing | backwards)
        frame = frame.filter(pl.Series(keep))
        times = raw[keep]
        steps = np.diff(times)
    else:
        times = raw
    if times.size >= 2:
        forward = steps > 0
        all_forward = bool(forward.all())
        # np.median copies its input unless allowed to reorder it: only a filtered copy is ours
        positive = steps if all_forward else steps[forward]
        period = (
            float(np.median(positive, overwrite_input=not all_forward)) if positive.size else None
        )
        tb.sample_period_s = period
        if period:
            in_period = forward & (steps <= gap_factor * period)
            regular = steps if in_period.all() else steps[in_period]
            if regular.size:
                stride = max(1, regular.size // 20000)  # a sample is plenty for a percentile
                tb.jitter_s = float(np.percentile(np.abs(regular[::stride] - period), 99))
            big = steps > gap_factor * period
            tb.gaps = int(big.sum())
            if tb.gaps:
                tb.largest_gap_s = float(steps.max())
                warnings.append(
                    f"{tb.gaps} gaps in the time base (steps > {gap_factor:g} x the "
                    f"{period:.3g} s period; largest {tb.largest_gap_s:.3g} s)"
                )
    return frame, tb, warnings


def count_short_rows(frame: pl.DataFrame, last_column: str) -> int:
    """Rows whose last field is empty while most rows have it: rows shorter than the header."""
    if last_column not in frame.columns or frame.height == 0:
        return 0
    n = frame[last_column].null_count()
    return n if 0 < n < frame.height / 2 else 0


# --- channels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """How one raw column becomes a channel of the series."""

    column: str  # de-duplicated raw column name (in the frame read)
    channel: Channel
    scale: float = 1.0
    offset: float = 0.0


def series_from(frame: pl.DataFrame, specs: Sequence[ColumnSpec]) -> pl.DataFrame:
    """``time_s`` + one Float64 column per channel in canonical units, NaN read as null.

    Only float columns that hold a NaN go through ``fill_nan``: one scan of each finds them,
    where ``fill_nan`` would copy every column (integers read as such hold no NaN).
    """
    schema = frame.schema
    exprs: list[pl.Expr] = [pl.col("time_s").cast(pl.Float64)]
    floats = [
        name
        for name in dict.fromkeys(spec.column for spec in specs)
        if name in schema and schema[name].is_float()
    ]
    with_nan: set[str] = set()
    if floats:
        found = frame.select(pl.col(name).is_nan().any() for name in floats).row(0)
        with_nan = {name for name, has_nan in zip(floats, found, strict=True) if has_nan}
    for spec in specs:
        expr = pl.col(spec.column).cast(pl.Float64, strict=False)
        if spec.scale != 1.0:
            expr = expr * spec.scale
        if spec.offset != 0.0:
            expr = expr + spec.offset
        if spec.column in with_nan or spec.column not in schema:
            expr = expr.fill_nan(None)
        exprs.append(expr.alias(spec.channel.name))
    return frame.select(exprs)


def start_time_iso(origin: datetime | None, first_elapsed_s: float | None = None) -> str | None:
    if origin is None:
        return None
    if first_elapsed_s is not None and math.isfinite(first_elapsed_s):
        origin = origin - timedelta(seconds=first_elapsed_s)
    return origin.isoformat(timespec="milliseconds")


def locate_line(lines: Sequence[str], test: Callable[[str], bool], limit: int = 60) -> int | None:
    for index, line in enumerate(lines[:limit]):
        if test(line):
            return index
    return None


def put_column(frame: pl.DataFrame, column: pl.Series) -> pl.DataFrame:
    """``frame.with_columns(column)``, appended without a query plan when the name is new."""
    if column.name in frame.columns:
        return frame.with_columns(column)
    return frame.hstack([column])


def codec_name(encoding: str) -> str:
    return codecs.lookup(encoding).name
