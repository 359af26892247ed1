"""Event logs of a home-built Python ALD controller, and its recipe CSVs.

The controller writes Python ``logging`` lines, 1 s resolution, 12-hour clock::

    03/14/2025 09:58:10 AM INFO     set valve 1to 1
    03/14/2025 09:58:10 AM INFO     set valve 1to 0
    03/14/2025 09:58:10 AM INFO     going to sleep for 0.05 seconds
    03/14/2025 09:58:10 AM INFO     The pressure is 0.08399251567960217

plus ``set mfc at Arto 50`` setpoints, ``User asked to run the loops this many times 30``,
``Starting a new run`` / ``Run finished`` and multi-line numpy dumps of the recipe (lines
without a timestamp continue the entry above). The file is appended to run after run; one run
is taken (the last with valve commands unless ``ctx.metadata['run_index']`` says otherwise).

The recipe CSV has one row per step: a value per device column (``-1`` = leave as is), then a
delay in seconds. For an ALD valve column set to 1 the controller opens the valve, sleeps the
row's delay and closes it: the delay is the pulse width. Duplicated column names occur
(``mfcArMo`` twice): both are kept, the second renamed, with a warning.

Pressure readings are in Torr (the controller converts its gauge's Pa), configurable with
``ctx.metadata['pressure_unit']``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from cells.parsers.textio import sniff_lines
from depositions.aldlogs.tabular import TextHead, dedupe, read_text
from depositions.aldlogs.types import (
    AldLog,
    Channel,
    ControllerRecipe,
    LogEvent,
    RecipeRow,
)
from depositions.aldlogs.units import conversion, split_header, time_scale
from depositions.expansion import PlannedStep
from lims.ingestion.base import ParseContext, ParseError, register

VERSION = "1.0.0"
PRESSURE_CHANNEL = "chamber pressure"
# "03/14/2025 09:58:10 AM INFO     msg" or logging's default "2025-03-14 09:58:10,123 INFO msg"
_PREFIX = (
    r"^(?P<stamp>\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d{2}:\d{2}(?: ?[AaPp][Mm])?"
    r"|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[,.]\d+)?)"
    r"\s+(?P<level>DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b\s*(?P<msg>.*)$"
)
_LINE = re.compile(_PREFIX)
_STAMP_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M:%S%p",
    "%m/%d/%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S,%3f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
)
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_MESSAGES: tuple[tuple[str, str], ...] = (
    ("valve", rf"(?i)^set valve\s*(?P<a>\S+?)\s*to\s*(?P<b>{_NUM}|open|close|on|off)\s*$"),
    ("pressure", rf"(?i)^the pressure is\s*(?P<b>{_NUM}|nan)"),
    ("sleep", rf"(?i)^going to sleep for\s*(?P<b>{_NUM})\s*sec"),
    ("setpoint", rf"(?i)^set mfc at\s*(?P<a>.+?)\s*to\s*(?P<b>{_NUM})\s*$"),
    ("loops", r"(?i)^user asked to run the loops this many times\s*(?P<b>\d+)"),
    ("start", r"(?i)^starting a new run"),
    ("finish", r"(?i)^(run finished|run complete|finished the run|run done)"),
    ("recipe_dump", r"(?i)^here is the recipe"),
)
_ALARM_LEVELS = {
    "WARNING": "warning",
    "WARN": "warning",
    "ERROR": "error",
    "CRITICAL": "error",
    "FATAL": "error",
}
_VALVE_COLUMN = re.compile(r"^ald\s*_?v(?:alve)?\s*_?(\d+)$", re.IGNORECASE)
_DELAY_COLUMN = re.compile(r"^(delay|sleep|wait|dwell|time|duration)\b", re.IGNORECASE)


def valve_of_column(column: str) -> str | None:
    """Recipe column ``aldv3`` -> the log's valve name ``valve 3`` (None: not an ALD valve)."""
    match = _VALVE_COLUMN.match(column.strip())
    return f"valve {int(match.group(1))}" if match else None


