"""Event logs of a home-built Python ALD controller, and its recipe CSVs.

The controller writes Python ``logging`` lines (``%(asctime)s %(levelname)-8s %(message)s``),
1 s resolution, 12-hour clock::

    03/14/2025 09:58:10 AM INFO     set valve 1to 1
    03/14/2025 09:58:10 AM INFO     set valve 1to 0
    03/14/2025 09:58:10 AM INFO     going to sleep for 0.05 seconds
    03/14/2025 09:58:10 AM INFO     The pressure is 0.08399251567960217

plus ``set mfc at Arto 50`` setpoints, ``User asked to run the loops this many times 30``,
``Starting a new run`` / ``Run finished`` and multi-line numpy dumps of the recipe (lines
without a timestamp continue the entry above). Other builds and machines write the same
messages with a 24-hour clock, logging's default ``2025-03-14 09:58:10,123 INFO`` stamp
(1 ms resolution), day-first dates, CRLF line ends or a code page other than UTF-8: all are
read. The file is appended to run after run (and one session may run several recipes); one
run is taken (the last with valve commands unless ``ctx.metadata['run_index']`` says
otherwise).

The recipe CSV has one row per step: a value per device column (``-1`` = leave as is), then a
delay (unit from its header, seconds by default). For an ALD valve column set to 1 the
controller opens the valve, sleeps the row's delay *without logging it*, closes the valve and
then (except on a loop's first row) logs ``going to sleep for X seconds`` and sleeps X again:
the delay is the pulse width, and the close is logged right after the open. With a 1 s clock
the two lines usually share a stamp; when the run printed its recipe array, the close is
placed the row's delay after the open (see :func:`_timed_pulses`). Duplicated column names
occur (``mfcArMo`` twice): both are kept, the second renamed, with a warning. ``;``-separated
copies with decimal commas (a spreadsheet in a European locale) are read too.

Pressure readings are in Torr (the controller converts its gauge's Pa), configurable with
``ctx.metadata['pressure_unit']``; a unit written after the number wins.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from depositions.aldlogs.parsers.tabular import TextHead, dedupe, read_text
from depositions.aldlogs.parsers.types import (
    AldLog,
    Channel,
    ControllerRecipe,
    LogEvent,
    LogSegment,
    RecipeRow,
)
from depositions.aldlogs.parsers.units import conversion, split_header, time_scale
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError
from lims.ingestion.text import bom_encoding, sniff_lines

VERSION = "1.3.0"
PRESSURE_CHANNEL = "chamber pressure"
UNNAMED_VALVE = "valve ?"
# "03/14/2025 09:58:10 AM INFO     msg", "03/14/2025 21:58:10 INFO msg", logging's default
# "2025-03-14 09:58:10,123 INFO msg", and "... - INFO - msg" / "[INFO]" separators.
_STAMP = (
    r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2}(?:[,.]\d+)?(?: ?[AaPp][Mm])?"
    r"|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[,.]\d+)?"
)
_LEVELS = r"DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL"
_PREFIX = (
    rf"^(?P<stamp>{_STAMP})\s+(?:[-|]\s+)?\[?(?P<level>{_LEVELS})\b\]?"
    r"(?:\s*[-:|]\s)?\s*(?P<msg>.*)$"
)
_LINE = re.compile(_PREFIX)
# an entry starting inside another line: the line before it was cut (crash while writing)
_EMBEDDED = re.compile(rf"\D(?:{_STAMP})\s+(?:[-|]\s+)?\[?(?:{_LEVELS})\b")
_MDY_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M:%S%p",
    "%m/%d/%Y %I:%M:%S%.f %p",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M:%S%.f",
)
_ISO_FORMATS = (
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
)
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_MESSAGES: tuple[tuple[str, str], ...] = (
    ("valve", r"(?i)^set valve\s*(?P<a>\S*?)\s*to\s*(?P<b>\S+)\s*$"),
    ("pressure", r"(?i)^the pressure is\s*[:=]?\s*(?P<b>.*?)\s*$"),
    ("sleep", rf"(?i)^going to sleep for\s*(?P<b>{_NUM})\s*sec"),
    ("setpoint", rf"(?i)^set mfc at\s*(?P<a>.+?)\s*to\s*(?P<b>{_NUM})\s*$"),
    ("loops", r"(?i)^user asked to run the loops this many times\s*(?P<b>\d{1,9})\b"),
    ("start", r"(?i)^starting a new run"),
    ("finish", r"(?i)^(run finished|run complete|finished the run|run done)"),
    ("recipe_dump", r"(?i)^here is the recipe"),
)
# "0.084", "8.4e-02 Torr", "11.2Pa", "[0.084]" (a numpy scalar array), "nan"
_PRESSURE_VALUE = re.compile(rf"^\[?\s*({_NUM}|nan)\s*\]?\s*(.*?)[\s.;]*$", re.IGNORECASE)
_TRACEBACK = re.compile(
    r"^(Traceback \(most recent call last\)|\w+(\.\w+)*(Error|Exception|Interrupt|Exit)\b)",
    re.MULTILINE,
)
_ALARM_LEVELS = {
    "WARNING": "warning",
    "WARN": "warning",
    "ERROR": "error",
    "CRITICAL": "error",
    "FATAL": "error",
}
_VALVE_COLUMN = re.compile(r"^ald\s*_?v(?:alve)?\s*_?(\d{1,9})$", re.IGNORECASE)
_DELAY_COLUMN = re.compile(r"^(delay|sleep|wait|dwell|time|duration)\b", re.IGNORECASE)
_DECIMAL_COMMA = re.compile(r"^[-+]?\d*,\d+(?:[eE][-+]?\d+)?$")


def valve_of_column(column: str) -> str | None:
    """Recipe column ``aldv3`` -> the log's valve name ``valve 3`` (None: not an ALD valve)."""
    match = _VALVE_COLUMN.match(column.strip())
    return f"valve {int(match.group(1))}" if match else None


# --- event log -------------------------------------------------------------------------------


