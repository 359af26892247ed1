"""Differential capacity (dQ/dV) and differential voltage (dV/dQ) of chosen half cycles.

Method (also returned with every result, so a plot can say how it was made):

1. A half cycle is the rows of one cycle whose current has one sign (positive = charge) and is
   larger than ``rest_fraction`` of the cycle's largest |current|; rests are left out.
2. Its capacity Q is the direction's capacity counter, read as reset-aware increments (a counter
   that drops has restarted from zero), so Q is what the cycle table says flowed; a file
   without that counter gets Q from the trapezoidal integral of |I| dt.
3. Noise that makes V go backwards is removed by the least-squares monotone fit of V in row
   order (pool-adjacent-violators, ``scipy.optimize.isotonic_regression``): increasing on
   charge, decreasing on discharge. Rows are not dropped, so Q is kept whole.
4. Q(V) is interpolated linearly on a uniform voltage grid (``step_v``), padded beyond the half
   cycle where Q is constant; dQ/dV per bin is the difference of Q across the bin over the
   step, so its integral over V is exactly the half cycle's capacity.
5. The derivative is smoothed with a Savitzky-Golay filter (``scipy.signal.savgol_filter``,
   ``window`` bins, ``polyorder``); its coefficients sum to one and the padding is zero, so the
   smoothing keeps the integral. Discharge dQ/dV is negative (Q grows as V falls).
6. dV/dQ: V (after step 3) on a uniform capacity grid of ``dvdq_points`` points, differentiated
   by the same Savitzky-Golay filter (``deriv=1``).
7. Peaks: maxima of dQ/dV (minima on discharge) with a prominence of at least
   ``peak_prominence`` of the largest; a peak's area is the integral between the minima that
   separate it from its neighbours.

A constant-voltage hold adds its capacity at one voltage: it shows as a spike at the cut-off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import isotonic_regression
from scipy.signal import find_peaks, savgol_filter

METHOD_VERSION = "1"


@dataclass(frozen=True)
class DqdvParams:
    step_v: float = 0.005
    window: int = 11
    polyorder: int = 3
    dvdq_points: int = 400
    rest_fraction: float = 0.01
    peak_prominence: float = 0.05

    def method(self) -> dict[str, Any]:
        """The recipe in words and numbers: the provenance of every dQ/dV result."""
        span_mv = self.window * self.step_v * 1000
        return {
            "version": METHOD_VERSION,
            "half_cycle": "rows of one cycle with one sign of current above "
            f"{self.rest_fraction:g} x the cycle's largest |current| (positive = charge)",
            "capacity": "the direction's capacity counter as reset-aware increments "
            "(else the trapezoidal integral of |I| dt), mAh",
            "monotonic": "least-squares monotone fit of V in row order "
            "(scipy.optimize.isotonic_regression): increasing on charge, decreasing on discharge",
            "grid": f"uniform voltage grid, step {self.step_v * 1000:g} mV; Q(V) linear "
            "interpolation; dQ/dV = bin difference of Q / step (integral = capacity)",
            "smoothing": f"Savitzky-Golay (scipy.signal.savgol_filter), window {self.window} "
            f"bins ({span_mv:g} mV), polynomial order {self.polyorder}, zero outside the half "
            "cycle",
            "sign": "dQ/dV negative on discharge",
            "dvdq": f"V on a uniform capacity grid of {self.dvdq_points} points, Savitzky-Golay "
            f"derivative (window {self.window}, order {self.polyorder}), V/mAh",
            "peaks": "maxima of |dQ/dV| in the half cycle's sign with prominence >= "
            f"{self.peak_prominence:g} x the largest; area = integral between the separating "
            "minima",
            "params": asdict(self),
        }


@dataclass
class Peak:
    voltage_v: float
    dqdv_mah_per_v: float
    area_mah: float


@dataclass
class HalfCycleDqdv:
    cycle_index: int
    direction: str  # "charge" | "discharge"
    capacity_mah: float
    rows: int
    voltage_v: list[float]
    dqdv_mah_per_v: list[float]
    capacity_grid_mah: list[float]
    dvdq_v_per_mah: list[float]
    peaks: list[Peak] = field(default_factory=list)

    @property
    def integral_mah(self) -> float:
        """|integral of dQ/dV over V|: equals the capacity (the grid keeps it)."""
        if len(self.voltage_v) < 2:
            return 0.0
        step = self.voltage_v[1] - self.voltage_v[0]
        return abs(float(np.sum(self.dqdv_mah_per_v)) * step)


def _capacity_mah(part: pl.DataFrame, counter: str) -> np.ndarray:
    """Q along the half cycle, from 0: counter increments (reset-aware) or the |I| dt integral."""
    q = part[counter].to_numpy() if counter in part.columns else None
    if q is not None and not np.all(np.isnan(q.astype(float))):
        q = np.nan_to_num(q.astype(float), nan=0.0)
        inc = np.diff(q, prepend=q[0])
        inc = np.where(inc < 0, q, inc)  # a counter that dropped restarted from zero
        return np.cumsum(inc) * 1000.0
    t = part["time_s"].to_numpy().astype(float)
    i = np.abs(part["current_a"].to_numpy().astype(float))
    steps = np.diff(t) * (i[1:] + i[:-1]) / 2.0
    return np.concatenate([[0.0], np.cumsum(steps)]) / 3.6  # A s -> mAh


def half_cycle(
    frame: pl.DataFrame, *, direction: str, rest_fraction: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """(V, Q mAh) of one cycle's charge or discharge rows, in row order."""
    current = pl.col("current_a")
    biggest = frame.select(current.abs().max()).item()
    if not biggest:
        return np.empty(0), np.empty(0)
    limit = rest_fraction * biggest
    wanted = current > limit if direction == "charge" else current < -limit
    part = frame.filter(wanted & pl.col("voltage_v").is_not_null())
    counter = "charge_capacity_ah" if direction == "charge" else "discharge_capacity_ah"
    if part.height == 0:
        return np.empty(0), np.empty(0)
    return part["voltage_v"].to_numpy().astype(float), _capacity_mah(part, counter)