# --- event log -------------------------------------------------------------------------------


def _entries(head: TextHead) -> pl.DataFrame:
    """One row per timestamped entry; continuation lines joined to the entry above."""
    lines = pl.Series("line", head.lines, dtype=pl.String)
    frame = pl.DataFrame({"line": lines}).with_row_index("n")
    parts = frame.with_columns(pl.col("line").str.extract_groups(_PREFIX).alias("g")).unnest("g")
    parts = parts.with_columns(pl.col("stamp").is_not_null().cum_sum().alias("entry"))
    heads = parts.filter(pl.col("stamp").is_not_null())
    if heads.is_empty():
        raise ParseError(
            "no controller log lines ('MM/DD/YYYY hh:mm:ss AM LEVEL message') found",
            location=f"lines 1-{min(len(head.lines), 50)}",
        )
    extra = (
        parts.filter(pl.col("stamp").is_null() & (pl.col("entry") > 0))
        .filter(pl.col("line").str.strip_chars() != "")
        .group_by("entry", maintain_order=True)
        .agg(pl.col("line").str.join("\n").alias("more"))
    )
    out = heads.join(extra, on="entry", how="left").sort("entry")
    stamp = pl.col("stamp").str.strip_chars()
    parsed = pl.coalesce(
        [stamp.str.strptime(pl.Datetime("ms"), fmt, strict=False) for fmt in _STAMP_FORMATS]
    )
    return out.with_columns(parsed.alias("dt")).select("n", "dt", "stamp", "level", "msg", "more")


def _classify(entries: pl.DataFrame) -> pl.DataFrame:
    kinds = pl.lit("message")
    a = pl.lit(None, dtype=pl.String)
    b = pl.lit(None, dtype=pl.String)
    msg = pl.col("msg").str.strip_chars()
    for kind, pattern in reversed(_MESSAGES):
        hit = msg.str.contains(pattern)
        kinds = pl.when(hit).then(pl.lit(kind)).otherwise(kinds)
        if "(?P<a>" in pattern:
            a = pl.when(hit).then(msg.str.extract(pattern, 1)).otherwise(a)
        if "(?P<b>" in pattern:
            group = 2 if "(?P<a>" in pattern else 1
            b = pl.when(hit).then(msg.str.extract(pattern, group)).otherwise(b)
    return entries.with_columns(kinds.alias("kind"), a.alias("a"), b.alias("b"))


def _valve_value(text: str | None) -> float | None:
    if text is None:
        return None
    low = text.lower()
    if low in ("open", "on"):
        return 1.0
    if low in ("close", "off"):
        return 0.0
    try:
        return 1.0 if float(low) > 0 else 0.0
    except ValueError:
        return None


def _recipe_dump(text: str) -> list[list[float]]:
    """Rows of a printed numpy array (``[[-1. -1. ... 0.1]\\n [ ... ]]``)."""
    body = text[text.find("[") :]
    rows: list[list[float]] = []
    for chunk in re.split(r"\]\s*\[", body):
        numbers = [float(x) for x in re.findall(_NUM, chunk)]
        if numbers:
            rows.append(numbers)
    return rows


def _runs(frame: pl.DataFrame) -> list[tuple[int, int]]:
    """Row ranges [start, end) of each run in an appended log."""
    starts = frame.with_row_index("i").filter(pl.col("kind") == "start")["i"].to_list()
    if not starts or starts[0] != 0:
        starts = [0, *starts]
    bounds = [*starts, frame.height]
    return [(bounds[k], bounds[k + 1]) for k in range(len(starts)) if bounds[k + 1] > bounds[k]]


