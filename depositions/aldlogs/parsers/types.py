"""What every ALD log parser returns, whatever the instrument wrote.

A log becomes one :class:`AldLog`: a time series in canonical units (Torr, degC, sccm, ng/cm2,
Hz, W, seconds), the channels that say what each column means, discrete events (valve
commands, setpoints, alarms), and JSON-safe metadata (setpoints from summaries, the tool's own
recipe, run info). Companion files of a LabVIEW run and the controller's recipe CSV parse into
their own small dataclasses so that they can also be uploaded one by one.

Nothing here imports Django or the ORM: parsers, pulse detection and checks run in tests and
benchmarks on their own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import polars as pl

ROLES: tuple[str, ...] = (
    "pressure",
    "valve",
    "temperature",
    "temperature_setpoint",
    "mfc",
    "qcm_mass",
    "qcm_frequency",
    "power",
    "other",
)
# Canonical unit per role; "other" keeps what the file wrote.
CANONICAL_UNITS: dict[str, str] = {
    "pressure": "Torr",
    "valve": "1",
    "temperature": "degC",
    "temperature_setpoint": "degC",
    "mfc": "sccm",
    "qcm_mass": "ng/cm2",
    "qcm_frequency": "Hz",
    "power": "W",
}
EVENT_KINDS: tuple[str, ...] = (
    "valve",  # value 1 = open, 0 = closed
    "pressure",  # a reading logged as a message (also in the series)
    "setpoint",  # MFC / heater / plasma setpoint
    "sleep",  # the controller waited value seconds
    "run",  # run start / end / loops requested
    "alarm",  # warnings, errors, aborts
    "message",  # anything else, kept verbatim
)


@dataclass(frozen=True)
class Channel:
    """One measured or commanded quantity of the log.

    ``name`` is the column in :attr:`AldLog.series`; ``source_column`` the label as written.
    ``port`` is the tool port the channel belongs to (a valve's port, a source heater's port);
    ``physical_channel`` the hardware address (``Mod8/do1``, ``relay 2``) because software
    channel numbers are often offset from the wiring. ``zone`` tells source, line, chamber or
    substrate temperatures apart (used by the line/source inversion check).
    """

    name: str
    role: str
    unit: str
    source_column: str
    port: str | None = None
    physical_channel: str | None = None
    on_threshold: float | None = None
    raw_unit: str | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown channel role {self.role!r}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LogEvent:
    """A discrete entry of an event log (or a line of a summary that carries a time)."""

    time_s: float
    kind: str
    channel: str | None
    value: float | None
    text: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AldLog:
    """A parsed tool log in canonical units.

    ``series`` has ``time_s`` (Float64, seconds from the run start, increasing) and one
    Float64 column per channel, nulls where the instrument wrote nothing. ``sample_period_s``
    is the median time step (None for fewer than two samples): pulse widths are known only to
    +- one period. ``conventions`` records every interpretation the parser had to make.
    """

    series: pl.DataFrame
    channels: list[Channel]
    events: list[LogEvent] = field(default_factory=list)
    sample_period_s: float | None = None
    start_time: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    conventions: dict[str, str] = field(default_factory=dict)
    parser: str = ""
    # Every run of a file that holds several (a controller log appended session after
    # session), this log included; empty when the file is one run.
    segments: list[LogSegment] = field(default_factory=list)

    def channel(self, name: str) -> Channel:
        for ch in self.channels:
            if ch.name == name:
                return ch
        raise KeyError(name)

    def by_role(self, role: str) -> list[Channel]:
        return [ch for ch in self.channels if ch.role == role]

    def describe(self) -> dict[str, Any]:
        """JSON-safe summary (no samples): what the worker stores beside the Parquet file."""
        return {
            "parser": self.parser,
            "rows": self.series.height,
            "channels": [ch.as_dict() for ch in self.channels],
            "events": len(self.events),
            "sample_period_s": self.sample_period_s,
            "start_time": self.start_time,
            "metadata": self.metadata,
            "warnings": list(self.warnings),
            "conventions": dict(self.conventions),
            "segments": [seg.describe() for seg in self.segments],
        }

    def end_time(self) -> str | None:
        """ISO time of the last sample or event (start time + the last time seen)."""
        if not self.start_time:
            return None
        last = [max(e.time_s for e in self.events)] if self.events else []
        if self.series.height and "time_s" in self.series.columns:
            value = self.series["time_s"].max()
            if isinstance(value, int | float):
                last.append(float(value))
        if not last:
            return self.start_time
        start = datetime.fromisoformat(self.start_time)
        return (start + timedelta(seconds=max(last))).isoformat(timespec="milliseconds")

    def parts(self) -> list[LogSegment]:
        """The runs of the file: its segments, or the log itself as the one segment."""
        if self.segments:
            return list(self.segments)
        return [LogSegment(0, self, self.start_time, self.end_time())]


@dataclass
class LogSegment:
    """One run of a log file that holds several, with its own series, pulses and verdict.

    ``log`` is the run on its own time axis (seconds from its first entry); ``start_time``
    and ``end_time`` (ISO, the instrument's clock) place it in time, so that it can be lined
    up with a deposition run's window.
    """

    index: int
    log: AldLog
    start_time: str | None
    end_time: str | None

    def describe(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "rows": self.log.series.height,
            "events": len(self.log.events),
        }


# --- companion files --------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutionStep:
    """One row of a LabVIEW execution table: the step as the tool ran it."""

    step: int
    precursor: str | None  # None for purge-only steps ("None")
    fill_pressure_torr: float | None
    dose_time_s: float | None
    purge_time_s: float | None
    process_type: str


@dataclass
class ExecutionTable:
    steps: list[ExecutionStep]
    warnings: list[str] = field(default_factory=list)
    encoding: str = ""

    def doses_per_precursor(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.steps:
            if s.precursor:
                out[s.precursor] = out.get(s.precursor, 0) + 1
        return out


@dataclass(frozen=True)
class DoseRecord:
    """One row of a LabVIEW Doses-DeltaM table: when a dose started and the QCM mass change."""

    step: int
    precursor_number: int | None
    precursor: str | None
    process_type: str
    pulse_start_s: float | None
    hold_start_s: float | None
    purge_start_s: float | None
    initial_mass_ng_cm2: float | None
    final_mass_ng_cm2: float | None
    delta_mass_ng_cm2: float | None


@dataclass
class DosesTable:
    doses: list[DoseRecord]
    warnings: list[str] = field(default_factory=list)
    encoding: str = ""

    def doses_per_precursor(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for d in self.doses:
            if d.precursor and d.pulse_start_s is not None:
                out[d.precursor] = out.get(d.precursor, 0) + 1
        return out


@dataclass
class RunSummary:
    """A LabVIEW run summary: setpoints (kept beside measured values), precursors, completion."""

    fields: dict[str, str]
    setpoints: dict[str, dict[str, Any]]  # name -> {"value", "unit", "role", "as_written"}
    precursors: dict[str, str]  # port -> precursor name
    start_time: str | None
    end_time: str | None
    steps_completed: int | None
    steps_total: int | None
    status_text: str | None
    warnings: list[str] = field(default_factory=list)
    encoding: str = ""

    @property
    def complete(self) -> bool | None:
        if self.steps_completed is None or self.steps_total is None:
            return None
        return self.steps_completed >= self.steps_total


@dataclass(frozen=True)
class RecipeRow:
    """One row of a controller recipe: values to set (None = -1 = no change) then a delay."""

    index: int
    values: dict[str, float | None]
    delay_s: float


@dataclass
class ControllerRecipe:
    columns: list[str]  # de-duplicated
    raw_columns: list[str]  # as written
    rows: list[RecipeRow]
    delay_column: str
    warnings: list[str] = field(default_factory=list)


# --- pulses --------------------------------------------------------------------------------------


@dataclass(slots=True)
class PulseEvent:
    """One detected dose.

    ``source`` is the valve (channel or port) that fired, ``source_label`` the chemical when a
    port -> label map is known. Widths carry +- ``width_uncertainty_s`` (one sample period or
    the log's time resolution). Pressure values are Torr, ``area`` Torr*s over the pulse and a
    short tail, ``residual`` the pressure left above the baseline at the end of the purge.
    ``noise_sigma`` is the run's baseline noise (the dead-pulse yardstick), ``baseline_sigma``
    the noise just before this pulse (the purge-completeness yardstick in noisy stretches).
    Alignment fields are filled by :func:`depositions.aldlogs.pulses.align_to_plan`.
    """

    index: int
    source: str
    source_label: str | None
    channel: str | None
    detection: str  # "valve_channel" | "valve_event" | "pressure_spike" | "power"
    start_s: float
    width_s: float
    width_uncertainty_s: float
    baseline: float | None = None
    peak: float | None = None
    rise: float | None = None
    area: float | None = None
    noise_sigma: float | None = None  # run-level baseline noise (dead-pulse test)
    baseline_sigma: float | None = None  # noise of this pulse's own baseline window
    residual: float | None = None
    end_of_purge_s: float | None = None
    qcm_delta: float | None = None
    dead: bool | None = None
    flags: list[str] = field(default_factory=list)
    # alignment to the expanded recipe
    planned_index: int | None = None
    phase: str | None = None
    supercycle: int | None = None
    block: int | None = None
    subcycle: str | None = None
    repetition: int | None = None
    step_order: int | None = None
    planned_width_s: float | None = None
    planned_purge_s: float | None = None
    # plasma pulses (detection "power"): median forward power while on, W
    power_w: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
