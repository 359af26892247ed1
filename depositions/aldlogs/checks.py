"""Run checks: a deposition run's tool log against its expanded recipe.

Each check returns the shared :class:`~depositions.qc.CheckResult` (name, status
pass / warn / fail, value, threshold, details) wrapped in :class:`AldCheck`, which adds the
checker version and the source or channel the check is about. Per-source checks are named
``<check>:<source>`` (``dead_pulses:TMA``).

Missing data: a check whose inputs are absent (no plan, no pressure channel, no QCM, no
temperature channel, no calibration...) is **skipped**: it produces no pass/warn/fail row but
an entry in :attr:`CheckReport.skipped` with the reason, so that a run is never failed or
warned for what its tool does not log. The verdict is the worst status of the rows.

Defaults are in :class:`Thresholds` (overridable per tool with :meth:`Thresholds.from_dict`)
and documented, with every rule, in docs/ald-checks.md.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import operator
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Literal

import numpy as np
import polars as pl

from depositions.aldlogs.parsers.types import AldLog, Channel, PulseEvent
from depositions.aldlogs.pulses import (
    DETECTION_MODES,
    Alignment,
    DetectionOptions,
    PlannedDose,
    align_to_plan,
    as_doses,
    expected_counts,
    mark_dead,
)
from depositions.choices import StepKind
from depositions.dose import (
    DEFAULT_SAFETY_FACTOR,
    DEFAULT_SITE_DENSITY_PER_M2,
    LoadArea,
    required_umol,
)
from depositions.expansion import PlannedStep, RecipeSpec
from depositions.qc import CheckResult, overall_status

CHECKER_VERSION = "1.2.0"  # 1.2: "no data" verdict, loops run vs requested; 1.1: plasma_power
STATS_ROWS = 20_000
PASS, WARN, FAIL = "pass", "warn", "fail"
# The verdict of a log in which no check of the deposition itself could run (no pressure, no
# plan, no QCM...): only the checks about the log were made, and none failed.
NO_DATA = "no data"
# Checks about the log (its quality, its completion markers, its alarms), not the deposition.
LOG_ONLY_CHECKS = frozenset({"log_quality", "run_completeness", "alarms"})


# One line per threshold for the tool's threshold editor (why the defaults: docs/ald-checks.md).
THRESHOLD_HELP = {
    "baseline_window_s": "s before each pulse whose median is its baseline",
    "peak_tail_s": "s after the pulse end searched for its peak",
    "tail_s": "s after the pulse end included in its area",
    "end_window_s": "s at the end of each purge whose median is its residual",
    "pressure_channel": "which pressure channel is the chamber's",
    "pulse_detection": "where pulses come from: valve events, valve channels or pressure spikes",
    "dead_k_sigma": "dead pulse: rise below k x baseline noise sigma",
    "dead_warn_fraction": "share of dead pulses that only warns",
    "count_warn": "pulse count off by at most this: warn (more: fail)",
    "width_tolerance_s": "s; pulse width vs recipe (empty: one sample period)",
    "purge_tolerance_s": "s; purge shorter than planned by more fails (empty: one period)",
    "out_of_tolerance_warn_fraction": "share of pulses out of tolerance that only warns",
    "drift_window_fraction": "first / last share of pulses compared for drift",
    "drift_warn": "relative change of the pressure rise that warns",
    "drift_fail": "relative drop of the pressure rise that fails",
    "drift_min_pulses": "fewer live pulses: no drift check",
    "purge_residual_k_sigma": "incomplete purge: residual above k x noise sigma ...",
    "purge_residual_fraction": "... and above this share of the pulse's rise",
    "temperature_stability_warn_k": "K; 1-99 % band around the median that warns",
    "temperature_stability_fail_k": "K; band that fails",
    "setpoint_tolerance_k": "K; measured vs setpoint",
    "setpoint_channels": "summary setpoint = log channel, one per line",
    "line_over_source_min_k": "K; a line must be this much hotter than its source",
    "site_density_per_m2": "reactive sites per m2 of powder (dose vs surface)",
    "dose_safety_factor": "dose vs surface: below this many times the need warns",
    "completeness_min": "share of the plan the log must reach",
    "gpc_warn_fraction": "QCM GPC outside the reference range by this share warns",
    "gpc_fail_fraction": "... by this share fails",
    "saturation_warn_ratio": "QCM: repeated-dose gain / first-dose gain that warns",
    "saturation_fail_ratio": "... that fails",
    "min_repeated_doses": "QCM saturation needs this many repeated doses",
    "plasma_power_tolerance_fraction": "plasma pulse power vs the recipe's, as a share",
}


@dataclass(frozen=True)
class Thresholds:
    """Check thresholds; every default is explained in docs/ald-checks.md."""

    # pulse measurement windows (see DetectionOptions)
    baseline_window_s: float = 5.0
    peak_tail_s: float = 2.0
    tail_s: float = 3.0
    end_window_s: float = 2.0
    pressure_channel: str | None = None
    pulse_detection: str = "auto"
    # dead pulses: rise < k x baseline noise sigma
    dead_k_sigma: float = 3.0
    dead_warn_fraction: float = 0.05
    # counts: |observed - planned| <= count_warn -> warn (0 -> pass)
    count_warn: int = 1
    # widths and purges: tolerance None = the pulse's own uncertainty (one sample period)
    width_tolerance_s: float | None = None
    purge_tolerance_s: float | None = None
    out_of_tolerance_warn_fraction: float = 0.05
    # delivery drift: first vs last window_fraction of a source's live pulses
    drift_window_fraction: float = 0.10
    drift_warn: float = 0.20
    drift_fail: float = 0.50
    drift_min_pulses: int = 10
    # purge completeness: residual above max(k sigma, fraction x rise) = incomplete
    purge_residual_k_sigma: float = 3.0
    purge_residual_fraction: float = 0.10
    # temperatures
    temperature_stability_warn_k: float = 3.0
    temperature_stability_fail_k: float = 10.0
    setpoint_tolerance_k: float = 10.0
    setpoint_channels: Mapping[str, str] = field(default_factory=dict)
    line_over_source_min_k: float = 5.0
    # doses
    site_density_per_m2: float = DEFAULT_SITE_DENSITY_PER_M2
    dose_safety_factor: float = DEFAULT_SAFETY_FACTOR
    # completeness: share of the plan reached
    completeness_min: float = 1.0
    # QCM
    gpc_warn_fraction: float = 0.25
    gpc_fail_fraction: float = 0.50
    saturation_warn_ratio: float = 0.20
    saturation_fail_ratio: float = 0.50
    min_repeated_doses: int = 2
    # plasma: median forward power of each plasma pulse within this share of the planned power
    plasma_power_tolerance_fraction: float = 0.10

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Thresholds:
        """Per-tool overrides; unknown keys are an error (a typo must not silently do nothing)."""
        data = dict(data or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown threshold(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(cls(), name)
            if name == "setpoint_channels":
                values[name] = {str(k): str(v) for k, v in dict(value or {}).items()}
            elif name == "pulse_detection":
                if value not in DETECTION_MODES:
                    raise ValueError(
                        f"pulse_detection must be one of {', '.join(sorted(DETECTION_MODES))}"
                    )
                values[name] = value
            elif value is None or name == "pressure_channel":
                values[name] = value
            elif isinstance(value, bool):
                raise ValueError(f"{name} must be a number, not {value!r}")
            else:
                number = float(value)
                if not math.isfinite(number) or number < 0:
                    raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
                is_int = isinstance(default, int) and not isinstance(default, bool)
                values[name] = int(number) if is_int else number
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["setpoint_channels"] = dict(self.setpoint_channels)
        return out

    def detection_options(self) -> DetectionOptions:
        return DetectionOptions(
            baseline_window_s=self.baseline_window_s,
            peak_tail_s=self.peak_tail_s,
            tail_s=self.tail_s,
            end_window_s=self.end_window_s,
            dead_k_sigma=self.dead_k_sigma,
            pressure_channel=self.pressure_channel,
            mode=self.pulse_detection,
        )


@dataclass(frozen=True)
class GpcReference:
    """Reference growth per cycle (Å) and the film density that turns QCM mass into Å."""

    gpc_min_angstrom: float
    gpc_max_angstrom: float | None = None
    film_density_g_cm3: float | None = None
    source: str = ""
    subcycle: str | None = None  # None: every sub-cycle with two or more reactants

    @property
    def high(self) -> float:
        return self.gpc_max_angstrom if self.gpc_max_angstrom is not None else self.gpc_min_angstrom


@dataclass(frozen=True)
class DoseContext:
    """Port calibrations (µmol per pulse, by source label) and the powder loads of the run."""

    dose_umol_per_pulse: Mapping[str, float | None] = field(default_factory=dict)
    loads: Sequence[LoadArea] = ()


@dataclass(frozen=True)
class AldCheck:
    """A check result with the version of the checker that produced it."""

    result: CheckResult
    checker_version: str = CHECKER_VERSION
    subject: str | None = None  # source label, valve or channel

    @property
    def name(self) -> str:
        return self.result.name

    @property
    def status(self) -> str:
        return self.result.status

    @property
    def value(self) -> float | None:
        return self.result.value

    @property
    def threshold(self) -> float | None:
        return self.result.threshold

    @property
    def details(self) -> str:
        return self.result.details

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.result.as_dict(),
            "checker_version": self.checker_version,
            "subject": self.subject,
        }


@dataclass
class CheckReport:
    results: list[AldCheck]
    skipped: list[dict[str, str]]
    verdict: str
    reasons: list[str]
    alignment: dict[str, Any] | None
    thresholds: dict[str, Any]
    checker_version: str = CHECKER_VERSION

    def rows(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.results]

    def as_dict(self) -> dict[str, Any]:
        return {
            "checker_version": self.checker_version,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "results": self.rows(),
            "skipped": self.skipped,
            "alignment": self.alignment,
            "thresholds": self.thresholds,
        }


def overall_verdict(results: Iterable[AldCheck | CheckResult]) -> str:
    """fail if any check fails, else warn if any warns, else pass (no rows: pass)."""
    plain = [r.result if isinstance(r, AldCheck) else r for r in results]
    return overall_status(plain)


def verdict_reasons(results: Iterable[AldCheck]) -> list[str]:
    """The failing checks' details (or the warnings' when nothing fails)."""
    rows = list(results)
    worst = [r for r in rows if r.status == FAIL] or [r for r in rows if r.status == WARN]
    return [f"{r.name}: {r.details}" for r in worst]


def _no_data_reasons(skipped: Sequence[dict[str, str]]) -> list[str]:
    """Why nothing about the deposition could be checked: each skipped check's reason, once."""
    seen: dict[str, str] = {}
    for skip in skipped:
        seen.setdefault(skip["reason"], skip["name"].split(":")[0])
    return ["no check of the deposition could run"] + [f"{n}: {r}" for r, n in seen.items()]


