"""Ionic conductivity from a fitted resistance, and the Arrhenius fit of a temperature series.

Pure numerical code (no Django). Units are in the argument names: thickness in cm or mm (one of
the two, never guessed), area in cm2, resistance in Ohm, conductivity in S/cm, temperatures in K
or degC (one of the two). Uncertainties are one standard error, propagated to first order with
independent inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BOLTZMANN_EV_K = 8.617333262e-5  # eV/K, CODATA 2018 (exact by the 2019 SI)
ZERO_C_IN_K = 273.15
T_25C_K = 298.15


class ConductivityError(ValueError):
    """Inputs from which no conductivity or Arrhenius fit can be computed, with the reason."""


@dataclass(frozen=True)
class Conductivity:
    sigma_s_cm: float
    stderr_s_cm: float | None
    resistance_ohm: float
    thickness_cm: float
    area_cm2: float
    formula: str = "sigma = L / (R * A); (u/sigma)^2 = (uR/R)^2 + (uL/L)^2 + (uA/A)^2"


def _positive(name: str, value: float | None) -> float:
    if value is None or not math.isfinite(value) or value <= 0:
        raise ConductivityError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _stderr(name: str, value: float | None) -> float:
    if value is None:
        return 0.0
    if not math.isfinite(value) or value < 0:
        raise ConductivityError(f"{name} must be a non-negative finite number, got {value!r}")
    return float(value)


def conductivity(
    resistance_ohm: float,
    *,
    area_cm2: float,
    thickness_cm: float | None = None,
    thickness_mm: float | None = None,
    resistance_stderr: float | None = None,
    thickness_stderr_cm: float | None = None,
    thickness_stderr_mm: float | None = None,
    area_stderr_cm2: float | None = None,
) -> Conductivity:
    """sigma = L / (R A) in S/cm, with its propagated standard error.

    The thickness is given in cm or in mm (exactly one). Without any input uncertainty the
    standard error is None (unknown), not zero; missing parts count as exact.
    """
    if (thickness_cm is None) == (thickness_mm is None):
        raise ConductivityError("give the thickness either in cm or in mm (exactly one)")
    if thickness_stderr_cm is not None and thickness_stderr_mm is not None:
        raise ConductivityError("give the thickness uncertainty either in cm or in mm")
    r = _positive("resistance_ohm", resistance_ohm)
    a = _positive("area_cm2", area_cm2)
    if thickness_cm is not None:
        length = _positive("thickness_cm", thickness_cm)
    else:
        length = _positive("thickness_mm", thickness_mm) / 10.0
    u_l = _stderr("thickness_stderr_cm", thickness_stderr_cm) + (
        _stderr("thickness_stderr_mm", thickness_stderr_mm) / 10.0
    )
    u_r = _stderr("resistance_stderr", resistance_stderr)
    u_a = _stderr("area_stderr_cm2", area_stderr_cm2)
    sigma = length / (r * a)
    known = any(
        x is not None
        for x in (resistance_stderr, thickness_stderr_cm, thickness_stderr_mm, area_stderr_cm2)
    )
    rel = math.sqrt((u_r / r) ** 2 + (u_l / length) ** 2 + (u_a / a) ** 2)
    return Conductivity(
        sigma_s_cm=sigma,
        stderr_s_cm=sigma * rel if known else None,
        resistance_ohm=r,
        thickness_cm=length,
        area_cm2=a,
    )


@dataclass(frozen=True)
class ArrheniusFit:
    """ln(sigma T) = ln(A) - Ea / (k_B T), fitted by weighted least squares in 1/T."""

    ea_ev: float
    ea_stderr_ev: float | None
    prefactor_s_k_cm: float
    prefactor_stderr_s_k_cm: float | None
    sigma_25c_s_cm: float
    sigma_25c_stderr_s_cm: float | None
    r_squared: float | None
    n_points: int
    weighted: bool
    temperatures_k: tuple[float, ...]
    sigmas_s_cm: tuple[float, ...]
    method: str


def arrhenius(
    sigmas_s_cm: Sequence[float],
    *,
    temperatures_k: Sequence[float] | None = None,
    temperatures_c: Sequence[float] | None = None,
    sigma_stderrs_s_cm: Sequence[float] | None = None,
) -> ArrheniusFit:
    """Activation energy from ln(sigma T) vs 1/T.

    Weights are 1 / var(ln(sigma T)) = (sigma / u_sigma)^2 when every sigma has a standard
    error, else all equal. Standard errors come from the scatter about the line (the covariance
    scaled by the reduced chi-square; with given errors never below the propagated ones), so
    they need 3 or more temperatures; with 2 the line is exact and the errors are None. sigma at
    25 degC is read off the line (an extrapolation when 25 degC lies outside the measured range)
    with its error from the full covariance.
    """
    if (temperatures_k is None) == (temperatures_c is None):
        raise ConductivityError("give the temperatures either in K or in degC (exactly one)")
    t = np.asarray(
        temperatures_k if temperatures_k is not None else np.asarray(temperatures_c) + ZERO_C_IN_K,
        dtype=float,
    )
    s = np.asarray(sigmas_s_cm, dtype=float)
    if t.shape != s.shape or t.ndim != 1:
        raise ConductivityError(f"{t.size} temperatures but {s.size} conductivities")
    if not (np.all(np.isfinite(t)) and np.all(t > 0)):
        raise ConductivityError("temperatures must be finite and above 0 K")
    if not (np.all(np.isfinite(s)) and np.all(s > 0)):
        raise ConductivityError("conductivities must be positive and finite")
    n = int(np.unique(t).size)
    if n < 2:
        raise ConductivityError(f"an Arrhenius fit needs at least 2 temperatures, got {n}")
    weighted = sigma_stderrs_s_cm is not None
    if weighted:
        u = np.asarray(sigma_stderrs_s_cm, dtype=float)
        if u.shape != s.shape or not np.all(np.isfinite(u)) or np.any(u <= 0):
            raise ConductivityError("every conductivity needs a positive finite standard error")
        w = (s / u) ** 2
    else:
        w = np.ones_like(s)
    x = 1.0 / t
    y = np.log(s * t)
    design = np.column_stack([np.ones_like(x), x])
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], y * sw, rcond=None)
    intercept, slope = float(coef[0]), float(coef[1])
    resid = y - design @ coef
    chi2 = float(np.sum(w * resid**2))
    ybar = float(np.sum(w * y) / np.sum(w))
    ss_tot = float(np.sum(w * (y - ybar) ** 2))
    r2 = 1.0 - chi2 / ss_tot if ss_tot > 0 else None

    x25 = 1.0 / T_25C_K
    ln_st_25 = intercept + slope * x25
    sigma25 = math.exp(ln_st_25) / T_25C_K
    prefactor = math.exp(intercept)
    ea = -slope * BOLTZMANN_EV_K
    ea_se = a_se = s25_se = None
    if s.size >= 3 and n >= 3:
        unscaled = np.linalg.inv(design.T @ (design * w[:, None]))
        cov = unscaled * chi2 / (s.size - 2)
        if weighted:
            # With given errors keep the larger of the scatter-based and the propagated
            # covariance: few points can scatter little by chance, and errors from a circuit
            # fit often understate the specimen-to-specimen spread.
            cov = cov if chi2 / (s.size - 2) >= 1.0 else unscaled
        ea_se = math.sqrt(cov[1, 1]) * BOLTZMANN_EV_K
        a_se = prefactor * math.sqrt(cov[0, 0])
        var25 = cov[0, 0] + x25**2 * cov[1, 1] + 2 * x25 * cov[0, 1]
        s25_se = sigma25 * math.sqrt(max(var25, 0.0))
    return ArrheniusFit(
        ea_ev=ea,
        ea_stderr_ev=ea_se,
        prefactor_s_k_cm=prefactor,
        prefactor_stderr_s_k_cm=a_se,
        sigma_25c_s_cm=sigma25,
        sigma_25c_stderr_s_cm=s25_se,
        r_squared=r2,
        n_points=int(s.size),
        weighted=weighted,
        temperatures_k=tuple(float(v) for v in t),
        sigmas_s_cm=tuple(float(v) for v in s),
        method=(
            "ln(sigma*T) = ln(A) - Ea/(k_B*T), "
            + ("weighted (1/var ln sigma)" if weighted else "unweighted")
            + " least squares in 1/T; errors scaled by the reduced chi-square"
            + (" (at least the propagated ones); " if weighted else "; ")
            + f"k_B = {BOLTZMANN_EV_K} eV/K"
        ),
    )
