"""Differential capacity (dQ/dV) and differential voltage (dV/dQ) of chosen half cycles.

Method (also returned with every result, so a plot can say how it was made):

1. A half cycle is the rows of one cycle whose current has one sign (positive = charge) and is
   larger than ``rest_fraction`` of the cycle's largest |current|; rests are left out.
2. Its capacity Q is the direction's capacity counter, read as reset-aware increments (a counter
   that drops has restarted from zero), so Q is what the cycle table says flowed; a file
   without that counter gets Q from the trapezoidal integral of |I| dt.
3. A constant-voltage hold at the end (the trailing rows within ``cv_tolerance_v`` of the last
   voltage, during which |I| falls below ``cv_current_drop`` of its value where the run began)
   is split off: its capacity flowed at one voltage, so in dQ/dV it would be a spike of
   unbounded height. It is reported beside the curve (``cv_capacity_mah``, ``cv_voltage_v``);
   the curve covers the rest (area + CV hold = the half cycle's capacity).
4. Noise that makes V go backwards is removed by the least-squares monotone fit of V in row
   order (pool-adjacent-violators, ``scipy.optimize.isotonic_regression``): increasing on
   charge, decreasing on discharge. Rows are not dropped, so Q is kept whole.
5. Q(V) through the last Q seen at each voltage, linear between them, is read on a uniform
   voltage grid (``step_v``) padded beyond the half cycle where Q is constant; dQ/dV per bin is
   the difference of Q across the bin over the step: never of the wrong sign (Q(V) is
   monotone), and its integral over V is exactly the capacity of step 3.
6. Smoothing: a Gaussian of standard deviation ``sigma_v`` (``scipy.ndimage.gaussian_filter1d``,
   truncated at ``truncate`` sigma, zero outside the padded grid). Its weights are positive and
   sum to one, so the smoothed curve keeps the sign and the area, and has no ringing: a
   Savitzky-Golay filter (method version 1) has negative weights, which put lobes of the wrong
   sign beside every sharp plateau and beside a CV hold. A Gaussian cannot make a feature
   narrower than itself: |d2(dQ/dV)/dV2| <= max|dQ/dV| / sigma_v**2 (the bound a single
   spike reaches), the "not spiky" criterion the tests check on real files.
7. dV/dQ: V (after step 4) on a uniform capacity grid of ``dvdq_points`` points, differentiated
   by a Gaussian derivative filter of ``dvdq_sigma_fraction`` of the capacity (V/mAh).
8. Peaks: maxima of dQ/dV (minima on discharge) with a prominence of at least
   ``peak_prominence`` of the largest; a peak's area is the integral between the minima that
   separate it from its neighbours.

Peers: navani (``echem.dqdv_single_cycle``: mean capacity per unique voltage, linear spline on
10^4 points, Savitzky-Golay on Q, smoothing-spline derivative, Savitzky-Golay on dQ/dV),
cellpy (``utils.ica``: V(Q) then Q(V) on uniform grids, difference, Gaussian post-smoothing of
10 mV, area renormalised to the capacity) and BEEP (interpolation on a voltage grid,
difference ratio, outlier removal). Here the area is exact without renormalising.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import polars as pl
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import isotonic_regression
from scipy.signal import find_peaks

METHOD_VERSION = "2"


@dataclass(frozen=True)
class DqdvParams:
    step_v: float = 0.002
    sigma_v: float = 0.008
    truncate: float = 4.0
    dvdq_points: int = 400
    dvdq_sigma_fraction: float = 0.01
    rest_fraction: float = 0.01
    cv_tolerance_v: float = 0.002
    cv_current_drop: float = 0.9
    peak_prominence: float = 0.05
    min_rows: int = 11

    def method(self) -> dict[str, Any]:
        """The recipe in words and numbers: the provenance of every dQ/dV result."""
        fwhm_mv = self.sigma_v * 1000 * 2 * np.sqrt(2 * np.log(2))
        return {
            "version": METHOD_VERSION,
            "summary": f"Gaussian smoothing, sigma {self.sigma_v * 1000:g} mV, "
            f"{self.step_v * 1000:g} mV grid; CV holds split off (method {METHOD_VERSION})",
            "half_cycle": "rows of one cycle with one sign of current above "
            f"{self.rest_fraction:g} x the cycle's largest |current| (positive = charge)",
            "capacity": "the direction's capacity counter as reset-aware increments "
            "(else the trapezoidal integral of |I| dt), mAh",
            "cv_hold": "trailing rows within "
            f"{self.cv_tolerance_v * 1000:g} mV of the last voltage while |I| falls below "
            f"{self.cv_current_drop:g} x its value where they began: split off and reported "
            "as cv_capacity_mah at cv_voltage_v (area + CV hold = half-cycle capacity)",
            "monotonic": "least-squares monotone fit of V in row order "
            "(scipy.optimize.isotonic_regression): increasing on charge, decreasing on discharge",
            "grid": f"uniform voltage grid, step {self.step_v * 1000:g} mV; Q(V) linear "
            "between the last Q at each voltage; dQ/dV = bin difference of Q / step "
            "(integral = capacity without the CV hold)",
            "smoothing": f"Gaussian, sigma {self.sigma_v * 1000:g} mV (FWHM {fwhm_mv:.1f} mV), "
            f"truncated at {self.truncate:g} sigma (scipy.ndimage.gaussian_filter1d), zero "
            "outside the half cycle: positive weights summing to one keep the sign and the "
            "area and add no ringing",
            "sign": "dQ/dV negative on discharge",
            "dvdq": f"V on a uniform capacity grid of {self.dvdq_points} points, Gaussian "
            f"derivative filter of sigma {self.dvdq_sigma_fraction:g} x the capacity, V/mAh",
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
    cv_capacity_mah: float = 0.0
    cv_voltage_v: float | None = None
    cv_rows: int = 0

    @property
    def integral_mah(self) -> float:
        """|integral of dQ/dV over V|: the capacity without the CV hold (the grid keeps it)."""
        if len(self.voltage_v) < 2:
            return 0.0
        step = self.voltage_v[1] - self.voltage_v[0]
        return abs(float(np.sum(self.dqdv_mah_per_v)) * step)


def _capacity_mah(part: pl.DataFrame, counter: str) -> np.ndarray:
    """Q along the half cycle, from 0: counter increments (reset-aware) or the |I| dt integral.

    Where a ``segment`` column changes (the next file of a stitched test) nothing is added: a
    file's first counter value is its baseline, and the interval between files is in neither
    (the rule of the cycle table, ``cells.parsers.summary``)."""
    same = np.ones(max(part.height - 1, 0), dtype=bool)
    if "segment" in part.columns:
        same = np.diff(part["segment"].to_numpy()) == 0
    q = part[counter].to_numpy() if counter in part.columns else None
    if q is not None and not np.all(np.isnan(q.astype(float))):
        q = np.nan_to_num(q.astype(float), nan=0.0)
        inc = np.diff(q)
        inc = np.where(inc < 0, q[1:], inc)  # a counter that dropped restarted from zero
        return np.concatenate([[0.0], np.cumsum(np.where(same, inc, 0.0))]) * 1000.0
    t = part["time_s"].to_numpy().astype(float)
    i = np.abs(part["current_a"].to_numpy().astype(float))
    steps = np.diff(t) * (i[1:] + i[:-1]) / 2.0
    return np.concatenate([[0.0], np.cumsum(np.where(same, steps, 0.0))]) / 3.6  # A s -> mAh


def half_cycle(
    frame: pl.DataFrame, *, direction: str, rest_fraction: float = 0.01
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(V, Q mAh, |I| A) of one cycle's charge or discharge rows, in row order."""
    current = pl.col("current_a")
    biggest = frame.select(current.abs().max()).item()
    empty = np.empty(0)
    if not biggest:
        return empty, empty, empty
    limit = rest_fraction * biggest
    wanted = current > limit if direction == "charge" else current < -limit
    part = frame.filter(wanted & pl.col("voltage_v").is_not_null())
    counter = "charge_capacity_ah" if direction == "charge" else "discharge_capacity_ah"
    if part.height == 0:
        return empty, empty, empty
    return (
        part["voltage_v"].to_numpy().astype(float),
        _capacity_mah(part, counter),
        np.abs(part["current_a"].to_numpy().astype(float)),
    )