def _times(dt: pl.Series, warnings: list[str]) -> np.ndarray:
    """Seconds from the first entry; same-second lines keep their order (+1 ms each).

    The clock has 1 s resolution. Lines within a second get 1 ms steps (or 1/n s when a
    second holds more than 1000 lines) so that a reading logged after a valve command stays
    after it. A clock set backwards (DST) is taken out and reported.
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
    whole = np.floor(seconds + 1e-9)
    # position of each line within its second
    change = np.concatenate(([True], whole[1:] != whole[:-1]))
    group_start = np.maximum.accumulate(np.where(change, np.arange(whole.size), 0))
    k = np.arange(whole.size) - group_start
    counts = np.bincount(np.cumsum(change) - 1)
    n = counts[np.cumsum(change) - 1]
    step = np.where(n > 1000, 1.0 / np.maximum(n, 1), 1e-3)
    out: np.ndarray = seconds + k * step
    return out


def parse_controller_log(path: Path, ctx: ParseContext) -> AldLog:
    """Parse a controller event log into an :class:`AldLog` (pressure series + events)."""
    head = read_text(path, ctx)
    warnings = list(head.warnings)
    if len(head.lines) > 1 and head.lines[-1].strip():
        # no line end after the last line: the copy was cut (or the run is still writing)
        warnings.append(
            f"the last line has no line end (file cut?): dropped ({head.lines[-1][:60]!r})"
        )
        head.lines.pop()
    entries = _entries(head)
    bad_stamps = entries.filter(pl.col("dt").is_null())
    if bad_stamps.height:
        warnings.append(
            f"{bad_stamps.height} entries with an unreadable timestamp were skipped "
            f"(first: line {int(bad_stamps['n'][0]) + 1})"
        )
        entries = entries.filter(pl.col("dt").is_not_null())
    if entries.is_empty():
        raise ParseError("no controller log entry has a readable timestamp", location="file")
    entries = _classify(entries)
    runs = _runs(entries)
    metadata: dict[str, Any] = {"format": "controller_eventlog", "encoding": head.encoding}
    chosen = _choose_run(entries, runs, ctx, warnings)
    first, last = runs[chosen]
    metadata["runs_in_file"] = [
        {"index": i, "start": str(entries["dt"][a]), "entries": b - a}
        for i, (a, b) in enumerate(runs)
    ]
    metadata["run_index"] = chosen
    run = entries.slice(first, last - first)
    times = _times(run["dt"], warnings)
    run = run.with_columns(pl.Series("time_s", times))
    start_time = run["dt"][0].isoformat(timespec="seconds")

    pressure_unit = str(ctx.metadata.get("pressure_unit") or "Torr")
    conv = conversion("pressure", pressure_unit)
    if conv is None:
        raise ParseError(f"unknown pressure unit {pressure_unit!r}", location="pressure_unit")
    valve_map = ctx.metadata.get("valve_map") or {}
    events: list[LogEvent] = []
    alarms: list[dict[str, Any]] = []
    run_info: dict[str, Any] = {
        "source": "controller_eventlog",
        "started": bool((run["kind"] == "start").any()),
        "finished": False,
        "loops_requested": None,
    }
    declared: list[list[float]] | None = None
    unread: list[int] = []
    rows = run.select("n", "time_s", "level", "msg", "more", "kind", "a", "b").iter_rows()
    for n, t, level, msg, more, kind, a, b in rows:
        text = msg if more is None else f"{msg}\n{more}"
        severity = _ALARM_LEVELS.get(level or "")
        if severity:
            alarms.append({"time_s": t, "level": severity, "text": text, "line": n + 1})
            events.append(LogEvent(t, "alarm", None, None, text))
        if kind == "valve":
            value = _valve_value(b)
            if value is None:
                unread.append(n + 1)
                continue
            events.append(LogEvent(t, "valve", f"valve {a}", value, msg))
        elif kind == "pressure":
            try:
                reading = float(b) * conv[0] + conv[1]
            except (TypeError, ValueError):
                unread.append(n + 1)
                continue
            events.append(LogEvent(t, "pressure", PRESSURE_CHANNEL, reading, msg))
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
            declared = _recipe_dump(text)
            events.append(LogEvent(t, "message", None, None, msg))
        elif not severity:
            events.append(LogEvent(t, "message", None, None, text))
    if unread:
        warnings.append(
            f"{len(unread)} valve/pressure lines with unreadable values (first: line {unread[0]})"
        )
    series, channels = _series(events, valve_map)
    period = _period(series["time_s"].to_numpy())
    if series.height == 0:
        warnings.append("no pressure readings in this run: pulses cannot be checked for a response")
    metadata.update(
        {
            "run_info": run_info,
            "alarms": alarms,
            "alarm_sources": ["controller_eventlog"],
            "time_resolution_s": 1.0,
            "valve_sources": {
                ch.name: {
                    "label": _label(valve_map, ch.name),
                    "port": ch.port,
                    "evidence": "valve map",
                }
                for ch in channels
                if ch.role == "valve" and _label(valve_map, ch.name)
            },
        }
    )
    if declared:
        metadata["declared_recipe"] = {"source": "controller_log_array", "rows": declared}
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
                "seconds since the run's first entry; the clock has 1 s resolution, lines in the "
                "same second are 1 ms apart in file order"
            ),
            "pressure": f"'The pressure is' readings, {pressure_unit} as logged, converted to Torr",
            "valves": "'set valve N to 1/0' events; series columns give the state at each reading",
        },
        parser="controller_eventlog",
    )


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
    with_valves = [
        i for i, (a, b) in enumerate(runs) if (entries["kind"].slice(a, b - a) == "valve").any()
    ]
    index = with_valves[-1] if with_valves else len(runs) - 1
    if len(runs) > 1:
        warnings.append(
            f"the file holds {len(runs)} runs (appended log); run {index} (0-based) was taken, "
            "the last with valve commands: set run_index to choose another"
        )
    return index


def _series(
    events: Sequence[LogEvent], valve_map: dict[str, Any]
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
            raw_unit="Torr",
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
            channels.append(
                Channel(
                    name=name,
                    role="valve",
                    unit="1",
                    source_column="set valve",
                    port=port or number,
                    physical_channel=f"relay {number}",
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
    match = re.search(r"(\d+)$", name)
    return (name[: match.start()] if match else name, int(match.group(1)) if match else -1)


def _period(times: np.ndarray) -> float | None:
    if times.size < 2:
        return None
    steps = np.diff(times)
    steps = steps[steps > 0.5]  # same-second ms offsets are not sampling
    return float(np.median(steps)) if steps.size else 1.0


# --- recipe CSV ---------------------------------------------------------------------------------


def parse_controller_recipe(path: Path, ctx: ParseContext) -> ControllerRecipe:
    """Parse a controller recipe CSV (``-1`` = no change, a delay column in seconds)."""
    head = read_text(path, ctx)
    lines = [(i, line) for i, line in enumerate(head.lines) if line.strip()]
    if not lines:
        raise ParseError("the recipe file has no lines", location="line 1")
    header_at, header = lines[0]
    sep = "\t" if "\t" in header else ";" if header.count(";") > header.count(",") else ","
    raw = [c.strip().strip('"') for c in header.split(sep)]
    if any(_NUM_ONLY.match(c) for c in raw):
        raise ParseError("the first line is not a header of column names", location="line 1")
    columns, warnings = dedupe(raw)
    warnings = head.warnings + warnings
    delay_at = next((i for i, c in enumerate(columns) if _DELAY_COLUMN.match(c)), None)
    if delay_at is None:
        delay_at = len(columns) - 1
        warnings.append(f"no delay column named: the last column {columns[-1]!r} is taken")
    scale = time_scale(split_header(raw[delay_at])[1]) or 1.0
    rows: list[RecipeRow] = []
    for i, line in lines[1:]:
        cells = [c.strip().strip('"') for c in line.split(sep)]
        if len(cells) < len(columns):
            warnings.append(
                f"line {i + 1} has {len(cells)} of {len(columns)} fields: missing ones = no change"
            )
        values: dict[str, float | None] = {}
        for j, column in enumerate(columns):
            text = cells[j] if j < len(cells) else ""
            if text == "":
                values[column] = None
                continue
            try:
                number = float(text)
            except ValueError as exc:
                raise ParseError(
                    f"{text!r} in column {column!r} is not a number", location=f"line {i + 1}"
                ) from exc
            values[column] = None if number == -1 else number
        delay = values.pop(columns[delay_at])
        if delay is None or delay < 0:
            raise ParseError("a recipe row needs a delay >= 0", location=f"line {i + 1}")
        rows.append(RecipeRow(index=len(rows), values=values, delay_s=delay * scale))
    if not rows:
        raise ParseError("the recipe has a header but no steps", location=f"line {header_at + 2}")
    return ControllerRecipe(
        columns=columns,
        raw_columns=raw,
        rows=rows,
        delay_column=columns[delay_at],
        warnings=warnings,
    )


_NUM_ONLY = re.compile(rf"^{_NUM}$")


def plan_from_controller_recipe(
    recipe: ControllerRecipe,
    loops: int,
    *,
    valve_labels: dict[str, str] | None = None,
    column_to_valve: dict[str, str] | None = None,
) -> list[PlannedStep]:
    """The planned sequence: ``loops`` times the recipe rows.

    A row that sets an ALD valve column (``aldvN``, or ``column_to_valve``) to 1 is a pulse of
    that valve lasting the row's delay; every other row is a purge/wait of its delay. Labels
    are the log's valve names (``valve 1``) unless ``valve_labels`` maps them to chemicals.
    """
    if loops < 1:
        raise ValueError("loops must be >= 1")
    labels = valve_labels or {}
    mapping = dict(column_to_valve or {})
    for column in recipe.columns:
        if column not in mapping and valve_of_column(column):
            mapping[column] = valve_of_column(column) or ""
    steps: list[PlannedStep] = []
    t = 0.0
    for loop in range(loops):
        for row in recipe.rows:
            fired: list[str | None] = [
                v for c, v in mapping.items() if (row.values.get(c) or 0) > 0
            ]
            for valve in fired or [None]:
                steps.append(
                    PlannedStep(
                        phase="cycle",
                        supercycle=loop,
                        block=0,
                        subcycle="recipe",
                        repetition=0,
                        order=row.index + 1,
                        kind="pulse" if valve else "purge",
                        source_label=labels.get(valve, valve) if valve else "",
                        start_s=round(t, 6),
                        duration_s=row.delay_s,
                    )
                )
            t += row.delay_s
    return steps


# --- registered parsers -------------------------------------------------------------------------


def _log_score(head: bytes) -> float:
    lines = [line for line in (sniff_lines(head, 60) or []) if line.strip()]
    if not lines:
        return 0.0
    hits = [_LINE.match(line) for line in lines[:50]]
    matched = [m for m in hits if m]
    if len(matched) < 2 or len(matched) < len(hits) / 3:
        return 0.0
    words = sum(
        1
        for m in matched
        if re.match(
            r"(?i)(set valve|the pressure is|going to sleep|set mfc|starting a new run)", m["msg"]
        )
    )
    return 0.95 if words >= 2 else 0.0


@register
class ControllerEventLogParser:
    """Controller event log (``set valve 1to 1``, ``The pressure is X``)."""

    name: ClassVar[str] = "controller_eventlog"
    version: ClassVar[str] = VERSION
    kind: ClassVar[str] = "ald_log"

    def sniff(self, head: bytes, filename: str) -> float:
        return _log_score(head)

    def parse(self, path: Path, ctx: ParseContext) -> AldLog:
        return parse_controller_log(Path(path), ctx)


@register
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
