"""Furnace thermocouple logs: (time, temperature) text files as furnaces write them. Pure.

:func:`read_furnace_log`: any of , ; tab or spaces as separator, units in the header
(``time (s)``, ``Time [min]``, ``Temperature [°C]``, ``T (K)``), preamble lines, elapsed
numbers, clock times or date-times, short or broken rows (skipped and counted). The file is
read line by line with bounded line length and row count: a furnace log is small, and
nothing read from a file sizes an allocation. Rules: docs/depositions.md.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, ClassVar

from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import binary_offset, detect_encoding, sniff_lines

PARSER_NAME = "furnace-csv"
PARSER_VERSION = "2"  # 2: clock times, dotted dates, bounded lines and rows, located errors

HEADER_LINES = 200  # the header is among the first lines (after a preamble)
MAX_LINE_CHARS = 64 * 1024
MAX_ROWS = 2_000_000  # 23 days at one sample a second
HEAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class FurnaceSeries:
    times_s: list[float]
    temperatures_c: list[float]
    time_column: str
    temperature_column: str
    encoding: str
    warnings: list[str] = field(default_factory=list)
    header_line: int | None = None  # 1-based; None when the file has no header


_TIME = re.compile(
    r"\b(time|timestamp|zeit|elapsed)\b|^t\s*[\[(]\s*(s|sec|min|h|hr)\s*[\])]", re.IGNORECASE
)
_DATE = re.compile(r"^\s*(date|datum)\s*$", re.IGNORECASE)
_TEMP = re.compile(r"temp|degc|[\[(]\s*°?\s*[ck]\s*[\])]|\btc\d*\b|thermocouple", re.IGNORECASE)
_SETPOINT = re.compile(r"set\s*-?point|\bsetp?\b|\bsp\b|target", re.IGNORECASE)
# What furnace controllers log beside temperatures; anything else (pressure, valves, currents)
# is another instrument's file, which the furnace parser does not claim by content.
_CONTROLLER = re.compile(
    r"program|segment|\bstep\b|status|output|power|heat|\bop\b|%|event|alarm|comment|\bno\.?$"
    r"|^#$|index|record",
    re.IGNORECASE,
)
# The furnace's atmosphere (the anneal's gas flow and pressure): a furnace log may have them,
# but so may another instrument's, so a header with them is a less certain furnace log.
_ATMOSPHERE = re.compile(
    r"pressure|vacuum|mbar|torr|\bpa\b|\bp\s*[\[(]|flow|sccm|slm|\bgas\b|\bo2\b|oxygen|dew",
    re.IGNORECASE,
)
_UNIT = re.compile(r"[\[(]\s*([^\])]+?)\s*[\])]")
_CLOCK = re.compile(r"^(\d+):([0-5]\d)(?::([0-5]\d(?:\.\d*)?))?$")
_TIME_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "seconds"), 1.0),
    **dict.fromkeys(("min", "mins", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hours"), 3600.0),
    **dict.fromkeys(("d", "day", "days"), 86400.0),
}
_STAMP_FORMATS = (  # besides ISO 8601; day-first dotted dates are unambiguous
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
)


# --- text -------------------------------------------------------------------------------------


def _lines(stream: IO[bytes], encoding: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its end), each bounded in length."""
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline=None)
    number = 0
    while True:
        line = text.readline(MAX_LINE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise ParseError(
                f"a line longer than {MAX_LINE_CHARS} characters: not a furnace log",
                location=f"line {number}",
            )
        yield number, line.rstrip("\r\n")


def _separator(line: str) -> str | None:
    """The most frequent of , ; tab; None (whitespace) when the line has none of them."""
    best = max((",", ";", "\t"), key=line.count)
    return best if best in line else None


def _split(line: str, sep: str | None) -> list[str]:
    parts = line.split(sep) if sep else line.split()
    return [p.strip().strip('"\ufeff').strip() for p in parts]


def _number(text: str, decimal_comma: bool) -> float | None:
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# --- header -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Header:
    fields: list[str]
    separator: str | None
    time: int
    temperature: int
    date: int | None
    atmosphere: list[str]  # pressure, gas flow... columns
    others: list[str]  # columns that are none of the above nor controller columns


def _header(fields: list[str], sep: str | None) -> _Header | None:
    """The columns of a header line: a time column and a measured temperature, or None."""
    time_index = next((i for i, f in enumerate(fields) if _TIME.search(f)), None)
    if time_index is None:
        return None
    temps = [i for i, f in enumerate(fields) if i != time_index and _TEMP.search(f)]
    measured = [i for i in temps if not _SETPOINT.search(fields[i])]
    if not temps:
        return None
    chosen = (measured or temps)[0]
    date = next((i for i, f in enumerate(fields) if _DATE.match(f)), None)
    rest = [
        f
        for i, f in enumerate(fields)
        if f and i not in (time_index, date) and i not in temps and not _CONTROLLER.search(f)
    ]
    atmosphere = [f for f in rest if _ATMOSPHERE.search(f)]
    others = [f for f in rest if f not in atmosphere]
    return _Header(fields, sep, time_index, chosen, date, atmosphere, others)


def _time_factor(label: str, line: int) -> float:
    match = _UNIT.search(label)
    unit = (match.group(1) if match else "s").strip().lower()
    if unit not in _TIME_UNITS:
        raise ParseError(
            f"unknown time unit {unit!r} in column {label!r} (s, min, h or d)",
            location=f"line {line}",
        )
    return _TIME_UNITS[unit]


def _temperature_converter(label: str, line: int) -> Any:
    match = _UNIT.search(label)
    unit = (match.group(1) if match else "°C").strip().replace("°", "").replace("deg", "")
    unit = unit.strip().upper()
    if unit in ("C", ""):
        return lambda v: v
    if unit == "K":
        return lambda v: v - 273.15
    if unit == "F":
        return lambda v: (v - 32.0) * 5.0 / 9.0
    raise ParseError(
        f"unknown temperature unit {unit!r} in column {label!r} (°C, K or °F)",
        location=f"line {line}",
    )


# --- time values ------------------------------------------------------------------------------


def _stamp(text: str, formats: tuple[str, ...]) -> tuple[datetime | None, str]:
    """The date-time in ``text`` and the format that read it ("iso" for ISO 8601)."""
    for fmt in formats:
        try:
            if fmt == "iso":
                return datetime.fromisoformat(text), fmt
            return datetime.strptime(text, fmt), fmt
        except ValueError:
            continue
    return None, ""


def _clock_s(text: str) -> float | None:
    """``h:mm[:ss[.f]]`` as seconds (hours may exceed 24: elapsed clocks)."""
    match = _CLOCK.match(text)
    if not match:
        return None
    hours, minutes, seconds = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds or 0)