def _read_log(path: Path, ctx: ParseContext) -> TextHead:
    """The whole log decoded; lines that are not UTF-8 in a UTF-8 file read as cp1252.

    An appended log can hold runs written on machines with different code pages (Windows
    Python writes cp1252 by default). The encoding is detected on the head of the file; a
    later line in another code page would otherwise become replacement characters.
    """
    head = read_text(path, ctx)
    if codecs.lookup(head.encoding).name not in ("utf-8", "utf-8-sig") or not any(
        "\ufffd" in line for line in head.lines
    ):
        return head
    data = path.read_bytes()
    bom = bom_encoding(data)
    raw_lines = data[bom[1] if bom else 0 :].split(b"\n")
    if len(raw_lines) != len(head.lines):
        return head
    recoded: list[int] = []
    lines: list[str] = []
    for number, raw in enumerate(raw_lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = raw.decode("cp1252")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            recoded.append(number)
        lines.append(text.rstrip("\r"))
    if recoded:
        head.warnings.append(
            f"{len(recoded)} lines are not valid UTF-8 (first: line {recoded[0]}): read as "
            "cp1252 (a run appended from a machine with another code page?)"
        )
        head.lines = lines
    return head


def _split_embedded(lines: list[str], warnings: list[str]) -> None:
    """An entry that starts inside a line: the text before it was cut; dropped, reported."""
    hits = pl.Series("line", lines, dtype=pl.String).str.contains(_EMBEDDED.pattern)
    cut: list[tuple[int, str]] = []
    for index in hits.arg_true().to_list():
        line = lines[index]
        while (match := _EMBEDDED.search(line)) is not None:
            cut.append((index, line[: match.start() + 1]))
            line = line[match.start() + 1 :]
        lines[index] = line
    if cut:
        index, piece = cut[0]
        warnings.append(
            f"{len(cut)} entries were cut short and run into the next entry on the same line "
            f"(the program stopped while writing?; first: line {index + 1}, {piece[-50:]!r}): "
            "the cut entries were dropped"
        )


def _stamp_formats(stamps: pl.Series, warnings: list[str]) -> tuple[tuple[str, ...], str]:
    """Month-first (as ``logging``'s ``%m/%d/%Y``) unless the dates can only be day-first."""
    parts = stamps.str.extract_groups(r"^(?P<x>\d{1,2})/(?P<y>\d{1,2})/")
    first = parts.struct.field("x").cast(pl.Int32, strict=False)
    second = parts.struct.field("y").cast(pl.Int32, strict=False)
    if bool((first > 12).any()) and not bool((second > 12).any()):
        warnings.append(
            "the dates are day-first (DD/MM/YYYY: a first field above 12 occurs): read so"
        )
        day_first = tuple(f.replace("%m/%d/%Y", "%d/%m/%Y") for f in _MDY_FORMATS)
        return day_first + _ISO_FORMATS, "DMY"
    return _MDY_FORMATS + _ISO_FORMATS, "MDY"


def _entries(lines: list[str], warnings: list[str]) -> tuple[pl.DataFrame, str]:
    """One row per timestamped entry; continuation lines joined to the entry above."""
    frame = pl.DataFrame({"line": pl.Series("line", lines, dtype=pl.String)}).with_row_index("n")
    parts = frame.with_columns(pl.col("line").str.extract_groups(_PREFIX).alias("g")).unnest("g")
    parts = parts.with_columns(pl.col("stamp").is_not_null().cum_sum().alias("entry"))
    heads = parts.filter(pl.col("stamp").is_not_null())
    if heads.is_empty():
        raise ParseError(
            "no controller log lines ('MM/DD/YYYY hh:mm:ss AM LEVEL message') found",
            location=f"lines 1-{min(len(lines), 50)}",
        )
    nonblank = pl.col("line").str.strip_chars() != ""
    before = parts.filter((pl.col("entry") == 0) & nonblank)
    if before.height:
        warnings.append(
            f"{before.height} lines before the first timestamped entry were skipped (first: "
            f"line {int(before['n'][0]) + 1}, {before['line'][0][:60]!r}; a copy cut at the "
            "start?)"
        )
    extra = (
        parts.filter(pl.col("stamp").is_null() & (pl.col("entry") > 0) & nonblank)
        .group_by("entry", maintain_order=True)
        .agg(pl.col("line").str.join("\n").alias("more"), pl.col("n").first().alias("more_n"))
    )
    out = heads.join(extra, on="entry", how="left").sort("entry")
    formats, order = _stamp_formats(out["stamp"], warnings)
    stamp = pl.col("stamp").str.strip_chars().str.replace(",", ".", literal=True)
    parsed = pl.coalesce([stamp.str.strptime(pl.Datetime("ms"), f, strict=False) for f in formats])
    digits = pl.col("stamp").str.extract(r"[,.](\d+)", 1).str.len_chars().fill_null(0)
    out = out.with_columns(parsed.alias("dt"), digits.alias("digits"))
    return out.select("n", "dt", "stamp", "digits", "level", "msg", "more", "more_n"), order


def _classify(entries: pl.DataFrame) -> pl.DataFrame:
    kinds = pl.lit("message")
    a = pl.lit(None, dtype=pl.String)
    b = pl.lit(None, dtype=pl.String)
    msg = pl.col("msg").str.strip_chars()
    for kind, pattern in reversed(_MESSAGES):
        hit = msg.str.contains(pattern)
        kinds = pl.when(hit).then(pl.lit(kind)).otherwise(kinds)
        groups = re.compile(pattern).groupindex
        if "a" in groups:
            a = pl.when(hit).then(msg.str.extract(pattern, groups["a"])).otherwise(a)
        if "b" in groups:
            b = pl.when(hit).then(msg.str.extract(pattern, groups["b"])).otherwise(b)
    return entries.with_columns(kinds.alias("kind"), a.alias("a"), b.alias("b"))


def _valve_value(text: str | None) -> float | None:
    if text is None:
        return None
    low = text.lower()
    if low in ("open", "on", "true"):
        return 1.0
    if low in ("close", "closed", "off", "false"):
        return 0.0
    try:
        number = float(low)
    except ValueError:
        return None
    return (1.0 if number > 0 else 0.0) if math.isfinite(number) else None


def _valve_name(address: str | None) -> str:
    """``12`` -> ``valve 12``, ``01`` -> ``valve 1``; an empty relay address -> ``valve ?``."""
    text = (address or "").strip()
    if not text:
        return UNNAMED_VALVE
    return f"valve {int(text)}" if text.isdigit() and len(text) <= 9 else f"valve {text[:40]}"


_DUMP_CELL = re.compile(rf"{_NUM}|\bnan\b", re.IGNORECASE)


def _recipe_dump(text: str) -> list[list[float]]:
    """Rows of a printed numpy array (``[[-1. -1. ... 0.1]\\n [ nan ... ]]``).

    ``nan`` is a blank cell of the recipe CSV (pandas reads it so); it stays NaN here.
    """
    body = text[text.find("[") :]
    rows: list[list[float]] = []
    for chunk in re.split(r"\]\s*\[", body):
        numbers = [float(x) for x in _DUMP_CELL.findall(chunk)]
        if numbers:
            rows.append(numbers)
    return rows


def _runs(frame: pl.DataFrame) -> list[tuple[int, int]]:
    """Row ranges [start, end) of each run in an appended log.

    A run starts at ``Starting a new run`` (the controller program starting), and at a recipe
    dump or loop count when the run so far already ran valves or was given its recipe (one
    program session running several recipes one after the other).
    """
    marks = (
        frame.with_row_index("i")
        .filter(pl.col("kind").is_in(["start", "recipe_dump", "loops", "valve"]))
        .select("i", "kind")
    )
    starts = [0]
    valves = loops = dump = False
    for i, kind in marks.iter_rows():
        new = False
        if kind == "start":
            new = True
        elif kind == "recipe_dump":
            new = valves or loops or dump
            dump = True
        elif kind == "loops":
            new = valves or loops
            loops = True
        else:
            valves = True
        if new:
            if i > starts[-1]:
                starts.append(i)
            valves = False
            loops = kind == "loops"
            dump = kind == "recipe_dump"
    bounds = [*starts, frame.height]
    return [(bounds[k], bounds[k + 1]) for k in range(len(starts)) if bounds[k + 1] > bounds[k]]


def _times(dt: pl.Series, warnings: list[str], resolution: float = 1.0) -> np.ndarray:
    """Seconds from the first entry; lines with the same timestamp keep their order.

    The clock has ``resolution`` (1 s for the controller's own stamps, 1 ms for logging's
    default ones). Lines with the same timestamp get steps of 1/1000 of it (or 1/n when it
    holds more than 1000 lines) so that a reading logged after a valve command stays after
    it. A clock set backwards (DST) is taken out and reported.
    """
    seconds = (dt - dt[0]).dt.total_milliseconds().to_numpy().astype(float) / 1e3
    steps = np.diff(seconds, prepend=seconds[0])
    back = steps < 0
    if back.any():
        warnings.append(
            f"the clock goes backwards {int(back.sum())} times (largest "
            f"{-steps[back].min():.0f} s): taken out so that time keeps increasing"
        )
        seconds = seconds + np.cumsum(np.where(back, -steps, 0.0))
    # position of each line within its clock tick (integer milliseconds: no rounding slips)
    whole = np.round(seconds * 1e3).astype(np.int64) // max(1, round(resolution * 1e3))
    change = np.concatenate(([True], whole[1:] != whole[:-1]))
    group_start = np.maximum.accumulate(np.where(change, np.arange(whole.size), 0))
    k = np.arange(whole.size) - group_start
    counts = np.bincount(np.cumsum(change) - 1)
    n = counts[np.cumsum(change) - 1]
    step = resolution * np.where(n > 1000, 1.0 / np.maximum(n, 1), 1e-3)
    out: np.ndarray = seconds + k * step
    return out


def _resolution(digits: pl.Series) -> float:
    """1 s when any stamp has whole seconds, else the finest common fraction (>= 1 ms)."""
    fewest = min((int(d) for d in digits.to_list()), default=0)
    return 1.0 if fewest == 0 else 10.0 ** -min(fewest, 3)


def _line_list(lines: Sequence[int], limit: int = 5) -> str:
    shown = ", ".join(str(n) for n in lines[:limit])
    return shown + (f" (+{len(lines) - limit} more)" if len(lines) > limit else "")


def parse_controller_log(path: Path, ctx: ParseContext) -> AldLog:
    """Parse a controller event log into an :class:`AldLog` (pressure series + events)."""
    head = _read_log(path, ctx)
    warnings = list(head.warnings)
    lines = list(head.lines)
    if len(lines) > 1 and lines[-1].strip():
        # no line end after the last line: the copy was cut (or the run is still writing)
        warnings.append(f"the last line has no line end (file cut?): dropped ({lines[-1][:60]!r})")
        lines.pop()
    _split_embedded(lines, warnings)
    entries, date_order = _entries(lines, warnings)
    bad_stamps = entries.filter(pl.col("dt").is_null())
    if bad_stamps.height == entries.height:
        raise ParseError(
            f"no controller log entry has a readable timestamp (first: {bad_stamps['stamp'][0]!r})",
            location=f"line {int(bad_stamps['n'][0]) + 1}",
        )
    if bad_stamps.height:
        warnings.append(
            f"{bad_stamps.height} entries with an unreadable timestamp were skipped "
            f"(first: line {int(bad_stamps['n'][0]) + 1}, {bad_stamps['stamp'][0]!r})"
        )
        entries = entries.filter(pl.col("dt").is_not_null())
    entries = _classify(entries)
    runs = _runs(entries)
    metadata: dict[str, Any] = {"format": "controller_eventlog", "encoding": head.encoding}
    if date_order != "MDY":
        metadata["date_order"] = date_order
    choice: list[str] = []
    chosen = _choose_run(entries, runs, ctx, choice)
    sessions = [
        _session_log(entries.slice(a, b - a), ctx, list(warnings), {**metadata, "run_index": i})
        for i, (a, b) in enumerate(runs)
    ]
    in_file = [
        {"index": i, "start": str(entries["dt"][a]), "entries": b - a}
        for i, (a, b) in enumerate(runs)
    ]
    # the run taken when the log is read as one run (a caller that wants one); every run of
    # the file is a segment with its own pulses and verdict (what the ingest handler stores)
    log = dataclasses.replace(
        sessions[chosen],
        metadata={**sessions[chosen].metadata, "runs_in_file": in_file},
        warnings=[*sessions[chosen].warnings, *choice],
    )
    if len(sessions) > 1:
        log.segments = [
            LogSegment(i, session, session.start_time, session.end_time())
            for i, session in enumerate(sessions)
        ]
    return log


def _session_log(
    run: pl.DataFrame, ctx: ParseContext, warnings: list[str], metadata: dict[str, Any]
) -> AldLog:
    """One run of the log (the entries from one start to the next) as its own :class:`AldLog`."""
    resolution = _resolution(run["digits"])
    times = _times(run["dt"], warnings, resolution)
    declared: list[list[float]] | None = None
    dumps = run.filter(pl.col("kind") == "recipe_dump")
    if dumps.height:
        dump = dumps.row(0, named=True)
        text = dump["msg"] if dump["more"] is None else f"{dump['msg']}\n{dump['more']}"
        declared = _declared_recipe(text, int(dump["n"]) + 1, warnings)
    times, timed = _timed_pulses(
        run, times, resolution, _printed_pulse_delays(declared or []), warnings
    )
    run = run.with_columns(pl.Series("time_s", times))
    stamp = "seconds" if resolution >= 1 else "milliseconds"
    start_time = run["dt"][0].isoformat(timespec=stamp)

    pressure_unit = str(ctx.metadata.get("pressure_unit") or "Torr")
    conv = conversion("pressure", pressure_unit)
    if conv is None:
        raise ParseError(f"unknown pressure unit {pressure_unit!r}", location="pressure_unit")
    line_units: dict[str, tuple[float, float] | None] = {}
    units_written: dict[str, int] = {}
    bad_units: dict[str, int] = {}
    unitless: list[int] = []
    valve_map = ctx.metadata.get("valve_map") or {}
    events: list[LogEvent] = []
    alarms: list[dict[str, Any]] = []
    run_info: dict[str, Any] = {
        "source": "controller_eventlog",
        "started": bool(run["kind"].is_in(["start", "recipe_dump", "loops"]).any()),
        "finished": False,
        "loops_requested": None,
    }
    unread: list[int] = []
    unnamed: list[int] = []
    stray: list[int] = []
    open_since: dict[str, tuple[float, int]] = {}
    reopened: list[tuple[str, int]] = []
    closed_while_closed = 0
    rows = run.select("n", "time_s", "level", "msg", "more", "more_n", "kind", "a", "b")
    for n, t, level, msg, more, more_n, kind, a, b in rows.iter_rows():
        text = msg if more is None else f"{msg}\n{more}"
        severity = _ALARM_LEVELS.get(level or "")
        if severity:
            alarms.append({"time_s": t, "level": severity, "text": text, "line": n + 1})
            events.append(LogEvent(t, "alarm", None, None, text))
        elif more is not None and _TRACEBACK.search(more):
            # a traceback printed into the log (no ERROR line of its own): the run crashed
            shown = text if kind == "message" else more
            alarms.append({"time_s": t, "level": "error", "text": shown, "line": more_n + 1})
            events.append(LogEvent(t, "alarm", None, None, shown))
            severity = "error"
        elif more is not None and kind not in ("message", "recipe_dump"):
            stray.append(more_n + 1)
            events.append(LogEvent(t, "message", None, None, more))
        if kind == "valve":
            value = _valve_value(b)
            if value is None:
                unread.append(n + 1)
                continue
            name = _valve_name(a)
            if name == UNNAMED_VALVE:
                unnamed.append(n + 1)
            if value > 0.5:
                if name in open_since:
                    reopened.append((name, n + 1))
                else:
                    open_since[name] = (t, n + 1)
            elif open_since.pop(name, None) is None:
                closed_while_closed += 1
            events.append(LogEvent(t, "valve", name, value, msg))
        elif kind == "pressure":
            reading = _PRESSURE_VALUE.match(b or "")
            if reading is None:
                unread.append(n + 1)
                continue
            unit = reading.group(2)
            factor = conv
            if unit:
                if unit not in line_units:
                    line_units[unit] = conversion("pressure", unit)
                found = line_units[unit]
                if found is None:
                    bad_units.setdefault(unit, n + 1)
                    continue
                factor = found
                units_written[unit] = units_written.get(unit, 0) + 1
            else:
                unitless.append(n + 1)
            events.append(
                LogEvent(
                    t,
                    "pressure",
                    PRESSURE_CHANNEL,
                    float(reading.group(1)) * factor[0] + factor[1],
                    msg,
                )
            )
        elif kind == "sleep":
            events.append(LogEvent(t, "sleep", None, float(b), msg))
        elif kind == "setpoint":
            events.append(LogEvent(t, "setpoint", f"mfc {a}", float(b), msg))
        elif kind == "loops":
            run_info["loops_requested"] = int(b)
            events.append(LogEvent(t, "run", None, float(b), msg))
        elif kind in ("start", "finish"):
            run_info["finished"] = run_info["finished"] or kind == "finish"
            events.append(LogEvent(t, "run", None, None, msg))
        elif kind == "recipe_dump":
            events.append(LogEvent(t, "message", None, None, msg))
        elif not severity:
            events.append(LogEvent(t, "message", None, None, text))
    if unread:
        warnings.append(
            f"{len(unread)} valve/pressure lines with unreadable values (first: line {unread[0]})"
        )
    for unit, line in bad_units.items():
        warnings.append(
            f"pressure readings in {unit!r}, not a pressure unit we know, were skipped "
            f"(first: line {line})"
        )
    if unnamed:
        warnings.append(
            f"{len(unnamed)} 'set valve to X' lines name no valve (an empty relay address in "
            f"the controller; first: line {unnamed[0]}): kept as channel {UNNAMED_VALVE!r}"
        )
    if stray:
        warnings.append(
            f"{len(stray)} blocks of lines without a timestamp follow an entry they cannot "
            f"belong to (first: line {stray[0]}): kept as messages"
        )
    if reopened:
        warnings.append(
            f"{len(reopened)} 'open' commands for a valve already open (first: "
            f"{reopened[0][0]}, line {reopened[0][1]}): the pulse runs from the first open "
            "to the next close"
        )
    if open_since:
        warnings.append(
            "valves opened and never closed before the run's log ends: "
            + ", ".join(f"{v} (line {line})" for v, (_, line) in open_since.items())
            + ": their last pulse lasts until the last entry (a lower bound, flagged "
            "open_at_log_end)"
        )
    explicit = ctx.metadata.get("pressure_unit")
    differ = [u for u in units_written if explicit and line_units[u] != conv]
    if differ:
        warnings.append(
            f"pressure_unit is {explicit!r} but the readings say {', '.join(differ)}: each "
            "reading is converted from the unit written on its line"
        )
    if len(units_written) > 1:
        warnings.append(
            f"pressure readings in several units ({', '.join(units_written)}): each is "
            "converted from the unit written on its line"
        )
    if units_written and unitless:
        warnings.append(
            f"{len(unitless)} pressure readings without a unit among readings with one "
            f"(first: line {unitless[0]}): read as {pressure_unit}"
        )
    raw_unit = next(iter(units_written)) if len(units_written) == 1 and not unitless else None
    series, channels = _series(events, valve_map, raw_unit or pressure_unit)
    period = _period(series["time_s"].to_numpy(), resolution)
    if series.height == 0:
        warnings.append("no pressure readings in this run: pulses cannot be checked for a response")
    per_loop = _pulses_per_loop(declared or [])
    if per_loop and run_info["loops_requested"] is not None:
        opens = {
            valve: sum(1 for e in events if e.kind == "valve" and e.channel == valve and e.value)
            for valve in per_loop
        }
        run_info["loops_completed"] = min(opens[v] // n for v, n in per_loop.items())
        run_info["loops_completed_from"] = (
            "valve opens / opens per loop of the recipe the run printed: "
            + ", ".join(f"{v} {opens[v]}/{n}" for v, n in per_loop.items())
        )
    metadata.update(
        {
            "run_info": run_info,
            "alarms": alarms,
            "alarm_sources": ["controller_eventlog"],
            "time_resolution_s": resolution,
            "valve_sources": {
                ch.name: {
                    "label": _label(valve_map, ch.name),
                    "port": ch.port,
                    "evidence": "valve map",
                }
                for ch in channels
                if ch.role == "valve" and _label(valve_map, ch.name)
            },
            "valve_commands": {
                "repeated_open": len(reopened),
                "closed_while_closed": closed_while_closed,
                "open_at_end": [
                    {"valve": v, "opened_s": t0, "line": line}
                    for v, (t0, line) in open_since.items()
                ],
                **timed,
            },
        }
    )
    if units_written:
        metadata["pressure_units_written"] = units_written
    if declared:
        metadata["declared_recipe"] = {
            "source": "controller_log_array",
            "rows": [[None if math.isnan(x) else x for x in row] for row in declared],
        }
    tick = "1 s" if resolution >= 1 else f"{resolution:g} s"
    same = (
        "lines in the same second are 1 ms apart"
        if resolution >= 1
        else (f"lines with the same timestamp are {resolution * 1e-3:g} s apart")
    )
    return AldLog(
        series=series,
        channels=channels,
        events=events,
        sample_period_s=period,
        start_time=start_time,
        metadata=metadata,
        warnings=warnings,
        conventions={
            "time_s": (
                f"seconds since the run's first entry; the clock has {tick} resolution, {same} "
                "in file order"
            ),
            "pressure": (
                f"'The pressure is' readings, {pressure_unit} as logged, converted to Torr"
                if not units_written
                else "'The pressure is' readings in the unit written after each, converted to Torr"
            ),
            "valves": (
                "'set valve N to 1/0' events; series columns give the state at each reading"
                + _timed_convention(timed, resolution)
            ),
        },
        parser="controller_eventlog",
    )


def _timed_convention(timed: dict[str, Any], resolution: float) -> str:
    pairs, placed = timed["back_to_back"], timed["width_from_recipe"]
    if not pairs:
        return ""
    text = (
        f"; {pairs} opens are logged right before their close: the controller slept the row's "
        "delay between them without logging it"
    )
    if placed == pairs:
        return (
            text
            + ", so each close is put that delay (from the recipe the run printed) after its open"
        )
    if placed:
        return (
            text
            + f"; {placed} closes are put that delay after their open, the others keep their stamps"
        )
    return (
        text
        + f" (their width is known to {resolution:g} s only: no printed recipe gives the delay)"
    )


def _declared_recipe(text: str, line: int, warnings: list[str]) -> list[list[float]] | None:
    """The recipe array the controller printed, when it is whole and rectangular.

    Blank cells of the CSV print as ``nan``: the rows are kept (NaN here, null in the metadata)
    and reported, because the controller stops at the first such row (``int(nan)`` raises).
    """
    if "..." in text:
        warnings.append(
            f"the recipe array printed at line {line} is abbreviated by numpy ('...'): "
            "not kept as the declared recipe"
        )
        return None
    rows = _recipe_dump(text)
    if any(math.isinf(x) for row in rows for x in row):
        warnings.append(
            f"the recipe array printed at line {line} holds an infinite number: "
            "not kept as the declared recipe"
        )
        return None
    if len({len(r) for r in rows}) > 1:
        warnings.append(
            f"the recipe array printed at line {line} has rows of different lengths: "
            "not kept as the declared recipe"
        )
        return None
    blank = [k for k, row in enumerate(rows) if any(math.isnan(x) for x in row)]
    if blank:
        warnings.append(
            f"the recipe array printed at line {line} has blank cells ('nan') in {len(blank)} "
            f"rows (first: row {blank[0] + 1}): the controller stops at the first of them "
            "(it cannot read a blank cell as a number); kept as null"
        )
    return rows or None


# The controller's recipe layout: columns 6-9 are the ALD valves aldv1-aldv4, column 14 the delay.
_ALD_CELLS = range(6, 10)
_DUMP_WIDTH = 15


def cell_action(value: float, before: float) -> str | None:
    """What the controller does with one ALD valve cell of a row.

    ``None``: skipped (its integer part is -1, or it equals the row above: only changed cells
    are set). ``"pulse"``: integer part 1 -> open, sleep the row's delay (not logged), close.
    ``"wait"``: any other value -> close, sleep the delay, close again (no pulse).
    """
    if int(value) == -1 or value == before:
        return None
    return "pulse" if int(value) == 1 else "wait"


def _printed_pulse_delays(rows: list[list[float]]) -> dict[str, float]:
    """Valve -> pulse width, replaying the controller over the recipe array a run printed.

    Only valves whose pulses all come from rows of one delay are returned (the width of each
    logged open/close pair is then known); the replay stops at a row with a blank cell, where
    the controller stops too.
    """
    if not rows or any(len(row) != _DUMP_WIDTH for row in rows):
        return {}
    delays: dict[str, set[float]] = {}
    for j, row in enumerate(rows):
        if any(math.isnan(x) for x in row):
            break
        before = [x + 1 for x in row] if j == 0 else rows[j - 1]
        for i in _ALD_CELLS:
            if cell_action(row[i], before[i]) == "pulse":
                delays.setdefault(f"valve {i - 5}", set()).add(row[-1])
    return {valve: next(iter(found)) for valve, found in delays.items() if len(found) == 1}


def _pulses_per_loop(rows: list[list[float]]) -> dict[str, int]:
    """Valve -> opens in one loop, replaying the controller over the recipe array a run printed.

    Empty when the array cannot be replayed whole (not the known layout, or a blank cell, at
    which the controller stops in the first loop).
    """
    if not rows or any(len(row) != _DUMP_WIDTH or any(map(math.isnan, row)) for row in rows):
        return {}
    counts: dict[str, int] = {}
    for j, row in enumerate(rows):
        before = [x + 1 for x in row] if j == 0 else rows[j - 1]
        for i in _ALD_CELLS:
            if cell_action(row[i], before[i]) == "pulse":
                counts[f"valve {i - 5}"] = counts.get(f"valve {i - 5}", 0) + 1
    return counts


def _timed_pulses(
    run: pl.DataFrame,
    times: np.ndarray,
    resolution: float,
    delays: dict[str, float],
    warnings: list[str],
) -> tuple[np.ndarray, dict[str, Any]]:
    """Place the unlogged sleep between a valve's open and its close logged right after it.

    The controller logs ``set valve Nto 1``, sleeps the row's delay without logging, then logs
    ``set valve Nto 0``. When that delay is known (``delays``, from the recipe the run printed)
    and shorter than the clock's resolution, the close and the entries after it in the same
    tick are moved the delay later (or, when the close is stamped one tick later, the open is
    put the delay before the close): the pulse width becomes the delay instead of the 1/1000
    tick of lines sharing a stamp. Stamps that cannot hold the delay are left as they are and
    reported. Returns the new times and counts for ``metadata.valve_commands``.
    """
    kinds = run["kind"].to_list()
    names = [_valve_name(a) for a in run["a"].to_list()]
    values = [_valve_value(b) for b in run["b"].to_list()]
    lines = run["n"].to_list()
    tick = np.floor(times / resolution + 1e-9)
    out = times.copy()
    pairs = across = placed = 0
    longer: list[tuple[str, int, float, float]] = []
    for i in range(len(kinds) - 1):
        a, b = values[i], values[i + 1]
        if not (
            kinds[i] == "valve"
            and kinds[i + 1] == "valve"
            and names[i] == names[i + 1]
            and a is not None
            and a > 0.5
            and b is not None
            and b <= 0.5
        ):
            continue
        pairs += 1
        span = int(tick[i + 1] - tick[i])
        across += span > 0
        delay = delays.get(names[i])
        if delay is None or delay >= resolution:
            continue  # unknown, or long enough for the stamps to show it
        if span == 0:
            end = i + 1
            while end + 1 < len(kinds) and tick[end + 1] == tick[i]:
                end += 1
            shift = out[i] + delay - out[i + 1]
            if out[end] + shift < (tick[i] + 1) * resolution:
                out[i + 1 : end + 1] += shift
                placed += 1
        elif span == 1:
            opened = out[i + 1] - delay
            if opened > (out[i - 1] if i else -np.inf) and opened >= tick[i] * resolution:
                out[i] = opened
                placed += 1
        else:
            longer.append((names[i], lines[i] + 1, (span - 1) * resolution, delay))
    if longer:
        valve, line, least, delay = longer[0]
        warnings.append(
            f"{len(longer)} valve pulses last longer in the log than the row delay of the "
            f"recipe the run printed (first: {valve} at line {line}: at least {least:g} s vs "
            f"{delay:g} s; a relay or serial port that hung?): their logged times are kept"
        )
    stats = {
        "back_to_back": pairs,
        "back_to_back_across_ticks": across,
        "width_from_recipe": placed,
    }
    return out, stats


def _label(valve_map: dict[str, Any], valve: str) -> str | None:
    value = valve_map.get(valve)
    if isinstance(value, dict):
        return value.get("label")
    return None if value is None else str(value)


def _choose_run(
    entries: pl.DataFrame, runs: list[tuple[int, int]], ctx: ParseContext, warnings: list[str]
) -> int:
    wanted = ctx.metadata.get("run_index")
    if wanted is not None:
        try:
            index = range(len(runs))[int(wanted)]
        except (IndexError, ValueError, TypeError) as exc:
            raise ParseError(
                f"run_index {wanted!r} but the file holds {len(runs)} runs", location="run_index"
            ) from exc
        return index
    valve_counts = [int((entries["kind"].slice(a, b - a) == "valve").sum()) for a, b in runs]
    with_valves = [i for i, count in enumerate(valve_counts) if count]
    index = with_valves[-1] if with_valves else len(runs) - 1
    if len(runs) > 1:
        listed = "; ".join(
            f"{i}: {entries['dt'][a]} ({valve_counts[i]} valve commands)"
            for i, (a, _) in enumerate(runs[:10])
        ) + ("; ..." if len(runs) > 10 else "")
        warnings.append(
            f"the file holds {len(runs)} runs (appended log); run {index} (0-based) was taken, "
            f"the last with valve commands: set run_index to choose another ({listed})"
        )
    return index


def _series(
    events: Sequence[LogEvent], valve_map: dict[str, Any], raw_unit: str = "Torr"
) -> tuple[pl.DataFrame, list[Channel]]:
    """Pressure readings as the series; valve and MFC states at each reading as columns."""
    readings = [(e.time_s, e.value) for e in events if e.kind == "pressure"]
    t = np.array([r[0] for r in readings], dtype=float)
    columns: dict[str, Any] = {
        "time_s": t,
        PRESSURE_CHANNEL: np.array([r[1] for r in readings], dtype=float),
    }
    channels = [
        Channel(
            name=PRESSURE_CHANNEL,
            role="pressure",
            unit="Torr",
            source_column="The pressure is",
            physical_channel="gauge",
            raw_unit=raw_unit,
            zone="chamber",
        )
    ]
    state_channels: dict[str, tuple[str, list[LogEvent]]] = {}
    for e in events:
        if e.kind in ("valve", "setpoint") and e.channel:
            state_channels.setdefault(e.channel, (e.kind, []))[1].append(e)
    for name in sorted(state_channels, key=_natural):
        kind, evs = state_channels[name]
        times = np.array([e.time_s for e in evs], dtype=float)
        values = np.array([e.value for e in evs], dtype=float)
        idx = np.searchsorted(times, t, side="right") - 1
        state = np.where(idx >= 0, values[np.maximum(idx, 0)], np.nan)
        if kind == "valve":
            state = np.where(idx >= 0, state, 0.0)
            number = name.split()[-1]
            mapped = valve_map.get(name)
            port = mapped.get("port") if isinstance(mapped, dict) else None
            unnamed = name == UNNAMED_VALVE
            channels.append(
                Channel(
                    name=name,
                    role="valve",
                    unit="1",
                    source_column="set valve",
                    port=port or (None if unnamed else number),
                    physical_channel="relay (no address)" if unnamed else f"relay {number}",
                    on_threshold=0.5,
                )
            )
        else:
            channels.append(
                Channel(
                    name=f"{name} setpoint", role="mfc", unit="sccm", source_column="set mfc at"
                )
            )
            name = f"{name} setpoint"
        columns[name] = state
    frame = pl.DataFrame(columns).with_columns(pl.exclude("time_s").fill_nan(None))
    return frame, channels


def _natural(name: str) -> tuple[str, int]:
    match = re.search(r"(\d{1,9})$", name)
    return (name[: match.start()] if match else name, int(match.group(1)) if match else -1)


def _period(times: np.ndarray, resolution: float = 1.0) -> float | None:
    if times.size < 2:
        return None
    steps = np.diff(times)
    steps = steps[steps > 0.5 * resolution]  # same-timestamp offsets are not sampling
    return float(np.median(steps)) if steps.size else resolution


# --- recipe CSV ---------------------------------------------------------------------------------


def _cells(line: str, separator: str, number: int) -> list[str]:
    """The fields of one CSV line (quotes honoured: ``"0,05"`` stays one field)."""
    try:
        row = next(csv.reader([line], delimiter=separator), [])
    except csv.Error as exc:  # an unclosed quote, a field above csv's limit
        raise ParseError(
            f"unreadable CSV line: {str(exc)[:200]}", location=f"line {number}"
        ) from exc
    return [cell.strip().strip('"').strip() for cell in row]


def parse_controller_recipe(path: Path, ctx: ParseContext) -> ControllerRecipe:
    """Parse a controller recipe CSV (``-1`` = no change, a delay column, seconds by default).

    Read as the controller's own files and as spreadsheets save them: ``,``, ``;`` or tab
    separated, decimal commas, a UTF-8 BOM, blank or delimiter-only rows (skipped), trailing
    empty columns (dropped), a delay in any time unit its header names (``delay(ms)``).
    """
    head = read_text(path, ctx)
    lines = [(i, line) for i, line in enumerate(head.lines) if line.strip()]
    if not lines:
        raise ParseError("the recipe file has no lines", location="line 1")
    header_at, header = lines[0]
    sep = "\t" if "\t" in header else ";" if header.count(";") > header.count(",") else ","
    raw = _cells(header, sep, header_at + 1)
    if any(_NUM_ONLY.match(c) for c in raw):
        raise ParseError(
            "the first line is not a header of column names", location=f"line {header_at + 1}"
        )
    body = [(i, _cells(line, sep, i + 1)) for i, line in lines[1:]]
    notes: list[str] = []
    trailing = 0
    while len(raw) > 1 and raw[-1] == "":
        at = len(raw) - 1
        if any(len(cells) > at and cells[at] != "" for _, cells in body):
            break
        raw.pop()
        trailing += 1
    if trailing:
        notes.append(
            f"{trailing} empty unnamed columns at the end of the header (trailing delimiters) "
            "were ignored"
        )
    for k, label in enumerate(raw):
        if label == "":
            notes.append(f"column {k + 1} has no name: kept as 'column_{k + 1}'")
    columns, renamed = dedupe(raw)
    warnings = head.warnings + renamed + notes
    delay_at = next((i for i, c in enumerate(columns) if _DELAY_COLUMN.match(c)), None)
    delay_label = raw[delay_at] if delay_at is not None else ""
    filled = [cells for _, cells in body if any(c != "" for c in cells)]
    if (
        delay_at is None
        and filled
        and all(len(cells) == len(columns) + 1 and cells[-1] != "" for cells in filled)
    ):
        # an early header without the delay's name: every row has one value more (the delay)
        columns.append("delay")
        delay_at = len(columns) - 1
        warnings.append(
            f"no delay column named and every row has one value more than the {len(raw)} "
            "names of the header: that last, unnamed value is taken as the delay (s)"
        )
    elif delay_at is None:
        delay_at = len(columns) - 1
        delay_label = raw[delay_at]
        warnings.append(f"no delay column named: the last column {columns[-1]!r} is taken")
    delay_unit = split_header(delay_label)[1]
    scale = time_scale(delay_unit)
    if scale is None:
        raise ParseError(
            f"the delay column {delay_label!r} names {delay_unit!r}, not a time unit "
            "(s, ms, min, h)",
            location=f"line {header_at + 1}",
        )
    rows: list[RecipeRow] = []
    empty: list[int] = []
    longer: list[int] = []
    commas: list[tuple[int, str]] = []
    blank: list[tuple[int, str]] = []
    for i, cells in body:
        if all(c == "" for c in cells):
            empty.append(i + 1)  # a row of delimiters only (spreadsheet export)
            continue
        if len(cells) < len(columns):
            warnings.append(
                f"line {i + 1} has {len(cells)} of {len(columns)} fields: missing ones = no change"
            )
        if any(c != "" for c in cells[len(columns) :]):
            longer.append(i + 1)
        values: dict[str, float | None] = {}
        for j, column in enumerate(columns):
            text = cells[j] if j < len(cells) else ""
            if text == "":
                if j < len(cells):
                    blank.append((i + 1, column))
                values[column] = None
                continue
            number = _recipe_number(text, column, i + 1, commas)
            values[column] = None if number == -1 else number
        delay = values.pop(columns[delay_at])
        if delay is None or delay < 0:
            raise ParseError("a recipe row needs a delay >= 0", location=f"line {i + 1}")
        rows.append(RecipeRow(index=len(rows), values=values, delay_s=delay * scale))
    if not rows:
        raise ParseError("the recipe has a header but no steps", location=f"line {header_at + 2}")
    if commas:
        warnings.append(
            f"decimal commas read as decimal points ({len(commas)} cells, first: line "
            f"{commas[0][0]}, {commas[0][1]!r})"
        )
    if blank:
        warnings.append(
            f"{len(blank)} blank cells (first: line {blank[0][0]}, column {blank[0][1]!r}) are "
            "read as -1 (no change); the controller itself reads a blank cell as NaN and stops "
            "the run at that row"
        )
    if empty:
        warnings.append(
            f"{len(empty)} rows without any value (delimiters only) were skipped: lines "
            + _line_list(empty)
        )
    if longer:
        warnings.append(
            f"{len(longer)} rows have values beyond the {len(columns)} named columns (lines "
            f"{_line_list(longer)}): those values were ignored"
        )
    return ControllerRecipe(
        columns=columns,
        raw_columns=raw,
        rows=rows,
        delay_column=columns[delay_at],
        warnings=warnings,
    )


def _recipe_number(text: str, column: str, line: int, commas: list[tuple[int, str]]) -> float:
    """A recipe cell as a number: ``0.05``, ``1e-1``, ``0,05`` (decimal comma, noted)."""
    try:
        number = float(text)
    except ValueError:
        if not _DECIMAL_COMMA.match(text):
            raise ParseError(
                f"{text!r} in column {column!r} is not a number", location=f"line {line}"
            ) from None
        commas.append((line, text))
        number = float(text.replace(",", "."))
    if not math.isfinite(number):
        raise ParseError(
            f"{text!r} in column {column!r} is not a finite number (the controller cannot use it)",
            location=f"line {line}",
        )
    return number


_NUM_ONLY = re.compile(rf"^{_NUM}$")


# --- registered parsers -------------------------------------------------------------------------


_CONTROLLER_WORDS = re.compile(
    r"(?i)(set valve|the pressure is|going to sleep|set mfc|starting a new run|"
    r"user asked to run the loops|here is the recipe|run finished)"
)
# A line without a timestamp that continues the entry above: a printed numpy array row, a
# traceback line, or any indented text.
_CONTINUATION = re.compile(r"^(\s|\[|\]|Traceback|\w+(\.\w+)*(Error|Exception)\b)")
# How many lines before the first entry a cut copy may start with (the parser skips them).
_SNIFF_LEAD_LINES = 5
SNIFF_LINE_LIMIT = 20_000  # more than a 64 KiB head can hold


def _log_score(head: bytes) -> float:
    """Judged on every whole line of the head, entry by entry, not on its first lines.

    A real log can open with the recipe printed as a numpy array over dozens of continuation
    lines. So lines are grouped into entries (a timestamped line and the unstamped lines that
    continue it); the head is a controller log when it starts with an entry (after at most a
    few lines of a cut copy), the lines that are neither entries nor continuations are
    fewer than the entries, and at least two entries carry the controller's own words.
    """
    lines = sniff_lines(head, SNIFF_LINE_LIMIT) or []
    if len(lines) > 1 and len(head) >= SNIFF_BYTES:
        lines = lines[:-1]  # the head cuts the last line
    lines = [line for line in lines if line.strip()]
    if not lines:
        return 0.0
    entries = words = stray = 0
    for number, line in enumerate(lines):
        match = _LINE.match(line)
        if match:
            entries += 1
            words += bool(_CONTROLLER_WORDS.match(match["msg"]))
        elif not entries:
            if number >= _SNIFF_LEAD_LINES:
                return 0.0
        elif not _CONTINUATION.match(line):
            stray += 1
    if entries < 2 or stray >= entries:
        return 0.0
    return 0.95 if words >= 2 else 0.0


class ControllerEventLogParser:
    """Controller event log (``set valve 1to 1``, ``The pressure is X``)."""

    name: ClassVar[str] = "controller_eventlog"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        return _log_score(head)

    def parse(self, path: Path, ctx: ParseContext) -> AldLog:
        return parse_controller_log(Path(path), ctx)


class ControllerRecipeParser:
    """Controller recipe CSV (device columns incl. ``aldvN``, ``-1`` = no change, a delay)."""

    name: ClassVar[str] = "controller_recipe"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = [line for line in (sniff_lines(head, 5) or []) if line.strip()]
        if not lines:
            return 0.0
        labels = [c.strip().strip('"') for c in re.split(r"[,;\t]", lines[0])]
        valves = sum(1 for c in labels if valve_of_column(c))
        delay = any(_DELAY_COLUMN.match(c) for c in labels)
        return 0.9 if valves >= 1 and delay else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> ControllerRecipe:
        return parse_controller_recipe(Path(path), ctx)
