"""Synthetic cycler series with known answers for the analytics tests (no Django)."""

from __future__ import annotations

import numpy as np
import polars as pl


def logistic_capacity(
    volts: np.ndarray, plateaus: list[tuple[float, float]], width: float, slope: float, v0: float
) -> np.ndarray:
    """Q(V), mAh: logistic plateaus (centre V, capacity mAh) on a small linear background."""
    q = slope * (volts - v0)
    for centre, cap in plateaus:
        q = q + cap / (1 + np.exp(-(volts - centre) / width))
    return q


def half_cycle_rows(
    plateaus,
    *,
    direction: str,
    current_a: float,
    rows: int,
    noise_v: float,
    seed: int,
    v_lo: float = 3.4,
    v_hi: float = 4.3,
    width: float = 0.02,
    slope: float = 0.02,
) -> pl.DataFrame:
    """One galvanostatic half cycle sampled evenly in time, V with Gaussian noise."""
    dense = np.linspace(v_lo, v_hi, 20001)
    q_of_v = logistic_capacity(dense, plateaus, width, slope, v_lo)
    q_of_v -= q_of_v[0]
    total = q_of_v[-1]
    q = np.linspace(0, total, rows)
    volts = np.interp(q, q_of_v, dense)
    if direction == "discharge":
        volts = np.interp(total - q, q_of_v, dense)
    volts = volts + np.random.default_rng(seed).normal(0, noise_v, rows)
    sign = 1 if direction == "charge" else -1
    time = q / 1000 / current_a * 3600
    zero = np.zeros(rows)
    return pl.DataFrame(
        {
            "time_s": time,
            "current_a": sign * current_a * np.ones(rows),
            "voltage_v": volts,
            "charge_capacity_ah": q / 1000 if sign > 0 else zero,
            "discharge_capacity_ah": q / 1000 if sign < 0 else zero,
        }
    )


def rate_series(steps: list[tuple[float, int, float]], *, nominal_mah: float) -> pl.DataFrame:
    """Cycles charged at C/10 and discharged at each step's C-rate.

    ``steps``: (C-rate, cycles, discharge capacity mAh). Each half cycle is 50 rows at
    constant current (capacity = current x time), with a 10 s rest row between halves.
    """
    frames, t, cycle = [], 0.0, 0
    for c_rate, n, dis_mah in steps:
        for _ in range(n):
            cycle += 1
            for sign, rate, cap in ((1, 0.1, nominal_mah), (-1, c_rate, dis_mah)):
                current_ma = rate * nominal_mah
                duration = cap / current_ma * 3600
                time = t + np.linspace(0, duration, 50)
                q = (time - t) * current_ma / 3600 / 1000
                frames.append(
                    pl.DataFrame(
                        {
                            "time_s": np.append(time, time[-1] + 10),
                            "cycle_index": cycle,
                            "current_a": np.append(sign * current_ma / 1000 * np.ones(50), 0.0),
                            "voltage_v": np.append(np.linspace(3.5, 4.2, 50)[::sign], 3.8),
                            "charge_capacity_ah": np.append(q if sign > 0 else 0 * q, 0.0),
                            "discharge_capacity_ah": np.append(q if sign < 0 else 0 * q, 0.0),
                        }
                    )
                )
                t = time[-1] + 10
    return pl.concat(frames)


def symmetric_series(
    densities: list[float],
    *,
    area_cm2: float,
    asr_ohm_cm2: float,
    half_s: float,
    rest_s: float,
    short_step: int,
    short_after_s: float,
    dt: float = 10.0,
    noise_v: float = 5e-5,
    seed: int = 0,
) -> pl.DataFrame:
    """Galvanostatic plating/stripping: per current density one +I and one -I half cycle of
    ``half_s`` (rows at both ends of each, so the |I| dt integral is exact), a rest between
    steps. |V| = ASR x j with a decaying start transient; in step ``short_step`` (1-based) the
    voltage collapses to ~0 V ``short_after_s`` after that step's start and stays there."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[float, float, float]] = []
    t = 0.0
    for n, j in enumerate(densities, start=1):
        step_start = t
        for sign in (1, -1):
            times = t + np.arange(0, half_s + dt / 2, dt)
            eta = asr_ohm_cm2 * j / 1000
            for time in times:
                shorted = n == short_step and time - step_start >= short_after_s
                v = 2e-4 if shorted else eta * (1 + 0.5 * np.exp(-(time - t) / 60))
                rows.append((time, sign * j * area_cm2 / 1000, sign * v + rng.normal(0, noise_v)))
            t = times[-1]
        if rest_s:
            rows.append((t, 0.0, 0.0))
            t += rest_s
            rows.append((t, 0.0, 0.0))
    time, current, volts = (np.array(c) for c in zip(*rows, strict=True))
    return pl.DataFrame({"time_s": time, "current_a": current, "voltage_v": volts})