class _Clock:
    """Turns the time column's text into seconds: numbers (times the header's unit), date-times
    (since the first), or clock times (since the first; a clock that goes back by more than
    12 h has passed midnight, since a log never goes back in time)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.first_stamp: datetime | None = None
        self.first_clock: float | None = None
        self.last_clock = 0.0
        self.days = 0  # midnights passed by clock times
        self.formats: tuple[str, ...] = ("iso", *_STAMP_FORMATS)  # last one that read first

    def seconds(self, text: str, date: str | None, decimal_comma: bool) -> float | None:
        value = _number(text, decimal_comma)
        if value is not None:
            return value * self.factor
        stamp, fmt = _stamp(f"{date} {text}" if date else text, self.formats)
        if stamp is not None:
            if fmt != self.formats[0]:
                self.formats = (fmt, *(f for f in self.formats if f != fmt))
            if stamp.tzinfo is not None:  # aware stamps: compared in UTC
                stamp = stamp.astimezone(UTC).replace(tzinfo=None)
            self.first_stamp = self.first_stamp or stamp
            return (stamp - self.first_stamp).total_seconds()
        clock = _clock_s(text)
        if clock is None:
            return None
        if self.first_clock is None:
            self.first_clock = self.last_clock = clock
        if clock < self.last_clock - 12 * 3600:
            self.days += 1
        self.last_clock = clock
        return clock + self.days * 86400 - self.first_clock


# --- parser -----------------------------------------------------------------------------------


def read_furnace_log(stream: IO[bytes], *, encoding: str | None = None) -> FurnaceSeries:
    """Parse (time, temperature) rows; raise ParseError (with its line) when it cannot."""
    head = stream.read(HEAD_BYTES)
    if not head:
        raise ParseError("the file is empty", location="byte 0")
    offset = binary_offset(head)
    if offset is not None:
        raise ParseError(
            f"binary content (byte 0x{head[offset]:02x}) where a text log was expected",
            location=f"byte {offset}",
        )
    codec = detect_encoding(head, encoding)
    lines = _lines(io.BufferedReader(_Rejoin(head, stream)), codec)

    warnings: list[str] = []
    header: _Header | None = None
    header_line: int | None = None
    first_data: tuple[int, str] | None = None
    labels: tuple[int, list[str]] | None = None
    seen = 0
    for number, line in lines:
        if not line.strip():
            continue
        seen += 1
        sep = _separator(line)
        fields = _split(line, sep)
        if len(fields) >= 2:
            header = _header(fields, sep)
            if header is not None:
                header_line = number
                break
            if all(_number(f, sep != ",") is not None for f in fields[:2]):
                if labels is not None and len(labels[1]) == len(fields):
                    shown = ", ".join(repr(f) for f in labels[1][:6])
                    raise ParseError(
                        f"the column header ({shown}) has no time and temperature column "
                        "this parser knows (time: time/elapsed/timestamp/zeit with s, min, h "
                        "or d; temperature: temp.../TC1/thermocouple or a °C, K or °F unit)",
                        location=f"line {labels[0]}",
                    )
                first_data = (number, line)  # data without a header
                header = _Header(["time (s)", "temperature (°C)"], sep, 0, 1, None, [], [])
                warnings.append(
                    "no header: first column read as time (s), second as temperature (°C)"
                )
                break
            labels = (number, fields)  # a header we cannot read, if data follows
        if number >= HEADER_LINES:
            break
    if header is None:
        if not seen:
            raise ParseError("the file holds only blank lines", location="line 1")
        raise ParseError(
            "no header with a time and a temperature column found",
            location=f"lines 1-{min(number, HEADER_LINES)}",
        )

    where = header_line or (first_data[0] if first_data else 1)
    to_c = _temperature_converter(header.fields[header.temperature], where)
    clock = _Clock(
        _time_factor(header.fields[header.time], where) if header_line is not None else 1.0
    )
    decimal_comma = header.separator != ","  # "0,5;25,1" and "0,5 25,1"
    width = max(header.time, header.temperature, header.date or 0)
    times: list[float] = []
    temps: list[float] = []
    skipped = 0
    first_bad: tuple[int, str, str] | None = None
    rows = itertools.chain([first_data] if first_data else [], lines)
    for number, line in rows:
        if not line.strip():
            continue
        fields = _split(line, header.separator)
        if len(fields) <= width:
            skipped += 1
            continue
        date = fields[header.date] if header.date is not None else None
        t_s = clock.seconds(fields[header.time], date, decimal_comma)
        temp = _number(fields[header.temperature], decimal_comma)
        if t_s is None or temp is None:
            skipped += 1
            if first_bad is None:
                column = header.time if t_s is None else header.temperature
                first_bad = (number, fields[column], header.fields[column])
            continue
        if len(times) >= MAX_ROWS:
            raise ParseError(
                f"more than {MAX_ROWS:,} rows: too long for a furnace log (thin it out)",
                location=f"line {number}",
            )
        times.append(t_s)
        temps.append(float(to_c(temp)))
    if not times:
        if first_bad is not None:
            what = (
                "a number, a clock time or a date-time"
                if first_bad[2] == header.fields[header.time]
                else "a number"
            )
            raise ParseError(
                f"no readable row: {first_bad[1][:40]!r} in column {first_bad[2]!r} is not {what}",
                location=f"line {first_bad[0]}",
            )
        raise ParseError("no data rows under the header", location=f"line {where + 1}")
    if skipped:
        at = f" (first at line {first_bad[0]})" if first_bad else ""
        warnings.append(f"{skipped} row(s) short or not numeric were skipped{at}")
    if clock.days:
        warnings.append(f"clock times passed midnight {clock.days} time(s): days added")
    if any(b < a for a, b in itertools.pairwise(times)):
        order = sorted(range(len(times)), key=times.__getitem__)
        times = [times[i] for i in order]
        temps = [temps[i] for i in order]
        warnings.append("time was not increasing: rows sorted by time")
    t0 = times[0]
    return FurnaceSeries(
        times_s=[t - t0 for t in times],
        temperatures_c=temps,
        time_column=header.fields[header.time],
        temperature_column=header.fields[header.temperature],
        encoding=codec,
        warnings=warnings,
        header_line=header_line,
    )


class _Rejoin(io.RawIOBase):
    """The head already read, then the rest of the stream: one pass, no seek needed."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head.nbytes:
            n = min(len(buffer), self._head.nbytes)
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def parse_furnace_log(data: bytes) -> FurnaceSeries:
    """:func:`read_furnace_log` on bytes in memory."""
    return read_furnace_log(io.BytesIO(data))


