"""Anneal profiles and furnace-log checks. Pure: no ORM, bytes in, dataclasses out.

- :func:`planned_profile`: segments (ramp / dwell / cool) -> temperature knots over time;
- :func:`parse_furnace_log`: a two-column (time, temperature) text file as furnaces write it:
  any of , ; tab as separator, units in the header (``time (s)``, ``Time [min]``,
  ``Temperature [°C]``, ``T (K)``), latin-1 or UTF-8, preamble lines, short or broken rows;
- :func:`furnace_log_check`: did each dwell hold its temperature (within ± tolerance, default
  5 K) for at least its planned time? Timing is known only to ± one sample period, so a hold
  short by less than one period is a warning, not a failure.
"""

from __future__ import annotations

import itertools
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from depositions.choices import CheckStatus, SegmentKind
from lims.ingestion.parsing import ParseError

DEFAULT_TOLERANCE_K = 5.0
PARSER_NAME = "furnace-csv"
PARSER_VERSION = "1"


# --- planned profile ----------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentSpec:
    kind: str
    target_c: float
    rate_k_per_min: float | None = None
    duration_min: float | None = None


@dataclass(frozen=True)
class ProfilePoint:
    t_s: float
    temperature_c: float


@dataclass(frozen=True)
class PlannedDwell:
    segment: int  # 0-based index in the segment list
    target_c: float
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class Profile:
    points: list[ProfilePoint]
    dwells: list[PlannedDwell]
    total_s: float | None  # None: ends with natural cooling (no planned end)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def planned_profile(segments: Sequence[SegmentSpec], *, start_c: float = 25.0) -> Profile:
    """Temperature knots of the plan; ramps are linear between knots.

    A ramp or cool takes ``|ΔT| / rate`` minutes, or its given duration; a dwell holds its
    target for its duration (a dwell target away from the current temperature is a step the
    furnace cannot make: refused). A cool with neither rate nor duration is natural cooling:
    the plan ends there, with no planned end time.
    """
    t = 0.0
    temp = float(start_c)
    points = [ProfilePoint(0.0, temp)]
    dwells: list[PlannedDwell] = []
    notes: list[str] = []
    for i, seg in enumerate(segments):
        target = float(seg.target_c)
        if seg.kind == SegmentKind.DWELL:
            if seg.duration_min is None or seg.duration_min < 0:
                raise ValueError(f"segment {i + 1}: a dwell needs a duration")
            if abs(target - temp) > 1e-9:
                raise ValueError(
                    f"segment {i + 1}: dwell at {target:g} degC follows {temp:g} degC; "
                    "add a ramp first"
                )
            dwells.append(PlannedDwell(i, target, t, seg.duration_min * 60.0))
            t += seg.duration_min * 60.0
        elif seg.kind in (SegmentKind.RAMP, SegmentKind.COOL):
            if seg.rate_k_per_min is not None:
                if seg.rate_k_per_min <= 0:
                    raise ValueError(f"segment {i + 1}: the rate must be above zero")
                t += abs(target - temp) / seg.rate_k_per_min * 60.0
            elif seg.duration_min is not None:
                t += seg.duration_min * 60.0
            elif seg.kind == SegmentKind.COOL:
                notes.append(f"segment {i + 1}: natural cooling to {target:g} degC (no end time)")
                return Profile(points=points, dwells=dwells, total_s=None, notes=notes)
            else:
                raise ValueError(f"segment {i + 1}: a ramp needs a rate or a duration")
            temp = target
        else:
            raise ValueError(f"segment {i + 1}: unknown kind {seg.kind!r}")
        points.append(ProfilePoint(round(t, 6), temp))
    return Profile(points=points, dwells=dwells, total_s=round(t, 6), notes=notes)


# --- furnace log parser --------------------------------------------------------------------


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


# --- checks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # pass | warn | fail
    value: float | None
    threshold: float | None
    details: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def overall_status(results: Sequence[CheckResult]) -> str:
    statuses = {r.status for r in results}
    if CheckStatus.FAIL in statuses:
        return CheckStatus.FAIL.value
    return CheckStatus.WARN.value if CheckStatus.WARN in statuses else CheckStatus.PASS.value


