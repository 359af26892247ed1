"""Furnace thermocouple logs: (time, temperature) text files as furnaces write them. Pure.

:func:`parse_furnace_log`: any of , ; tab or spaces as separator, units in the header
(``time (s)``, ``Time [min]``, ``Temperature [°C]``, ``T (K)``), latin-1 or UTF-8, preamble
lines, short or broken rows (skipped and counted). Rules: docs/depositions.md.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lims.ingestion.base import ParseError

PARSER_NAME = "furnace-csv"
PARSER_VERSION = "1"


@dataclass(frozen=True)
class FurnaceSeries:
    times_s: list[float]
    temperatures_c: list[float]
    time_column: str
    temperature_column: str
    encoding: str
    warnings: list[str] = field(default_factory=list)


_TIME = re.compile(
    r"\b(time|timestamp|zeit|elapsed)\b|^t\s*[\[(]\s*(s|sec|min|h|hr)\s*[\])]", re.IGNORECASE
)
_TEMP = re.compile(r"temp|degc|[\[(]\s*°?\s*[ck]\s*[\])]|\btc\d*\b|thermocouple", re.IGNORECASE)
_SETPOINT = re.compile(r"set\s*-?point|\bsetp?\b|\bsp\b|target", re.IGNORECASE)
_UNIT = re.compile(r"[\[(]\s*([^\])]+?)\s*[\])]")
_TIME_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "seconds"), 1.0),
    **dict.fromkeys(("min", "mins", "minutes"), 60.0),
    **dict.fromkeys(("h", "hr", "hrs", "hours"), 3600.0),
}


def _decode(data: bytes) -> tuple[str, str]:
    """UTF-8 when it is (BOM or not), otherwise latin-1, which never fails."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def _separator(line: str) -> str | None:
    """The most frequent of , ; tab; None (whitespace) when the line has none of them."""
    best = max((",", ";", "\t"), key=line.count)
    return best if best in line else None


def _split(line: str, sep: str | None) -> list[str]:
    parts = line.split(sep) if sep else line.split()
    return [p.strip().strip('"').strip() for p in parts]


def _number(text: str, decimal_comma: bool) -> float | None:
    if decimal_comma:
        text = text.replace(",", ".")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _time_factor(header: str) -> float:
    match = _UNIT.search(header)
    unit = (match.group(1) if match else "s").strip().lower()
    if unit not in _TIME_UNITS:
        raise ParseError(f"unknown time unit {unit!r} in header {header!r}")
    return _TIME_UNITS[unit]


def _temperature_converter(header: str) -> Any:
    match = _UNIT.search(header)
    unit = (match.group(1) if match else "°C").strip().replace("°", "").replace("deg", "")
    unit = unit.strip().upper()
    if unit in ("C", ""):
        return lambda v: v
    if unit == "K":
        return lambda v: v - 273.15
    if unit == "F":
        return lambda v: (v - 32.0) * 5.0 / 9.0
    raise ParseError(f"unknown temperature unit {unit!r} in header {header!r}")


def _pick_temperature(headers: list[str], time_index: int) -> int | None:
    candidates = [i for i, h in enumerate(headers) if i != time_index and _TEMP.search(h)]
    measured = [i for i in candidates if not _SETPOINT.search(headers[i])]
    chosen = measured or candidates
    return chosen[0] if chosen else None


def parse_furnace_log(data: bytes) -> FurnaceSeries:
    """Parse (time, temperature) rows; raise ParseError (with the line) when it cannot."""
    text, encoding = _decode(data)
    lines = text.splitlines()
    warnings: list[str] = []
    header_at: int | None = None
    data_at: int | None = None
    sep: str | None = None
    headers: list[str] = []
    for n, line in enumerate(lines[:200]):
        if not line.strip():
            continue
        sep = _separator(line)
        fields = _split(line, sep)
        if len(fields) < 2:
            continue
        t_idx = next((i for i, f in enumerate(fields) if _TIME.search(f)), None)
        if t_idx is not None and _pick_temperature(fields, t_idx) is not None:
            header_at, headers = n, fields
            break
        if all(_number(f, sep != ",") is not None for f in fields[:2]):
            data_at = n  # data without a header
            break
    if header_at is None:
        if data_at is None:
            if not text.strip():
                raise ParseError("the file is empty")
            raise ParseError("no header with a time and a temperature column found")
        sep = _separator(lines[data_at])
        header_at, headers = data_at - 1, ["time (s)", "temperature (°C)"]
        warnings.append("no header: first column read as time (s), second as temperature (°C)")
    t_idx = next(i for i, h in enumerate(headers) if _TIME.search(h))
    temp_idx = _pick_temperature(headers, t_idx)
    assert temp_idx is not None
    to_c = _temperature_converter(headers[temp_idx])
    decimal_comma = sep != ","
    times: list[float] = []
    temps: list[float] = []
    skipped = 0
    first_stamp: datetime | None = None
    factor: float | None = None
    for line in lines[header_at + 1 :]:
        if not line.strip():
            continue
        fields = _split(line, sep)
        if len(fields) <= max(t_idx, temp_idx):
            skipped += 1
            continue
        temp = _number(fields[temp_idx], decimal_comma)
        t_raw = _number(fields[t_idx], decimal_comma)
        if t_raw is None:  # wall-clock stamps: seconds since the first one
            try:
                stamp = datetime.fromisoformat(fields[t_idx])
            except ValueError:
                skipped += 1
                continue
            first_stamp = first_stamp or stamp
            t_s = (stamp - first_stamp).total_seconds()
        else:
            if factor is None:
                factor = _time_factor(headers[t_idx])
            t_s = t_raw * factor
        if temp is None:
            skipped += 1
            continue
        times.append(t_s)
        temps.append(float(to_c(temp)))
    if skipped:
        warnings.append(f"{skipped} row(s) short or not numeric were skipped")
    if not times:
        raise ParseError("no data rows under the header", location=f"line {header_at + 2}")
    if any(b < a for a, b in itertools.pairwise(times)):
        order = sorted(range(len(times)), key=times.__getitem__)
        times = [times[i] for i in order]
        temps = [temps[i] for i in order]
        warnings.append("time was not increasing: rows sorted by time")
    t0 = times[0]
    return FurnaceSeries(
        times_s=[t - t0 for t in times],
        temperatures_c=temps,
        time_column=headers[t_idx],
        temperature_column=headers[temp_idx],
        encoding=encoding,
        warnings=warnings,
    )


class FurnaceCsvParser:
    """The parser protocol of ``lims.ingestion`` (not registered yet: see docs/depositions.md)."""

    name = PARSER_NAME
    version = PARSER_VERSION
    kind = "furnace_log"

    def sniff(self, head: bytes, filename: str) -> float:
        text, _ = _decode(head[:4096])
        first = next((line for line in text.splitlines() if line.strip()), "")
        return 0.6 if _TIME.search(first) and _TEMP.search(first) else 0.0

    def parse(self, path: Any, ctx: Any) -> FurnaceSeries:
        with open(path, "rb") as fh:
            return parse_furnace_log(fh.read())
