"""Li-symmetric (and Li-In) cells: overpotential per current step, critical current density.

Method (returned with every result):

- Segments: consecutive rows with one sign of current above ``rest_fraction`` of the largest
  |current| (rests split segments). Steps: consecutive segments whose |I| stays within
  ``tolerance`` (relative) of the step's first segment, whatever their sign.
- Overpotential of a step: the median of |V| over the last half (by time) of each of its
  segments, pooled; rows after a short are left out. Areal current density = |I| / area;
  ASR = overpotential / current density (ohm cm2).
- Short (voltage collapse): while current flows, |V| stays below ``collapse_fraction`` x the
  reference overpotential (that of the previous step, or of the first segment for the first
  step) for at least ``hold_s`` seconds. Its time is the first row of that run.
- Noise (soft short): a segment whose standard deviation of row-to-row |V| changes over its
  last half exceeds ``noise_fraction`` x its overpotential; its time is the segment's start.
- The critical current density is the current density of the step in which the first of those
  happens; time to short counts from the first row with current; the areal capacity to short
  is the trapezoidal integral of |I| dt up to it (both directions), over the area.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import polars as pl

METHOD_VERSION = "1"


@dataclass(frozen=True)
class SymmetricParams:
    rest_fraction: float = 0.01
    tolerance: float = 0.1
    collapse_fraction: float = 0.2
    hold_s: float = 60.0
    noise_fraction: float = 0.25

    def method(self) -> dict[str, Any]:
        return {
            "version": METHOD_VERSION,
            "segments": f"rows with one sign of current above {self.rest_fraction:g} x the "
            "largest |current|; rests split segments",
            "steps": f"consecutive segments with |I| within {self.tolerance:.0%} of the step's "
            "first segment",
            "overpotential": "median |V| over the last half (by time) of each segment of the "
            "step, pooled; rows after a short excluded",
            "short": f"|V| below {self.collapse_fraction:g} x the previous step's overpotential "
            f"(the first segment's for the first step) for >= {self.hold_s:g} s while current "
            "flows",
            "noise": f"std of row-to-row |V| changes over a segment's last half > "
            f"{self.noise_fraction:g} x its overpotential",
            "ccd": "current density of the step in which the first short or noise occurs",
            "capacity_to_short": "trapezoidal integral of |I| dt from the first row with "
            "current to the short, both directions, over the area",
            "params": asdict(self),
        }


@dataclass
class Step:
    index: int
    current_ma: float
    current_density_ma_cm2: float | None
    segments: int
    start_s: float
    end_s: float
    overpotential_v: float | None
    asr_ohm_cm2: float | None
    shorted: bool = False
    noisy: bool = False


@dataclass
class Failure:
    kind: str  # "short" | "noise"
    time_s: float
    time_to_short_s: float
    capacity_mah: float
    areal_capacity_mah_cm2: float | None
    step: int
    ccd_ma_cm2: float | None
    ccd_ma: float


@dataclass
class SymmetricResult:
    area_cm2: float | None
    steps: list[Step]
    failure: Failure | None
    method: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Segment:
    lo: int  # row slice [lo, hi)
    hi: int
    current_ma: float


def _segments(t: np.ndarray, i: np.ndarray, limit: float) -> list[_Segment]:
    sign = np.where(i > limit, 1, np.where(i < -limit, -1, 0))
    out: list[_Segment] = []
    start = None
    for k in range(sign.size + 1):
        s = sign[k] if k < sign.size else 0
        if start is not None and (s != sign[start]):
            out.append(_Segment(start, k, float(np.median(np.abs(i[start:k]))) * 1000))
            start = None
        if start is None and s != 0:
            start = k
    return out


def _last_half(t: np.ndarray, lo: int, hi: int) -> slice:
    mid = (t[lo] + t[hi - 1]) / 2
    first = lo + int(np.searchsorted(t[lo:hi], mid, side="left"))
    return slice(first, hi)


def _first_collapse(
    t: np.ndarray, v: np.ndarray, seg: _Segment, threshold: float, hold_s: float
) -> int | None:
    low = np.abs(v[seg.lo : seg.hi]) < threshold
    run_start = None
    for k, is_low in enumerate(low):
        if is_low and run_start is None:
            run_start = k
        if not is_low:
            run_start = None
        elif run_start is not None and t[seg.lo + k] - t[seg.lo + run_start] >= hold_s:
            return seg.lo + run_start
    return None


def analyse(
    series: pl.DataFrame, *, area_cm2: float | None, params: SymmetricParams | None = None
) -> SymmetricResult:
    """Steps, overpotentials and the first failure of a galvanostatic step series."""
    p = params or SymmetricParams()
    frame = series.select("time_s", "current_a", "voltage_v").drop_nulls()
    t = frame["time_s"].to_numpy().astype(float)
    i = frame["current_a"].to_numpy().astype(float)
    v = frame["voltage_v"].to_numpy().astype(float)
    if not i.size or np.abs(i).max() == 0:
        return SymmetricResult(area_cm2, [], None, p.method())
    segs = _segments(t, i, p.rest_fraction * np.abs(i).max())
    groups: list[list[_Segment]] = []
    for seg in segs:
        if groups and abs(seg.current_ma - groups[-1][0].current_ma) <= (
            p.tolerance * groups[-1][0].current_ma
        ):
            groups[-1].append(seg)
        else:
            groups.append([seg])
    steps: list[Step] = []
    failure_row: int | None = None
    failure_kind = ""
    failure_step = 0
    ref: float | None = None
    for n, group in enumerate(groups, start=1):
        plateau_values: list[np.ndarray] = []
        noisy = shorted = False
        for seg in group:
            if ref is None:
                ref = float(np.median(np.abs(v[_last_half(t, seg.lo, seg.hi)])))
            hit = _first_collapse(t, v, seg, p.collapse_fraction * ref, p.hold_s)
            usable = _Segment(seg.lo, hit if hit is not None else seg.hi, seg.current_ma)
            if usable.hi - usable.lo >= 2:
                tail = np.abs(v[_last_half(t, usable.lo, usable.hi)])
                plateau_values.append(tail)
                level = float(np.median(tail))
                if (
                    hit is None
                    and tail.size > 2
                    and level > 0
                    and float(np.std(np.diff(tail))) > p.noise_fraction * level
                ):
                    noisy = True
                    if failure_row is None:
                        failure_row, failure_kind, failure_step = seg.lo, "noise", n
            if hit is not None:
                shorted = True
                if failure_row is None:
                    failure_row, failure_kind, failure_step = hit, "short", n
                break
        current = float(np.median([s.current_ma for s in group]))
        density = current / area_cm2 if area_cm2 else None
        over = float(np.median(np.concatenate(plateau_values))) if plateau_values else None
        steps.append(
            Step(
                index=n,
                current_ma=current,
                current_density_ma_cm2=density,
                segments=len(group),
                start_s=float(t[group[0].lo]),
                end_s=float(t[group[-1].hi - 1]),
                overpotential_v=over,
                asr_ohm_cm2=over / (density / 1000) if over is not None and density else None,
                shorted=shorted,
                noisy=noisy,
            )
        )
        if failure_row is not None:
            break
        if over is not None:
            ref = over
    failure = None
    if failure_row is not None:
        first = segs[0].lo
        tt, ii = t[first : failure_row + 1], np.abs(i[first : failure_row + 1])
        charge_mah = float(np.sum(np.diff(tt) * (ii[1:] + ii[:-1]) / 2)) / 3.6
        step = steps[failure_step - 1]
        failure = Failure(
            kind=failure_kind,
            time_s=float(t[failure_row]),
            time_to_short_s=float(t[failure_row] - t[first]),
            capacity_mah=charge_mah,
            areal_capacity_mah_cm2=charge_mah / area_cm2 if area_cm2 else None,
            step=failure_step,
            ccd_ma_cm2=step.current_density_ma_cm2,
            ccd_ma=step.current_ma,
        )
    return SymmetricResult(area_cm2, steps, failure, p.method())