def _last_per_value(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique x with the largest y seen at each (y is non-decreasing in row order)."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    keep = np.append(np.diff(xs) > 0, True)
    # within a run of equal x, the largest y
    starts = np.flatnonzero(np.insert(np.diff(xs) > 0, 0, True))
    ymax = np.maximum.reduceat(ys, starts)
    return xs[keep], ymax


def _peaks(
    volts: np.ndarray, y: np.ndarray, step: float, prominence: float, sign: int
) -> list[Peak]:
    mag = sign * y  # peaks of the half cycle's own sign (not Savitzky-Golay side lobes)
    if not mag.size or mag.max() <= 0:
        return []
    idx, _ = find_peaks(mag, prominence=prominence * mag.max())
    if not idx.size:
        return []
    bounds = [0]
    for a, b in pairwise(idx):
        bounds.append(int(a + np.argmin(mag[a:b])))
    bounds.append(mag.size)
    return [
        Peak(
            voltage_v=float(volts[p]),
            dqdv_mah_per_v=float(y[p]),
            area_mah=float(np.sum(mag[lo:hi]) * step),
        )
        for p, lo, hi in zip(idx, bounds[:-1], bounds[1:], strict=True)
    ]


def dqdv_half_cycle(
    volts: np.ndarray,
    cap_mah: np.ndarray,
    *,
    cycle_index: int,
    direction: str,
    params: DqdvParams | None = None,
) -> HalfCycleDqdv | None:
    """dQ/dV and dV/dQ of one half cycle (None when it has too few rows or no voltage span)."""
    p = params or DqdvParams()
    if volts.size < p.window or cap_mah[-1] - cap_mah[0] <= 0:
        return None
    rising = direction == "charge"
    v_mono = np.asarray(isotonic_regression(volts, increasing=rising).x)
    q = cap_mah - cap_mah[0]
    total = float(q[-1])
    vx, qy = _last_per_value(v_mono, q)
    if vx.size < 2:
        return None
    pad = p.window // 2 + 2
    lo = np.floor(vx[0] / p.step_v) - pad
    hi = np.ceil(vx[-1] / p.step_v) + pad
    grid = np.arange(lo, hi + 1) * p.step_v
    if rising:
        q_grid = np.interp(grid, vx, qy, left=0.0, right=total)
    else:  # Q falls as V rises; below the last voltage it is the whole capacity
        q_grid = np.interp(grid, vx, qy, left=total, right=0.0)
    raw = np.diff(q_grid) / p.step_v
    smooth = savgol_filter(raw, p.window, p.polyorder, mode="constant", cval=0.0)
    centres = grid[:-1] + p.step_v / 2
    # dV/dQ on a uniform capacity grid
    qx, vy = _last_per_value(q, v_mono)
    qs = np.linspace(0.0, total, p.dvdq_points)
    v_of_q = np.interp(qs, qx, vy)
    dq_step = total / (p.dvdq_points - 1)
    dvdq = savgol_filter(v_of_q, p.window, p.polyorder, deriv=1, delta=dq_step, mode="interp")
    return HalfCycleDqdv(
        cycle_index=cycle_index,
        direction=direction,
        capacity_mah=total,
        rows=int(volts.size),
        voltage_v=[round(float(v), 6) for v in centres],
        dqdv_mah_per_v=[float(x) for x in smooth],
        capacity_grid_mah=[float(x) for x in qs],
        dvdq_v_per_mah=[float(x) for x in dvdq],
        peaks=_peaks(centres, smooth, p.step_v, p.peak_prominence, 1 if rising else -1),
    )


def dqdv_cycles(
    series: pl.DataFrame, *, cycle_indices: list[int], params: DqdvParams | None = None
) -> list[HalfCycleDqdv]:
    """Charge and discharge dQ/dV of the chosen cycles of a canonical series.

    ``series`` holds the canonical columns plus ``cycle_index`` (from 1).
    """
    p = params or DqdvParams()
    out: list[HalfCycleDqdv] = []
    for index in cycle_indices:
        frame = series.filter(pl.col("cycle_index") == index)
        for direction in ("charge", "discharge"):
            volts, cap = half_cycle(frame, direction=direction, rest_fraction=p.rest_fraction)
            result = dqdv_half_cycle(volts, cap, cycle_index=index, direction=direction, params=p)
            if result is not None:
                out.append(result)
    return out