# --- helpers ------------------------------------------------------------------------------------


class _Out:
    def __init__(self) -> None:
        self.results: list[AldCheck] = []
        self.skipped: list[dict[str, str]] = []

    def add(
        self,
        name: str,
        status: str,
        value: float | None,
        threshold: float | None,
        details: str,
        subject: str | None = None,
    ) -> None:
        self.results.append(
            AldCheck(
                CheckResult(name, status, _clean(value), _clean(threshold), details),
                subject=subject,
            )
        )

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append({"name": name, "reason": reason})


def _clean(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return round(number, 9) if math.isfinite(number) else None


def _by_fraction(bad: int, n: int, warn_fraction: float) -> str:
    if bad == 0:
        return PASS
    return WARN if n and bad / n <= warn_fraction else FAIL


def _key(pulse: PulseEvent) -> str:
    return pulse.source_label or pulse.source


def _groups(ordered: Iterable[PulseEvent]) -> dict[str, list[PulseEvent]]:
    """Pulses by source label (or valve), each list in time order."""
    out: dict[str, list[PulseEvent]] = {}
    for p in ordered:
        out.setdefault(_key(p), []).append(p)
    return out


def _g(x: float | None, unit: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.4g}{(' ' + unit) if unit else ''}"


def _is_plasma(group: Sequence[PulseEvent]) -> bool:
    """Plasma pulses (forward power) are judged by their power, not by the pressure."""
    return all(p.detection == "power" for p in group)


def _planned_power(plan: Any) -> dict[str, float | None]:
    """Planned plasma power per source label (a RecipeSpec carries it; None: ambiguous)."""
    if not isinstance(plan, RecipeSpec):
        return {}
    steps = [s for sc in plan.subcycles for s in sc.steps]
    steps += [*plan.pre_steps, *plan.post_steps]
    powers: dict[str, set[float]] = {}
    for step in steps:
        if step.kind == "plasma" and step.plasma_power_w is not None:
            powers.setdefault(step.source_label, set()).add(float(step.plasma_power_w))
    return {label: (next(iter(v)) if len(v) == 1 else None) for label, v in powers.items()}


def _label_plasma(pulses: Sequence[PulseEvent], doses: Sequence[PlannedDose]) -> None:
    """Unmapped plasma pulses take the plan's plasma source when it has exactly one (a tool
    has one generator; its channel is rarely mapped to a port)."""
    labels = {d.source_label for d in doses if d.kind == "plasma"}
    if len(labels) != 1:
        return
    (label,) = labels
    for p in pulses:
        if p.detection == "power" and not p.source_label:
            p.source_label = label
            p.flags.append("plasma label from the plan")


def _plasma_power(
    groups: dict[str, list[PulseEvent]], plan: Any, out: _Out, th: Thresholds
) -> None:
    plasma = {k: g for k, g in groups.items() if _is_plasma(g)}
    if not plasma:
        out.skip("plasma_power", "no plasma power channel with pulses in this log")
        return
    planned = _planned_power(plan)
    for label, group in plasma.items():
        if label not in planned:
            out.skip(f"plasma_power:{label}", "no planned plasma power for this source")
            continue
        target = planned[label]
        if target is None or target <= 0:
            out.skip(f"plasma_power:{label}", "the recipe plans several powers for it")
            continue
        limit = th.plasma_power_tolerance_fraction * target
        powers = [p.power_w for p in group]
        bad = [p for p in group if p.power_w is None or abs(p.power_w - target) > limit]
        median = statistics.median(w for w in powers if w is not None)
        details = (
            f"median forward power {_g(median, 'W')} vs planned {_g(target, 'W')} "
            f"+- {th.plasma_power_tolerance_fraction:.0%}; {len(bad)} of {len(group)} outside"
        )
        if bad:
            details += f" (first at {_g(bad[0].start_s, 's')}: {_g(bad[0].power_w, 'W')})"
        out.add(
            f"plasma_power:{label}",
            _by_fraction(len(bad), len(group), th.out_of_tolerance_warn_fraction),
            median,
            target,
            details,
            subject=label,
        )


def _doses_of(plan: Any) -> list[PlannedDose] | None:
    return None if plan is None else as_doses(plan)


# --- the checks ---------------------------------------------------------------------------------


def run_checks(
    log: AldLog,
    pulses: Sequence[PulseEvent],
    plan: RecipeSpec | Sequence[PlannedStep] | Sequence[PlannedDose] | None,
    thresholds: Thresholds | None = None,
    *,
    dose_context: DoseContext | None = None,
    reference_gpc: GpcReference | float | None = None,
    port_temperatures: Mapping[str, tuple[float | None, float | None]] | None = None,
    alignment: Alignment | None = None,
) -> CheckReport:
    """Every check the data allows; see the module docstring for the missing-data rule.

    ``plan`` is the run's expanded recipe (a :class:`RecipeSpec`, its ``iter_steps`` or
    :func:`planned_doses`); the pulses are aligned to it here unless ``alignment`` says they
    already were. ``port_temperatures`` maps a port to its (source, line) setpoints (degC).
    """
    th = thresholds or Thresholds()
    out = _Out()
    mark_dead(pulses, th.dead_k_sigma)
    doses = _doses_of(plan)
    if doses is not None:
        _label_plasma(pulses, doses)
    if doses is not None and alignment is None:
        alignment = align_to_plan(pulses, doses)
    if isinstance(reference_gpc, int | float):
        reference_gpc = GpcReference(float(reference_gpc))

    ordered = sorted(pulses, key=attrgetter("start_s"))
    groups = _groups(ordered)
    _log_quality(log, out)
    _counts(groups, doses, alignment, out, th)
    _widths(groups, doses, out, th)
    _purges(ordered, doses, out, th)
    by_pressure = {k: g for k, g in groups.items() if not _is_plasma(g)}
    _dead(by_pressure, out, th)
    _drift(by_pressure, out, th)
    _purge_completeness(by_pressure, out, th)
    _plasma_power(groups, plan, out, th)
    _temperatures(log, ordered, out, th)
    _setpoints(log, out, th)
    _line_source(log, out, th, port_temperatures or {})
    _doses(groups, doses, out, th, dose_context)
    _completeness(log, doses, alignment, pulses, out, th)
    _alarms(log, out)
    _qcm(pulses, doses, out, th, reference_gpc)
    verdict, reasons = overall_verdict(out.results), verdict_reasons(out.results)
    if verdict != FAIL and all(r.name in LOG_ONLY_CHECKS for r in out.results):
        verdict, reasons = NO_DATA, _no_data_reasons(out.skipped)
    return CheckReport(
        results=out.results,
        skipped=out.skipped,
        verdict=verdict,
        reasons=reasons,
        alignment=alignment.as_dict() if alignment else None,
        thresholds=th.as_dict(),
    )


def _log_quality(log: AldLog, out: _Out) -> None:
    tb = log.metadata.get("time_base") or {}
    issues = {
        "rows without time": tb.get("rows_without_time", 0),
        "rows going back in time": tb.get("rows_backwards", 0),
        "gaps": tb.get("gaps", 0),
        "short rows": tb.get("short_rows", 0),
    }
    found = {k: int(v) for k, v in issues.items() if v}
    n = sum(found.values())
    details = (
        ", ".join(f"{v} {k}" for k, v in found.items())
        if found
        else "time base regular, rows complete"
    )
    if log.warnings:
        details += f"; {len(log.warnings)} parser warnings (first: {log.warnings[0]})"
    status = WARN if found or log.warnings else PASS
    out.add("log_quality", status, n, 0, details)


def _counts(
    groups: dict[str, list[PulseEvent]],
    doses: list[PlannedDose] | None,
    alignment: Alignment | None,
    out: _Out,
    th: Thresholds,
) -> None:
    if doses is None:
        out.skip("pulse_count", "no recipe plan to compare with")
        return
    expected = expected_counts(doses)
    observed = groups
    for label, n_exp in expected.items():
        got = observed.get(label, [])
        diff = len(got) - n_exp
        status = PASS if diff == 0 else WARN if abs(diff) <= th.count_warn else FAIL
        valves = sorted({p.channel or p.source for p in got})
        out.add(
            f"pulse_count:{label}",
            status,
            len(got),
            n_exp,
            f"{len(got)} pulses observed, {n_exp} planned"
            + (f" (from {', '.join(valves)})" if valves else " (no valve delivered this source)"),
            subject=label,
        )
    unplanned = {k: v for k, v in observed.items() if k not in expected}
    labelled = {k: v for k, v in unplanned.items() if any(p.source_label for p in v)}
    for label, got in labelled.items():
        out.add(
            f"pulse_count:{label}",
            FAIL,
            len(got),
            0,
            f"{len(got)} pulses of {label}, which the recipe does not use",
            subject=label,
        )
    raw = {k: v for k, v in unplanned.items() if k not in labelled}
    if raw:
        out.add(
            "unplanned_valves",
            WARN,
            sum(len(v) for v in raw.values()),
            0,
            "valves fired that no recipe source maps to: "
            + ", ".join(f"{k} ({len(v)} pulses)" for k, v in raw.items())
            + " (map them to a source, or they are not doses)",
        )
    if alignment is not None:
        status = PASS if alignment.aligned else WARN
        details = (
            f"{alignment.matched} of {alignment.planned} planned doses matched; "
            f"{len(alignment.missing)} missing, {len(alignment.extra)} extra"
        )
        if alignment.notes:
            details += "; " + "; ".join(alignment.notes)
        out.add("plan_alignment", status, alignment.matched, alignment.planned, details)


def _widths(
    groups: dict[str, list[PulseEvent]], doses: list[PlannedDose] | None, out: _Out, th: Thresholds
) -> None:
    if doses is None:
        out.skip("pulse_width", "no recipe plan to compare with")
        return
    for label, group in groups.items():
        aligned = [p for p in group if p.planned_width_s is not None]
        # stop-flow: a fill lasts until the fill pressure is reached, not a planned time
        timed = [
            p
            for p in aligned
            if p.planned_index is None or doses[p.planned_index].kind != StepKind.FILL
        ]
        measurable = [p for p in timed if p.detection != "pressure_spike"]
        if not measurable:
            if any(p.detection == "pressure_spike" for p in group):
                reason = "pulses seen only as pressure spikes: width not measurable"
            elif aligned and not timed:
                reason = "fill doses (stop-flow) end at the fill pressure: no planned width"
            else:
                reason = "no pulse aligned to a planned dose"
            out.skip(f"pulse_width:{label}", reason)
            continue
        fixed = th.width_tolerance_s
        bad = [
            p
            for p in measurable
            if abs(p.width_s - (p.planned_width_s or 0.0))
            > (fixed if fixed is not None else p.width_uncertainty_s) + 1e-9
        ]
        widths = [p.width_s for p in measurable]
        median = statistics.median(widths)
        planned = statistics.median(p.planned_width_s or 0.0 for p in measurable)
        tol_text = (
            _g(th.width_tolerance_s, "s")
            if th.width_tolerance_s is not None
            else f"one sample period ({_g(measurable[0].width_uncertainty_s, 's')})"
        )
        details = (
            f"median {_g(median, 's')} "
            f"(range {_g(min(widths))}-{_g(max(widths))} s) "
            f"vs planned {_g(planned, 's')} +- {tol_text}; {len(bad)} of {len(measurable)} outside"
        )
        if bad:
            details += f" (first at {_g(bad[0].start_s, 's')}: {_g(bad[0].width_s, 's')})"
        out.add(
            f"pulse_width:{label}",
            _by_fraction(len(bad), len(measurable), th.out_of_tolerance_warn_fraction),
            median,
            planned,
            details,
            subject=label,
        )


def _purges(
    ordered: Sequence[PulseEvent], doses: list[PlannedDose] | None, out: _Out, th: Thresholds
) -> None:
    if doses is None:
        out.skip("purge_length", "no recipe plan to compare with")
        return
    # per source: the pulses followed by their next planned pulse, and the purge observed
    pairs: dict[str, tuple[list[PulseEvent], list[float]]] = {}
    for a, b in itertools.pairwise(ordered):
        if (
            a.planned_index is None
            or b.planned_index != a.planned_index + 1
            or a.planned_purge_s is None
        ):
            continue
        before, after = pairs.setdefault(_key(a), ([], []))
        before.append(a)
        after.append(b.start_s - (a.start_s + a.width_s))
    if not pairs:
        out.skip("purge_length", "no two consecutive pulses aligned to consecutive planned doses")
        return
    for label, (pulses, observed_all) in pairs.items():
        short = []
        for p, observed in zip(pulses, observed_all, strict=True):
            tol = (
                th.purge_tolerance_s if th.purge_tolerance_s is not None else p.width_uncertainty_s
            )
            if observed < (p.planned_purge_s or 0.0) - tol - 1e-9:
                short.append((p, observed))
        excess = [o - (p.planned_purge_s or 0.0) for p, o in zip(pulses, observed_all, strict=True)]
        planned = statistics.median(p.planned_purge_s or 0.0 for p in pulses)
        median = statistics.median(observed_all)
        details = (
            f"{len(short)} of {len(pulses)} purges after {label} shorter than planned "
            f"(median {_g(median, 's')}, planned {_g(planned, 's')}; "
            f"longest excess {_g(max(excess), 's')})"
        )
        if short:
            p, o = short[0]
            details += (
                f"; first short at {_g(p.start_s, 's')}: {_g(o, 's')} "
                f"vs {_g(p.planned_purge_s, 's')}"
            )
        out.add(
            f"purge_length:{label}",
            _by_fraction(len(short), len(pulses), th.out_of_tolerance_warn_fraction),
            min(observed_all) if short else median,
            planned,
            details,
            subject=label,
        )


def _dead(groups: dict[str, list[PulseEvent]], out: _Out, th: Thresholds) -> None:
    if not groups:
        out.skip("dead_pulses", "no pulses detected")
        return
    for label, group in groups.items():
        known = [p for p in group if p.dead is not None]
        if not known:
            out.skip(f"dead_pulses:{label}", "no chamber pressure around these pulses")
            continue
        dead = [p for p in known if p.dead]
        sigma = known[0].noise_sigma or 0.0
        limit = th.dead_k_sigma * sigma
        median = statistics.median([p.rise or 0.0 for p in known])
        status = _by_fraction(len(dead), len(known), th.dead_warn_fraction)
        details = (
            f"{len(dead)} of {len(known)} pulses of {label} raised the chamber pressure less than "
            f"{th.dead_k_sigma:g} sigma ({_g(limit, 'Torr')}) above their baseline; median rise "
            f"{_g(median, 'Torr')}"
        )
        if dead:
            details += f" (first dead pulse at {_g(dead[0].start_s, 's')})"
        out.add(f"dead_pulses:{label}", status, median, limit, details, subject=label)


def _drift(groups: dict[str, list[PulseEvent]], out: _Out, th: Thresholds) -> None:
    for label, group in groups.items():
        live = [p for p in group if p.dead is False and p.rise is not None]
        if len(live) < th.drift_min_pulses:
            out.skip(
                f"delivery_drift:{label}",
                f"{len(live)} live pulses with a pressure rise (< {th.drift_min_pulses} needed)",
            )
            continue
        w = max(1, round(len(live) * th.drift_window_fraction))
        first = float(np.mean([p.rise for p in live[:w]]))
        last = float(np.mean([p.rise for p in live[-w:]]))
        if first <= 0:
            out.skip(f"delivery_drift:{label}", "first pulses have no positive rise")
            continue
        change = last / first - 1.0
        if change < -th.drift_fail:
            status = FAIL
        elif abs(change) > th.drift_warn:
            status = WARN
        else:
            status = PASS
        out.add(
            f"delivery_drift:{label}",
            status,
            change,
            -th.drift_warn,
            f"mean pressure rise of the last {w} pulses {_g(last, 'Torr')} vs the first {w} "
            f"{_g(first, 'Torr')} ({change:+.1%})",
            subject=label,
        )


def _purge_completeness(groups: dict[str, list[PulseEvent]], out: _Out, th: Thresholds) -> None:
    for label, group in groups.items():
        usable = [
            p for p in group if p.residual is not None and p.rise is not None and p.dead is False
        ]
        if not usable:
            out.skip(
                f"purge_completeness:{label}",
                "no live pulse with a pressure record to the purge end",
            )
            continue
        k_sigma, fraction = th.purge_residual_k_sigma, th.purge_residual_fraction
        allowed = [
            max(
                k_sigma * max(p.noise_sigma or 0.0, p.baseline_sigma or 0.0),
                fraction * (p.rise or 0.0),
            )
            for p in usable
        ]
        residuals = [p.residual or 0.0 for p in usable]
        incomplete = [
            p
            for p, residual, limit in zip(usable, residuals, allowed, strict=True)
            if residual > limit
        ]
        median = statistics.median(residuals)
        details = (
            f"{len(incomplete)} of {len(usable)} purges after {label} end with the pressure "
            "still above "
            f"the baseline by more than max({th.purge_residual_k_sigma:g} sigma, "
            f"{th.purge_residual_fraction:.0%} of the rise); median residual "
            f"{_g(median, 'Torr')}"
        )
        if incomplete:
            details += f" (first at {_g(incomplete[0].start_s, 's')})"
        out.add(
            f"purge_completeness:{label}",
            _by_fraction(len(incomplete), len(usable), th.out_of_tolerance_warn_fraction),
            median,
            statistics.median(allowed),
            details,
            subject=label,
        )


def _window(log: AldLog, pulses: Sequence[PulseEvent], columns: Sequence[str]) -> pl.DataFrame:
    """``columns`` over the deposition window: first pulse start to last pulse end (the whole
    log without pulses). ``time_s`` is sorted, so the window is a zero-copy slice."""
    frame = log.series[["time_s", *columns]]  # no query planning for a plain projection
    if not pulses:
        return frame
    start = min(map(attrgetter("start_s"), pulses))
    end = max(
        map(operator.add, map(attrgetter("start_s"), pulses), map(attrgetter("width_s"), pulses))
    )
    times = frame["time_s"]
    lo = _search_sorted(times, start, "left")
    hi = _search_sorted(times, end, "right")
    return frame.slice(lo, max(hi - lo, 0))


def _search_sorted(times: pl.Series, value: float, side: Literal["left", "right"]) -> int:
    """``times.search_sorted(value, side)`` by bisecting the column chunk by chunk: views of
    the chunks (a long log is read in many), a few cache lines each, no copy of the column."""
    if times.null_count():
        return int(times.search_sorted(value, side=side))
    offset = 0
    for chunk in times.get_chunks():
        values = chunk.to_numpy()
        at = int(np.searchsorted(values, value, side=side))  # NaN sorts last, as in polars
        if at < values.size:
            return offset + at
        offset += values.size
    return offset


def _every(column: pl.Series, step: int) -> np.ndarray:
    """``column.gather_every(step)`` of a column without nulls, from views of its chunks: the
    sampled rows are copied, not the whole column."""
    parts, offset = [], 0
    for chunk in column.get_chunks():
        values = chunk.to_numpy()
        parts.append(values[(-offset) % step :: step])
        offset += values.size
    return np.concatenate(parts) if parts else np.empty(0)


def _temperatures(log: AldLog, pulses: Sequence[PulseEvent], out: _Out, th: Thresholds) -> None:
    channels = log.by_role("temperature")
    if not channels:
        out.skip("temperature_stability", "no temperature channel in the log")
        return
    setpoints = log.by_role("temperature_setpoint")
    frame = _window(log, pulses, [ch.name for ch in (*channels, *setpoints)])
    # Temperatures are slow signals: percentiles of at most STATS_ROWS evenly spaced rows are
    # exact to a fraction of the sensor's resolution and cost a fraction of a full sort.
    step = max(1, frame.height // STATS_ROWS)
    stats: dict[str, Any] = {}
    for ch in channels:
        column = frame[ch.name]
        values = (
            column.gather_every(step).drop_nulls().to_numpy()
            if column.null_count()
            else _every(column, step)
        )
        stats[f"{ch.name}\x00n"] = values.size
        if values.size >= 2:
            lo, med, hi = np.percentile(values, [1, 50, 99])
            stats[f"{ch.name}\x00lo"], stats[f"{ch.name}\x00median"] = lo, med
            stats[f"{ch.name}\x00hi"] = hi
    for ch in channels:
        if (stats[f"{ch.name}\x00n"] or 0) < 2:
            out.skip(f"temperature_stability:{ch.name}", "no readings in the deposition window")
            continue
        median = float(stats[f"{ch.name}\x00median"])
        lo, hi = float(stats[f"{ch.name}\x00lo"]), float(stats[f"{ch.name}\x00hi"])
        deviation = max(hi - median, median - lo)
        if deviation <= th.temperature_stability_warn_k:
            status = PASS
        elif deviation <= th.temperature_stability_fail_k:
            status = WARN
        else:
            status = FAIL
        out.add(
            f"temperature_stability:{ch.name}",
            status,
            deviation,
            th.temperature_stability_warn_k,
            f"{ch.name}: median {_g(median, 'degC')}, "
            f"1-99 % range {_g(lo)}-{_g(hi)} degC "
            f"over the deposition window (largest deviation {_g(deviation, 'K')})",
            subject=ch.name,
        )
    for sp in setpoints:
        target = _paired(sp, channels)
        if target is None:
            out.skip(
                f"temperature_setpoint:{sp.name}", "no measured channel of the same port/zone/name"
            )
            continue
        both = frame.select(pl.col(target.name), pl.col(sp.name)).drop_nulls()
        if both.is_empty():
            out.skip(f"temperature_setpoint:{sp.name}", "no simultaneous readings")
            continue
        diff = float(np.median(np.abs(both[target.name].to_numpy() - both[sp.name].to_numpy())))
        out.add(
            f"temperature_setpoint:{sp.name}",
            PASS if diff <= th.setpoint_tolerance_k else FAIL,
            diff,
            th.setpoint_tolerance_k,
            f"{target.name} differs from its setpoint {sp.name} by {_g(diff, 'K')} (median)",
            subject=target.name,
        )


def _paired(sp: Channel, channels: Sequence[Channel]) -> Channel | None:
    def stem(name: str) -> str:
        words = [
            w
            for w in name.lower().replace("_", " ").split()
            if w not in ("sp", "setpoint", "set", "target")
        ]
        return " ".join(words)

    for ch in channels:
        if sp.physical_channel and sp.physical_channel == ch.physical_channel:
            return ch
        if sp.port and sp.port == ch.port and sp.zone == ch.zone:
            return ch
    return next((ch for ch in channels if stem(ch.name) == stem(sp.name)), None)


def _setpoints(log: AldLog, out: _Out, th: Thresholds) -> None:
    setpoints = {
        k: v
        for k, v in (log.metadata.get("setpoints") or {}).items()
        if v.get("role") == "temperature_setpoint"
    }
    if not setpoints:
        return  # nothing declared: nothing to check (not a missing input)
    channels = [
        ch
        for ch in log.by_role("temperature")
        if log.series[ch.name].null_count() < log.series.height
    ]
    for name, sp in setpoints.items():
        value = float(sp["value"])
        check = f"temperature_setpoint:{name}"
        if not channels:
            out.skip(check, f"setpoint {value:g} degC declared but no temperature channel logged")
            continue
        medians = {
            k: float(v)
            for k, v in log.series.select(pl.col(ch.name).median() for ch in channels)
            .row(0, named=True)
            .items()
        }
        mapped = th.setpoint_channels.get(name)
        if mapped is not None:
            if mapped not in medians:
                out.skip(check, f"mapped channel {mapped!r} is not in the log")
                continue
            diff = abs(medians[mapped] - value)
            out.add(
                check,
                PASS if diff <= th.setpoint_tolerance_k else FAIL,
                medians[mapped],
                value,
                f"{mapped} reads {_g(medians[mapped], 'degC')} (median) for the "
                f"{sp.get('source', 'declared')} "
                f"setpoint {name} = {value:g} degC: difference {_g(diff, 'K')}",
                subject=mapped,
            )
            continue
        closest = min(medians, key=lambda c: abs(medians[c] - value))
        diff = abs(medians[closest] - value)
        listing = ", ".join(f"{c} {_g(m)}" for c, m in medians.items())
        if diff <= th.setpoint_tolerance_k:
            out.add(
                check,
                PASS,
                medians[closest],
                value,
                f"{closest} reads {_g(medians[closest], 'degC')}, "
                f"within {th.setpoint_tolerance_k:g} K "
                f"of the setpoint {name} = {value:g} degC",
                subject=closest,
            )
        else:
            out.add(
                check,
                WARN,
                medians[closest],
                value,
                f"setpoint {name} = {value:g} degC ({sp.get('source', 'declared')}) but no logged "
                f"temperature is within {th.setpoint_tolerance_k:g} K of it "
                f"(medians: {listing} degC); "
                "both are kept: map the setpoint to its channel (setpoint_channels) to make this a "
                "pass/fail check",
                subject=closest,
            )


def _line_source(
    log: AldLog,
    out: _Out,
    th: Thresholds,
    port_temperatures: Mapping[str, tuple[float | None, float | None]],
) -> None:
    pairs: dict[str, dict[str, Channel]] = {}
    for ch in log.by_role("temperature"):
        if ch.port and ch.zone in ("line", "source"):
            pairs.setdefault(ch.port, {})[ch.zone] = ch
    checked = False
    for port, zones in pairs.items():
        if "line" not in zones or "source" not in zones:
            continue
        both = log.series.select(zones["line"].name, zones["source"].name).drop_nulls()
        if both.is_empty():
            continue
        diff = (both[zones["line"].name] - both[zones["source"].name]).to_numpy()
        low = float(np.percentile(diff, 1))
        median = float(np.median(diff))
        status = FAIL if low < 0 else WARN if low < th.line_over_source_min_k else PASS
        out.add(
            f"line_source_temperature:{port}",
            status,
            low,
            th.line_over_source_min_k,
            f"port {port}: line minus source temperature median {_g(median, 'K')}, 1st percentile "
            f"{_g(low, 'K')} (line colder than source condenses the precursor)",
            subject=port,
        )
        checked = True
    for port, (source_c, line_c) in port_temperatures.items():
        if source_c is None or line_c is None:
            continue
        margin = float(line_c - source_c)
        status = FAIL if margin < 0 else WARN if margin < th.line_over_source_min_k else PASS
        out.add(
            f"line_source_setpoint:{port}",
            status,
            margin,
            th.line_over_source_min_k,
            f"port {port}: line setpoint {line_c:g} degC, source setpoint {source_c:g} degC",
            subject=port,
        )
        checked = True
    if not checked:
        out.skip("line_source_temperature", "no source and line temperature of the same port")


def _doses(
    groups: dict[str, list[PulseEvent]],
    doses: list[PlannedDose] | None,
    out: _Out,
    th: Thresholds,
    ctx: DoseContext | None,
) -> None:
    if ctx is None or not ctx.dose_umol_per_pulse:
        out.skip("total_dose", "no port dose calibration (µmol per pulse) given")
        return
    expected = expected_counts(doses) if doses is not None else {}
    areas = [a.area_m2 for a in ctx.loads]
    area = (
        sum(a for a in areas if a is not None)
        if ctx.loads and all(a is not None for a in areas)
        else None
    )
    need = (
        None
        if area is None
        else required_umol(area_m2=area, site_density_per_m2=th.site_density_per_m2)
    )
    for label in sorted(set(groups) | set(expected)):
        per_pulse = ctx.dose_umol_per_pulse.get(label)
        if per_pulse is None:
            out.skip(f"total_dose:{label}", f"no dose calibration for {label}")
            continue
        n = len(groups.get(label, []))
        total = n * per_pulse
        planned = expected.get(label)
        planned_total = None if planned is None else planned * per_pulse
        status = PASS if planned_total is None or total >= planned_total - per_pulse / 2 else WARN
        out.add(
            f"total_dose:{label}",
            status,
            total,
            planned_total,
            f"{n} pulses x {per_pulse:g} µmol = {_g(total, 'µmol')} delivered"
            + (f" vs {_g(planned_total, 'µmol')} planned" if planned_total is not None else ""),
            subject=label,
        )
        if not ctx.loads:
            continue
        if need is None:
            out.skip(f"dose_vs_surface:{label}", "mass or BET of a powder load unknown")
            continue
        per_cycle = _doses_per_subcycle(groups.get(label, []))
        if per_cycle is None:
            out.skip(f"dose_vs_surface:{label}", "pulses not aligned to sub-cycles")
            continue
        delivered = per_cycle * per_pulse
        ratio = delivered / need if need > 0 else math.inf
        status = FAIL if ratio < 1 else WARN if ratio < th.dose_safety_factor else PASS
        out.add(
            f"dose_vs_surface:{label}",
            status,
            ratio,
            th.dose_safety_factor,
            f"{_g(delivered, 'µmol')} of {label} per sub-cycle ({_g(per_cycle)} pulses) for "
            f"{_g(area, 'm2')} of powder needing {_g(need, 'µmol')} per dose (site density "
            f"{th.site_density_per_m2:g}/m2): {ratio:.3g} x",
            subject=label,
        )


def _doses_per_subcycle(group: Sequence[PulseEvent]) -> float | None:
    counts: dict[tuple[Any, ...], int] = {}
    for p in group:
        if p.subcycle is None and p.phase != "cycle":
            continue
        key = (p.supercycle, p.block, p.subcycle, p.repetition)
        counts[key] = counts.get(key, 0) + 1
    return float(statistics.median(counts.values())) if counts else None


def _completeness(
    log: AldLog,
    doses: list[PlannedDose] | None,
    alignment: Alignment | None,
    pulses: Sequence[PulseEvent],
    out: _Out,
    th: Thresholds,
) -> None:
    info = log.metadata.get("run_info") or {}
    if not info and doses is None:
        out.skip("run_completeness", "no run summary, no run-end marker and no plan")
        return
    problems: list[str] = []
    doubts: list[str] = []
    notes: list[str] = []
    steps = f"{info.get('steps_completed')}/{info.get('steps_total')}"
    if info.get("complete") is False:
        problems.append(f"the tool reports {steps} steps completed")
    elif info.get("complete") is True:
        notes.append(f"the tool reports {steps} steps completed")
    reached: float | None = None
    loops = info.get("loops_requested")
    done_loops = info.get("loops_completed")
    if loops and done_loops is not None and doses is None:
        # the tool's own count: loops asked for vs loops its valve commands show
        reached = done_loops / loops
        counted = (
            f"{done_loops} of {loops} requested loops ran ({info.get('loops_completed_from')})"
        )
        if reached < th.completeness_min - 1e-12:
            problems.append(f"the log stops early: {counted}")
        else:
            notes.append(counted)
    elif loops is not None:
        notes.append(f"{loops} loops requested")
    if doses is not None and alignment is not None:
        matched = [p.planned_index for p in pulses if p.planned_index is not None]
        last = max(matched) + 1 if matched else 0
        reached = last / len(doses) if doses else 1.0
        notes.append(f"last matched planned dose {last} of {len(doses)}")
        if reached < th.completeness_min - 1e-12:
            problems.append(f"the log stops after planned dose {last} of {len(doses)}")
    if info.get("finished"):
        notes.append("run-end marker present")
    elif info.get("started"):
        # Older controller versions never wrote the marker: only the plan can prove the end.
        (notes if reached is not None else doubts).append(
            "no run-end marker after the run start"
            + ("" if reached is not None else ": completion cannot be confirmed without a plan")
        )
    status = FAIL if problems else WARN if doubts else PASS
    done = bool(info.get("complete") or info.get("finished"))
    out.add(
        "run_completeness",
        status,
        reached if reached is not None else (1.0 if done else None),
        th.completeness_min,
        "; ".join(problems + doubts + notes) or "no completion information",
    )


def _alarms(log: AldLog, out: _Out) -> None:
    sources = log.metadata.get("alarm_sources") or []
    if not sources:
        out.skip("alarms", "no event log or run summary in which alarms would appear")
        return
    alarms = log.metadata.get("alarms") or []
    errors = [a for a in alarms if a.get("level") == "error"]
    warns = [a for a in alarms if a.get("level") != "error"]
    status = FAIL if errors else WARN if warns else PASS
    shown = "; ".join(str(a.get("text", ""))[:120] for a in (errors or warns)[:3])
    out.add(
        "alarms",
        status,
        len(alarms),
        0,
        f"{len(errors)} errors, {len(warns)} warnings in {', '.join(sources)}"
        + (f": {shown}" if shown else ""),
    )


def _qcm(
    pulses: Sequence[PulseEvent],
    doses: list[PlannedDose] | None,
    out: _Out,
    th: Thresholds,
    reference: GpcReference | None,
) -> None:
    with_qcm = [p for p in pulses if p.qcm_delta is not None]
    if not with_qcm:
        out.skip("qcm", "no QCM mass channel")
        return
    _saturation(with_qcm, out, th)
    if doses is None:
        out.skip("qcm_mass_gain", "no recipe plan: cycles unknown")
        return
    per_subcycle: dict[str, set[str]] = {}
    for subcycle, label in set(map(attrgetter("subcycle", "source_label"), doses)):
        if subcycle is not None:
            per_subcycle.setdefault(subcycle, set()).add(label)
    # doses per sub-cycle instance (instances without a sub-cycle are never looked up)
    planned_n = Counter(map(_INSTANCE, doses))
    # sub-cycle instance -> the mass gains of its pulses, in time order; the pulses of an
    # instance follow each other, and tuples of floats are let go by the garbage collector
    instances: dict[tuple[Any, ...], tuple[float, ...]] = {}
    aligned = [p for p in with_qcm if p.subcycle is not None]
    for key, group in itertools.groupby(aligned, key=_INSTANCE):
        deltas = tuple([p.qcm_delta or 0.0 for p in group])
        instances[key] = instances[key] + deltas if key in instances else deltas
    if not instances:
        out.skip("qcm_mass_gain", "no pulse aligned to a sub-cycle")
        return
    gains: dict[str, list[float]] = {}
    for key, deltas in instances.items():
        name = str(key[2])
        if len(deltas) != planned_n.get(key):
            continue  # an instance with a missing or extra pulse does not measure one cycle
        gains.setdefault(name, []).append(sum(deltas))
    for name, values in gains.items():
        gain = float(statistics.median(values))
        reactants = sorted(per_subcycle.get(name, set()))
        out.add(
            f"qcm_mass_gain:{name}",
            PASS if gain > 0 else WARN,
            gain,
            0.0,
            f"median QCM mass gain per {name} cycle {_g(gain, 'ng/cm2')} "
            f"over {len(values)} complete "
            f"cycles ({' + '.join(reactants)})" + ("" if gain > 0 else ": no net growth measured"),
            subject=name,
        )
        if reference is None:
            out.skip(f"qcm_gpc:{name}", "no reference GPC given")
            continue
        if reference.subcycle is not None and reference.subcycle != name:
            continue
        if reference.subcycle is None and len(reactants) < 2:
            continue  # a single-reactant block (saturation test) is not an ALD cycle
        if not reference.film_density_g_cm3:
            out.skip(f"qcm_gpc:{name}", "no film density to turn QCM mass into thickness")
            continue
        gpc = 0.1 * gain / reference.film_density_g_cm3  # ng/cm2 / (g/cm3) = 1e-9 cm = 0.1 Å
        lo, hi = reference.gpc_min_angstrom, reference.high
        off = (lo - gpc) / lo if gpc < lo else (gpc - hi) / hi if gpc > hi else 0.0
        status = (
            PASS if off <= th.gpc_warn_fraction else WARN if off <= th.gpc_fail_fraction else FAIL
        )
        out.add(
            f"qcm_gpc:{name}",
            status,
            gpc,
            lo,
            f"QCM GPC {gpc:.3g} Å/cycle ({_g(gain, 'ng/cm2')} "
            f"at {reference.film_density_g_cm3:g} g/cm3) "
            f"vs reference {lo:g}-{hi:g} Å ({reference.source or 'reference'}): "
            + ("within range" if off == 0 else f"{off:.0%} outside"),
            subject=name,
        )


_INSTANCE = attrgetter("supercycle", "block", "subcycle", "repetition")


def _saturation(pulses: Sequence[PulseEvent], out: _Out, th: Thresholds) -> None:
    """Self-limiting growth: a dose right after a dose of the same source should add ~nothing."""
    ordered = sorted(pulses, key=attrgetter("start_s"))
    keys = [_key(p) for p in ordered]
    repeated: defaultdict[str, list[float]] = defaultdict(list)
    alternating: defaultdict[str, list[float]] = defaultdict(list)
    for previous, key, cur in zip(keys, keys[1:], ordered[1:], strict=False):
        bucket = repeated if previous == key else alternating
        bucket[key].append(cur.qcm_delta or 0.0)
    for label in sorted(set(repeated) | set(alternating)):
        rep, alt = repeated.get(label, []), alternating.get(label, [])
        name = f"qcm_saturation:{label}"
        if len(rep) < th.min_repeated_doses:
            if rep:
                out.skip(name, f"{len(rep)} repeated doses of {label} (< {th.min_repeated_doses})")
            continue
        if len(alt) < 2 or statistics.median(alt) <= 0:
            out.skip(name, f"no positive mass gain of {label} after a co-reactant to compare with")
            continue
        ratio = statistics.median(rep) / statistics.median(alt)
        status = (
            PASS
            if ratio <= th.saturation_warn_ratio
            else WARN
            if ratio <= th.saturation_fail_ratio
            else FAIL
        )
        out.add(
            name,
            status,
            ratio,
            th.saturation_warn_ratio,
            f"{label} doses right after a {label} dose gain {_g(statistics.median(rep), 'ng/cm2')} "
            f"(median of {len(rep)}) vs {_g(statistics.median(alt), 'ng/cm2')} after a co-reactant "
            f"(median of {len(alt)}): ratio {ratio:.2f}"
            + (" - self-limiting (saturated)" if status == PASS else " - not self-limiting"),
            subject=label,
        )