def sniff_furnace_log(head: bytes) -> float:
    """By the first header among the first lines with a time and a temperature column:
    0.7 when every other column is a furnace controller's (setpoint, output, program,
    segment...), 0.4 when the furnace's atmosphere (pressure, gas flow) is logged too, else 0:
    a file with other quantities (valves, currents, masses) is another instrument's."""
    lines = sniff_lines(head, HEADER_LINES, encodings=("utf-8",)) if head else None
    for line in lines or ():
        if not line.strip() or len(line) > MAX_LINE_CHARS:
            continue
        if "t" not in line.lower():  # every time label has a t: a data row is skipped cheaply
            continue
        sep = _separator(line)
        found = _header(_split(line, sep), sep)
        if found is not None:
            return 0.0 if found.others else 0.4 if found.atmosphere else 0.7
    return 0.0


class FurnaceCsvParser:
    """The parser protocol of ``lims.ingestion`` (kind ``furnace_log``)."""

    name: ClassVar[str] = PARSER_NAME
    version: ClassVar[str] = PARSER_VERSION
    kind: ClassVar[str] = "furnace_log"

    def sniff(self, head: bytes, filename: str) -> float:
        return sniff_furnace_log(head)

    def parse(self, path: Path, ctx: ParseContext) -> FurnaceSeries:
        try:
            with open(path, "rb") as fh:
                return read_furnace_log(fh, encoding=ctx.encoding)
        except OSError as exc:
            raise ParseError(f"cannot read file: {exc.strerror or exc}", location="file") from exc
