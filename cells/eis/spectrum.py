"""Impedance spectra in one shape, and the numbers that need no model (pure: no Django).

Stored sign convention: Z = Z' + jZ'' with Z'' negative for capacitive behaviour (the
convention of Gamry, ZPlot and impedance.py). Files that write -Z'' (EC-Lab's ``-Im(Z)``) are
negated on reading, and ``conventions["z_imag_as_written"]`` says what the file wrote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from lims.ingestion.parsing import ParseError

SPECTRUM_SCHEMA: dict[str, pl.DataType] = {
    "f_hz": pl.Float64(),
    "z_real_ohm": pl.Float64(),
    "z_imag_ohm": pl.Float64(),
    "z_mod_ohm": pl.Float64(),
    "phase_deg": pl.Float64(),
    "time_s": pl.Float64(),
    "sweep": pl.Int64(),
}
SIGN_CONVENTION = "Z = Z' + jZ''; Z'' negative for capacitive behaviour (stored)"
PHASE_RULE = "phase = atan2(Z'', Z') in degrees (negative for capacitive), |Z| = hypot(Z', Z'')"
# A sweep runs one way in frequency; a jump back by more than this factor starts the next one.
SWEEP_RESTART_FACTOR = 3.0


@dataclass
class EisData:
    """One impedance file in canonical form: its points, what the file said, what was done."""

    points: pl.DataFrame  # SPECTRUM_SCHEMA, in file order
    vendor: str
    technique: str = ""  # "PEIS" | "GEIS" | "" (not said by the file)
    temperature_c: float | None = None
    conventions: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Column:
    """Values of one quantity with the file line each came from (for error messages)."""

    label: str
    values: list[float | None]


def build_points(
    *,
    f_hz: Column,
    z_real: Column,
    z_imag: Column,
    lines: list[int],
    negate_imag: bool,
    time_s: Column | None = None,
    sweep: list[int] | None = None,
    warnings: list[str],
) -> pl.DataFrame:
    """Checked canonical points. Missing values drop their row (said in ``warnings``);
    a negative frequency or an infinite value is a bad file (ParseError with its line)."""
    keep: list[int] = []
    dropped: list[int] = []
    for i, line in enumerate(lines):
        fv, re_, im = f_hz.values[i], z_real.values[i], z_imag.values[i]
        for column, value in ((f_hz, fv), (z_real, re_), (z_imag, im)):
            if value is not None and math.isinf(value):
                raise ParseError(
                    f"infinite value in column {column.label!r}", location=f"line {line}"
                )
        if fv is not None and fv < 0:
            raise ParseError(
                f"negative frequency {fv:g} in column {f_hz.label!r}", location=f"line {line}"
            )
        if fv is None or fv == 0 or re_ is None or im is None or math.isnan(fv):
            dropped.append(line)
            continue
        if math.isnan(re_) or math.isnan(im):
            dropped.append(line)
            continue
        keep.append(i)
    if dropped:
        shown = ", ".join(str(n) for n in dropped[:10]) + (" ..." if len(dropped) > 10 else "")
        warnings.append(
            f"{len(dropped)} row(s) without a frequency or impedance value were left out "
            f"(lines {shown})"
        )
    if not keep:
        where = f"lines {lines[0]}-{lines[-1]}" if lines else "data table"
        raise ParseError("no impedance points (frequency, Z', Z'') in the table", location=where)
    f = np.array([f_hz.values[i] for i in keep], dtype=float)
    zr = np.array([z_real.values[i] for i in keep], dtype=float)
    zi = np.array([z_imag.values[i] for i in keep], dtype=float)
    if negate_imag:
        zi = -zi
    t = (
        np.array([np.nan if time_s.values[i] is None else time_s.values[i] for i in keep])
        if time_s is not None
        else np.full(len(keep), np.nan)
    )
    sweeps = np.array([sweep[i] for i in keep]) if sweep is not None else derived_sweeps(f)
    sweeps = sweeps - sweeps.min()
    frame = pl.DataFrame(
        {
            "f_hz": f,
            "z_real_ohm": zr,
            "z_imag_ohm": zi,
            "z_mod_ohm": np.hypot(zr, zi),
            "phase_deg": np.degrees(np.arctan2(zi, zr)),
            "time_s": t,
            "sweep": sweeps.astype(np.int64),
        },
        schema=SPECTRUM_SCHEMA,
    )
    return frame.with_columns(pl.col("time_s").fill_nan(None))


def derived_sweeps(f: np.ndarray) -> np.ndarray:
    """Sweep index from the frequencies alone: the sweep direction is that of the first
    change; a step against it by more than SWEEP_RESTART_FACTOR starts a new sweep."""
    out = np.zeros(len(f), dtype=np.int64)
    if len(f) < 3:
        return out
    ratio = f[1:] / f[:-1]
    moving = ratio[ratio != 1]
    if not len(moving):
        return out
    down = moving[0] < 1
    restarts = ratio > SWEEP_RESTART_FACTOR if down else ratio < 1 / SWEEP_RESTART_FACTOR
    out[1:] = np.cumsum(restarts)
    return out


def common_conventions(*, wrote: str, negated: bool) -> dict[str, str]:
    return {
        "sign": SIGN_CONVENTION,
        "z_imag_as_written": wrote + ("; negated on reading" if negated else "; stored as written"),
        "phase": PHASE_RULE,
        "sweep": "sweep index from 0; see 'sweep_source'",
    }


HF_INTERCEPT_METHOD = (
    "model-free: going down in frequency from the highest-frequency point of the first "
    "sweep, the first pair of neighbouring points where -Z'' turns from <= 0 to > 0; Z' "
    "linearly interpolated in -Z'' to -Z'' = 0"
)


def hf_intercept(points: pl.DataFrame) -> tuple[float | None, dict[str, Any]]:
    """The real axis crossing at the high-frequency end, with the points it came from.

    None when -Z'' never turns positive from a non-positive value on the way down (a
    spectrum that starts capacitive above its highest frequency has no crossing to read:
    only a fit can extrapolate one).
    """
    first = points.filter(pl.col("sweep") == points["sweep"].min()).sort("f_hz", descending=True)
    f = first["f_hz"].to_numpy()
    zr = first["z_real_ohm"].to_numpy()
    y = -first["z_imag_ohm"].to_numpy()
    provenance: dict[str, Any] = {"method": HF_INTERCEPT_METHOD, "sweep": 0}
    for i in range(len(f) - 1):
        if y[i] <= 0 < y[i + 1]:
            if y[i] == 0:
                value = float(zr[i])
            else:
                value = float(zr[i] + (zr[i + 1] - zr[i]) * (0 - y[i]) / (y[i + 1] - y[i]))
            provenance["between"] = [
                {"f_hz": float(f[j]), "z_real_ohm": float(zr[j]), "minus_z_imag_ohm": float(y[j])}
                for j in (i, i + 1)
            ]
            return value, provenance
    if len(y) and (y > 0).all():
        why = (
            f"-Z'' is positive at every point down from {f[0]:g} Hz (the spectrum is "
            "capacitive already at its highest frequency): it never crosses the real axis"
        )
    else:
        why = "-Z'' never turns from <= 0 to > 0: the spectrum never crosses the real axis"
    provenance["none_reason"] = why
    return None, provenance