def furnace_log_check(
    *,
    profile: Profile,
    times_s: Sequence[float],
    temperatures_c: Sequence[float],
    tolerance_k: float = DEFAULT_TOLERANCE_K,
) -> list[CheckResult]:
    """Check every planned dwell against the log.

    For dwell i at T for D seconds, searching after the previous dwell:
    - the dwell starts at the first sample within T ± tolerance;
    - ``dwell_i_duration``: time from there to the last sample before the log leaves the
      band (or ends): pass >= D, warn >= D - one sample period, else fail;
    - ``dwell_i_temperature``: samples in [start, start + D]: pass when all are within the
      band, warn when only their mean is (short excursions), fail otherwise.
    """
    if tolerance_k <= 0:
        raise ValueError("the tolerance must be above zero")
    n = len(times_s)
    if n != len(temperatures_c):
        raise ValueError("times and temperatures differ in length")
    results: list[CheckResult] = []
    if n < 2:
        return [CheckResult("log_points", "fail", float(n), 2.0, "fewer than 2 samples")]
    period = statistics.median(b - a for a, b in itertools.pairwise(times_s))
    results.append(
        CheckResult(
            "log_points",
            "pass",
            float(n),
            2.0,
            f"{n} samples over {times_s[-1] - times_s[0]:.0f} s, period {period:g} s",
        )
    )
    if not profile.dwells:
        results.append(CheckResult("dwells", "warn", 0.0, None, "the plan has no dwell"))
    cursor = 0
    for number, dwell in enumerate(profile.dwells, start=1):
        target, planned = dwell.target_c, dwell.duration_s
        prefix = f"dwell_{number}"
        enter = next(
            (i for i in range(cursor, n) if abs(temperatures_c[i] - target) <= tolerance_k), None
        )
        if enter is None:
            window = temperatures_c[cursor:] or temperatures_c
            closest = min(window, key=lambda v: abs(v - target))
            results.append(
                CheckResult(
                    f"{prefix}_temperature",
                    "fail",
                    round(abs(closest - target), 3),
                    tolerance_k,
                    f"never within {target:g} ± {tolerance_k:g} degC; closest {closest:.1f} degC",
                )
            )
            results.append(
                CheckResult(
                    f"{prefix}_duration", "fail", 0.0, planned, "the dwell temperature was not held"
                )
            )
            continue
        last = enter
        while last + 1 < n and abs(temperatures_c[last + 1] - target) <= tolerance_k:
            last += 1
        hold = times_s[last] - times_s[enter]
        ended = last + 1 >= n
        if hold >= planned:
            status = "pass"
        elif hold + period >= planned:
            status = "warn"
        else:
            status = "fail"
        why = "log ends inside the band" if ended else f"left the band at {times_s[last + 1]:g} s"
        results.append(
            CheckResult(
                f"{prefix}_duration",
                status,
                round(hold, 3),
                planned,
                f"held {hold:.0f} s of {planned:.0f} s planned from {times_s[enter]:g} s; {why}",
            )
        )
        stop = times_s[enter] + planned
        window_idx = [i for i in range(enter, n) if times_s[i] <= stop]
        values = [temperatures_c[i] for i in window_idx]
        worst = max(abs(v - target) for v in values)
        mean = statistics.fmean(values)
        if worst <= tolerance_k:
            t_status = "pass"
        elif abs(mean - target) <= tolerance_k:
            t_status = "warn"
        else:
            t_status = "fail"
        results.append(
            CheckResult(
                f"{prefix}_temperature",
                t_status,
                round(worst, 3),
                tolerance_k,
                f"mean {mean:.2f} degC, max deviation {worst:.2f} K over {len(values)} samples "
                f"(target {target:g} degC)",
            )
        )
        cursor = max(window_idx[-1], last) + 1 if window_idx else last + 1
    return results