def cv_hold_start(
    volts: np.ndarray, amps: np.ndarray, *, tolerance_v: float, current_drop: float
) -> int:
    """Index of the first row of a constant-voltage hold that ends the half cycle (``len`` when
    there is none): the trailing rows within ``tolerance_v`` of the last voltage, provided |I|
    at their end (median of the last three) is below ``current_drop`` x |I| at their start. A
    constant-current run that merely ends near its cut-off keeps its current, so it stays."""
    n = volts.size
    near = np.abs(volts - volts[-1]) <= tolerance_v
    far = np.flatnonzero(~near)
    start = int(far[-1]) + 1 if far.size else 0
    if n - start < 2:
        return n
    head = float(np.median(amps[start : start + 3]))
    tail = float(np.median(amps[max(start, n - 3) :]))
    return start if tail < current_drop * head else n


def _last_per_value(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique x with the largest y seen at each (y is non-decreasing in row order)."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    starts = np.flatnonzero(np.insert(np.diff(xs) > 0, 0, True))
    return xs[starts], np.maximum.reduceat(ys, starts)


def _peaks(
    volts: np.ndarray, y: np.ndarray, step: float, prominence: float, sign: int
) -> list[Peak]:
    mag = sign * y  # peaks of the half cycle's own sign
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
    amps: np.ndarray | None = None,
    params: DqdvParams | None = None,
) -> HalfCycleDqdv | None:
    """dQ/dV and dV/dQ of one half cycle (None when it has too few rows or no voltage span).

    ``amps`` (|I| per row) lets a constant-voltage hold at the end be split off (step 3)."""
    p = params or DqdvParams()
    if volts.size < p.min_rows or cap_mah[-1] - cap_mah[0] <= 0:
        return None
    rising = direction == "charge"
    q_all = cap_mah - cap_mah[0]
    total = float(q_all[-1])
    cut = volts.size
    if amps is not None:
        cut = cv_hold_start(
            volts, amps, tolerance_v=p.cv_tolerance_v, current_drop=p.cv_current_drop
        )
    # the CV hold starts at row ``cut``: the capacity from the row before it is the hold's
    keep = max(cut, 1)
    v_cc, q = volts[:keep], q_all[:keep]
    cv_capacity = total - float(q[-1])
    if v_cc.size < p.min_rows or q[-1] <= 0:
        return None
    v_mono = np.asarray(isotonic_regression(v_cc, increasing=rising).x)
    cc_total = float(q[-1])
    # the capacity of rows pooled at one voltage goes to the interval the voltage came from
    vx, qy = _last_per_value(v_mono, q)
    if vx.size < 2:
        return None
    pad = int(np.ceil(p.truncate * p.sigma_v / p.step_v)) + 2
    lo = np.floor(vx[0] / p.step_v) - pad
    hi = np.ceil(vx[-1] / p.step_v) + pad
    grid = np.arange(lo, hi + 1) * p.step_v
    if rising:
        q_grid = np.interp(grid, vx, qy, left=0.0, right=cc_total)
    else:  # below the last voltage Q is the whole capacity
        q_grid = np.interp(grid, vx, qy, left=cc_total, right=0.0)
    raw = np.diff(q_grid) / p.step_v
    smooth = gaussian_filter1d(
        raw, p.sigma_v / p.step_v, mode="constant", cval=0.0, truncate=p.truncate
    )
    centres = grid[:-1] + p.step_v / 2
    # dV/dQ on a uniform capacity grid
    qx, vy = _last_per_value(q, v_mono)
    qs = np.linspace(0.0, cc_total, p.dvdq_points)
    v_of_q = np.interp(qs, qx, vy)
    dq_step = cc_total / (p.dvdq_points - 1)
    sigma_points = max(p.dvdq_sigma_fraction * (p.dvdq_points - 1), 0.5)
    dvdq = gaussian_filter1d(v_of_q, sigma_points, order=1, mode="nearest") / dq_step
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
        cv_capacity_mah=cv_capacity,
        cv_voltage_v=float(np.median(volts[cut:])) if cut < volts.size else None,
        cv_rows=int(volts.size - cut),
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
            volts, cap, amps = half_cycle(frame, direction=direction, rest_fraction=p.rest_fraction)
            result = dqdv_half_cycle(
                volts, cap, cycle_index=index, direction=direction, amps=amps, params=p
            )
            if result is not None:
                out.append(result)
    return out
