"""Equivalent-circuit fitting, Kramers-Kronig validity and the model-free intercept of a spectrum.

Pure numerical code (no Django): inputs are frequencies ``f`` in Hz and complex impedances ``z``
in Ohm with the electrochemists' sign, Z'' < 0 for a capacitive response. Circuit models come from
impedance.py (``impedance.models.circuits``), the optimiser is scipy's ``least_squares``; the
Lin-KK regression is impedance.py's ``fit_linKK`` (Schönleber et al., Electrochim. Acta 131
(2014) 20). Every result carries what a person needs to reproduce it: circuit, initial guess,
weighting, frequency range, points used and library versions.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import impedance
import numpy as np
import scipy
from impedance.models.circuits.fitting import (
    check_and_eval,
    extract_circuit_elements,
    get_element_from_name,
    wrapCircuit,
)
from impedance.validation import calc_mu, fit_linKK, get_tc_distribution
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import brentq, least_squares
from scipy.signal import find_peaks

FloatArray = NDArray[np.float64]
ComplexArray = NDArray[np.complex128]
Weighting = Literal["modulus", "unit"]

# Circuits per measurement type (impedance.py notation: '-' series, p(a,b) parallel). Arc blocks are
# listed from high to low frequency, so R1 is the bulk and R2 the grain boundary or interface.
CIRCUITS: dict[str, str] = {
    # Ion-blocking electrodes on a pellet or film: bulk arc plus the electrode polarisation spike.
    "blocking_pellet": "R0-p(R1,CPE1)-CPE2",
    # Bulk and grain-boundary arcs plus the blocking-electrode spike.
    "bulk_grain_boundary": "R0-p(R1,CPE1)-p(R2,CPE2)-CPE3",
    # A cell: two interface arcs (e.g. SEI / charge transfer) and semi-infinite diffusion.
    "cell_interfaces": "R0-p(R1,CPE1)-p(R2,CPE2)-W1",
}

# Lin-KK: a spectrum passes when every residual (real and imaginary part, relative to |Z|) is within
# this bound. 2 % lets a causal spectrum with 0.5 % random noise pass (about 4 sigma over ~100
# numbers) and flags drift, non-linearity or sign errors, which leave systematic residuals of
# several percent (Schönleber 2014 reads residuals below ~1 % as noise-level).
KK_MAX_RESIDUAL = 0.02
# Schönleber's under/over-fitting cut-off for the number of RC elements (impedance.py's default).
KK_MU_CUTOFF = 0.85
KK_MAX_RC = 50
# A zero crossing of Z'' counts as the high-frequency intercept only when the next points stay
# capacitive: a noisy Z'' that flips sign around zero does not make an intercept by itself.
INTERCEPT_PERSIST = 3

# Each log-parameter may move this far (natural log, a factor 1e9) from its initial guess.
LOG_SPAN = math.log(1e9)
MAX_NFEV = 2000
# Evaluations each start of a multi-start fit gets before the best one is fitted to the end.
SCREEN_NFEV = 30

_ELEMENT = re.compile(r"^[A-Za-z]+\d+$")


class FitError(ValueError):
    """A spectrum or circuit that cannot be fitted, with the reason a person can act on."""


def library_versions() -> dict[str, str]:
    """Versions of the numerical libraries behind every fitted number (provenance)."""
    return {"impedance": impedance.__version__, "scipy": scipy.__version__, "numpy": np.__version__}


def as_spectrum(f: ArrayLike, z: ArrayLike) -> tuple[FloatArray, ComplexArray]:
    """Validate and sort a spectrum by decreasing frequency (the order of a Nyquist sweep)."""
    fa = np.asarray(f, dtype=float).ravel()
    za = np.asarray(z, dtype=complex).ravel()
    if fa.size != za.size:
        raise FitError(f"{fa.size} frequencies but {za.size} impedances")
    if fa.size < 3:
        raise FitError(f"a spectrum needs at least 3 points, got {fa.size}")
    if not (np.all(np.isfinite(fa)) and np.all(np.isfinite(za))):
        raise FitError("the spectrum holds NaN or infinite values")
    if np.any(fa <= 0):
        raise FitError("frequencies must be positive (Hz)")
    if np.unique(fa).size != fa.size:
        raise FitError("the spectrum repeats a frequency")
    order = np.argsort(fa)[::-1]
    return fa[order], za[order]


def high_frequency_intercept(f: ArrayLike, z: ArrayLike) -> float | None:
    """Model-free high-frequency resistance: Z' where Z'' crosses from inductive to capacitive.

    Scanning down from the highest frequency, the first crossing after which Z'' stays negative
    for ``INTERCEPT_PERSIST`` points (or to the end) is taken, Z' linearly interpolated in Z''
    between the two points around it. None when the spectrum never crosses (it starts on an arc).
    """
    _, zs = as_spectrum(f, z)
    im = zs.imag
    for i in range(im.size - 1):
        if im[i] >= 0 > im[i + 1] and np.all(im[i + 1 : i + 1 + INTERCEPT_PERSIST] < 0):
            t = im[i] / (im[i] - im[i + 1])
            return float(zs.real[i] + t * (zs.real[i + 1] - zs.real[i]))
    return None


# --- Kramers-Kronig -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KramersKronigResult:
    """Lin-KK validity test of one spectrum: passed, and the residuals that decided it."""

    passed: bool
    threshold: float
    max_residual: float
    rms_residual: float
    frequency_of_max: float
    n_rc: int
    mu: float
    frequencies: tuple[float, ...]
    residuals_real: tuple[float, ...]
    residuals_imag: tuple[float, ...]
    method: str
    versions: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _linkk_impedance(
    elements: FloatArray, taus: FloatArray, f: FloatArray, with_cap: bool
) -> ComplexArray:
    """Impedance of the Lin-KK model: R0 + sum Rk / (1 + j w tau_k) + j w L (+ 1 / (j w C)).

    Evaluated here because impedance.py 1.7.1's ``eval_linKK`` builds a string from NumPy
    scalars and ``eval``s it, which fails under NumPy 2 (``np.float64(...)`` reprs).
    """
    w = 2 * np.pi * f
    rk = elements[1 : 1 + taus.size]
    zk = np.sum(rk[None, :] / (1 + 1j * w[:, None] * taus[None, :]), axis=1)
    out = elements[0] + zk + 1j * w * elements[-1]
    if with_cap:
        out = out + elements[-2] / (1j * w)  # the fitted coefficient is 1/C
    return np.asarray(out, dtype=complex)


def kramers_kronig(
    f: ArrayLike,
    z: ArrayLike,
    *,
    threshold: float = KK_MAX_RESIDUAL,
    mu_cutoff: float = KK_MU_CUTOFF,
    max_rc: int = KK_MAX_RC,
    add_capacitance: bool = True,
) -> KramersKronigResult:
    """Lin-KK test: fit a KK-compliant chain of RC elements and judge the relative residuals.

    The number of RC elements grows until Schönleber's mu drops below ``mu_cutoff``. A series
    capacitance is included by default so that blocking electrodes and cells with a capacitive
    low-frequency tail (no low-frequency intercept) are tested fairly; where it is not needed
    its fitted 1/C is close to zero. Residuals are (Z - Z_KK) / |Z| per real and imaginary part.
    """
    fs, zs = as_spectrum(f, z)
    n_rc, mu = 0, 1.0
    elements = np.zeros(1)
    taus = np.zeros(0)
    # impedance.py prints progress every 10 elements; keep library chatter out of worker logs.
    with contextlib.redirect_stdout(io.StringIO()):
        while mu > mu_cutoff and n_rc < max_rc:
            n_rc += 1
            taus = get_tc_distribution(fs, n_rc)
            elements, mu = fit_linKK(fs, taus, n_rc, zs, "complex", add_capacitance)
            mu = float(calc_mu(elements[1 : 1 + n_rc]))
    zk = _linkk_impedance(np.asarray(elements, dtype=float), taus, fs, add_capacitance)
    resid = (zs - zk) / np.abs(zs)
    both = np.abs(np.concatenate([resid.real, resid.imag]))
    worst = int(np.argmax(np.maximum(np.abs(resid.real), np.abs(resid.imag))))
    max_res = float(both.max())
    return KramersKronigResult(
        passed=bool(max_res <= threshold),
        threshold=threshold,
        max_residual=max_res,
        rms_residual=float(np.sqrt(np.mean(both**2))),
        frequency_of_max=float(fs[worst]),
        n_rc=n_rc,
        mu=float(mu),
        frequencies=tuple(float(x) for x in fs),
        residuals_real=tuple(float(x) for x in resid.real),
        residuals_imag=tuple(float(x) for x in resid.imag),
        method=(
            "Lin-KK (Schönleber 2014), complex fit of R0, L"
            + (", C" if add_capacitance else "")
            + f" and M RC elements, mu cut-off {mu_cutoff}; pass if max |residual| <= {threshold}"
        ),
        versions=library_versions(),
    )


# --- equivalent-circuit fit -----------------------------------------------------------------------


@dataclass(frozen=True)
class FitParameter:
    name: str
    value: float
    stderr: float | None
    unit: str


@dataclass(frozen=True)
class CircuitFit:
    """One equivalent-circuit fit with its provenance (what to store beside every fitted value)."""

    circuit: str
    measurement_type: str | None
    parameters: tuple[FitParameter, ...]
    initial_guess: tuple[float, ...]
    guess_source: str
    weighting: str
    f_range: tuple[float, float]
    n_points: int
    dropped_inductive: int
    chi_square: float
    rms_relative: float
    warnings: tuple[str, ...] = ()
    versions: dict[str, str] = field(default_factory=library_versions)

    def value(self, name: str) -> float:
        return self.parameter(name).value

    def parameter(self, name: str) -> FitParameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"{name} is not a parameter of {self.circuit}")

    @property
    def high_frequency_resistance(self) -> float:
        """Z' of the fitted model where its Z'' crosses zero at high frequency.

        Without an inductor the model's Z'' only reaches zero as f -> infinity, where Z' is the
        series resistance (R0). With a series inductor the crossing is at a finite frequency and
        lies right of R0 by the part of the first arc not yet shorted there; that is the number
        comparable with ``high_frequency_intercept`` of the data.
        """
        return model_intercept(self.circuit, [p.value for p in self.parameters], self.f_range[1])

    def predict(self, f: ArrayLike) -> ComplexArray:
        """Impedance of the fitted circuit at ``f`` (for the Nyquist and Bode overlays)."""
        return circuit_impedance(self.circuit, [p.value for p in self.parameters], f)

    def as_dict(self) -> dict[str, Any]:
        return {
            "circuit": self.circuit,
            "measurement_type": self.measurement_type,
            "parameters": [p.__dict__ for p in self.parameters],
            "initial_guess": list(self.initial_guess),
            "guess_source": self.guess_source,
            "weighting": self.weighting,
            "f_range_hz": list(self.f_range),
            "n_points": self.n_points,
            "dropped_inductive": self.dropped_inductive,
            "chi_square": self.chi_square,
            "rms_relative": self.rms_relative,
            "warnings": list(self.warnings),
            "versions": dict(self.versions),
        }


def model_intercept(circuit: str, params: ArrayLike, f_max: float) -> float:
    """High-frequency Z'' = 0 crossing of a circuit model (see ``high_frequency_resistance``)."""
    p = [float(x) for x in np.asarray(params, dtype=float)]
    if not _has_inductor(circuit):
        values = dict(zip([n for n, _ in parameter_names(circuit)], p, strict=True))
        series = [b for b in _split_top(circuit, "-") if _ELEMENT.match(b) and _kind(b) == "R"]
        return float(sum(values[b] for b in series))
    grid = np.logspace(math.log10(f_max) + 4, math.log10(f_max) - 6, 2001)
    zg = circuit_impedance(circuit, p, grid)
    for i in range(grid.size - 1):
        if zg.imag[i] >= 0 > zg.imag[i + 1]:

            def imag(lf: float) -> float:
                return float(circuit_impedance(circuit, p, np.array([10**lf]))[0].imag)

            lf = brentq(imag, math.log10(grid[i + 1]), math.log10(grid[i]), xtol=1e-10)
            return float(circuit_impedance(circuit, p, np.array([10**lf]))[0].real)
    raise FitError(f"the fitted {circuit!r} has no high-frequency zero crossing of Z''")


def circuit_impedance(circuit: str, params: ArrayLike, f: ArrayLike) -> ComplexArray:
    fa = np.asarray(f, dtype=float)
    stacked = wrapCircuit(circuit, {})(fa, *[float(p) for p in np.asarray(params, dtype=float)])
    return np.asarray(stacked[: fa.size] + 1j * stacked[fa.size :], dtype=complex)


def parameter_names(circuit: str) -> list[tuple[str, str]]:
    """(name, unit) of each parameter in impedance.py's order, e.g. ('CPE1_0', 'Ohm^-1 sec^a')."""
    out: list[tuple[str, str]] = []
    for elem in extract_circuit_elements(circuit):
        fn = check_and_eval(get_element_from_name(elem))
        for i in range(fn.num_params):
            out.append((elem if fn.num_params == 1 else f"{elem}_{i}", fn.units[i]))
    return out


def _split_top(s: str, sep: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in s:
        depth += ch == "("
        depth -= ch == ")"
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def _kind(elem: str) -> str:
    return str(get_element_from_name(elem))


def _tail_alpha(w: FloatArray, mim: FloatArray) -> float:
    """CPE exponent of the low-frequency tail from the slope of log(-Z'') vs log(w)."""
    k = min(5, w.size)
    ww, mm = w[-k:], mim[-k:]
    if np.any(mm <= 0):
        return 0.9
    slope = np.polyfit(np.log(ww), np.log(mm), 1)[0]
    return float(np.clip(-slope, 0.4, 0.98))


def auto_initial_guess(
    f: ArrayLike,
    z: ArrayLike,
    circuit: str,
    *,
    arc_alpha: float = 0.85,
    arc_apex_hz: list[float] | None = None,
) -> list[float]:
    """An initial guess read off the spectrum, so a fit converges without a person.

    R0 from the high-frequency intercept (or the foot of the first arc), each p(R,CPE) arc from
    an apex of -Z'' (R ~ the arc's share of the real-axis span, Q from R*Q*(2*pi*f_apex)^a = 1),
    the tail element from the last points (CPE exponent from the log-log slope, Warburg from
    -Z'' * sqrt(w)). Arcs without a visible apex are placed in the remaining decades. Supports
    series R, L, C, CPE, W, Wo, Ws and p(R, CPE|C) blocks; anything else needs ``initial_guess``.
    ``arc_apex_hz`` (one per arc) replaces the apex frequencies read off the spectrum and splits
    the arcs' span evenly: the other starts of the multi-start fit.
    """
    fs, zs = as_spectrum(f, z)
    w = 2 * np.pi * fs
    re_, mim = zs.real, -zs.imag
    zmax = float(np.abs(zs).max())
    blocks = _split_top(circuit, "-")
    arcs: list[tuple[str, str]] = []
    for b in blocks:
        if b.startswith("p("):
            parts = _split_top(b[2:-1], ",")
            kinds = sorted(_kind(p) for p in parts if _ELEMENT.match(p))
            if len(parts) != 2 or kinds not in (["CPE", "R"], ["C", "R"]):
                raise FitError(
                    f"no automatic initial guess for the block {b!r} of {circuit!r}: "
                    "give initial_guess"
                )
            r = next(p for p in parts if _kind(p) == "R")
            arcs.append((r, next(p for p in parts if p != r)))
        elif not _ELEMENT.match(b) or _kind(b) not in {"R", "L", "C", "CPE", "W", "Wo", "Ws"}:
            raise FitError(
                f"no automatic initial guess for {b!r} of {circuit!r}: give initial_guess"
            )

    intercept = high_frequency_intercept(fs, zs)
    prominence = 0.02 * max(float(mim.max()), 1e-300)
    peaks, props = find_peaks(mim, prominence=prominence)
    top = peaks[np.argsort(props["prominences"])[::-1][: len(arcs)]]
    top = np.sort(top)  # high to low frequency
    if intercept is not None:
        r0 = intercept
    elif top.size:
        r0 = float(re_[top[0]] - mim[top[0]])
    else:
        r0 = float(re_.min())
    r0 = float(np.clip(r0, 1e-6 * zmax, max(float(re_.min()), 2e-6 * zmax)))

    # Real-axis span covered by the arcs: up to the valley after the last apex, or the end.
    if top.size:
        after = np.arange(top[-1], mim.size)
        valley = int(after[np.argmin(mim[after])])
    else:
        valley = int(np.argmin(mim[mim.size // 2 :]) + mim.size // 2)
    span = max(float(re_[valley]) - r0, 1e-3 * zmax)

    # Apex frequencies: the visible ones, the rest spread over the decades not yet taken.
    apex_f = [float(fs[i]) for i in top]
    heights = [float(mim[i]) for i in top]
    logf = np.log10(fs)
    free = np.linspace(logf[0], logf[min(valley, fs.size - 1)], len(arcs) + 2)[1:-1]
    for lf in free:
        if len(apex_f) >= len(arcs):
            break
        if all(abs(lf - math.log10(a)) > 1.0 for a in apex_f):
            apex_f.append(float(10**lf))
            heights.append(0.1 * span)
    while len(apex_f) < len(arcs):
        apex_f.append(float(fs[-1] * 10 ** (len(apex_f))))
        heights.append(0.1 * span)
    order = np.argsort(apex_f)[::-1]
    apex_f = [apex_f[i] for i in order]
    heights = [heights[i] for i in order]
    rs = np.asarray(heights) * 2.0
    rs = rs * (span / rs.sum()) if rs.sum() > 0 else np.full(len(arcs), span / max(len(arcs), 1))
    if arc_apex_hz is not None and len(arc_apex_hz) == len(arcs):
        apex_f = sorted(arc_apex_hz, reverse=True)
        rs = np.full(len(arcs), span / len(arcs))

    guess: dict[str, float] = {}
    for (r_name, c_name), r_k, fa in zip(arcs, rs, apex_f, strict=True):
        guess[r_name] = float(r_k)
        wa = 2 * np.pi * fa
        if _kind(c_name) == "CPE":
            guess[c_name + "_0"] = float(1 / (r_k * wa**arc_alpha))
            guess[c_name + "_1"] = arc_alpha
        else:
            guess[c_name] = float(1 / (r_k * wa))

    w_end, mim_end = float(w[-1]), float(mim[-1])
    tail_h = mim_end if mim_end > 0 else 1e-3 * zmax
    alpha = _tail_alpha(w, mim)
    series_r = [b for b in blocks if _ELEMENT.match(b) and _kind(b) == "R"]
    for b in blocks:
        if not _ELEMENT.match(b):
            continue
        kind = _kind(b)
        if kind == "R":
            guess[b] = r0 if b == series_r[0] else 1e-3 * r0
        elif kind == "L":
            guess[b] = max(float(zs.imag[0]) / float(w[0]), 1e-12)
        elif kind == "C":
            guess[b] = 1 / (w_end * tail_h)
        elif kind == "CPE":
            guess[b + "_0"] = math.sin(alpha * math.pi / 2) / (tail_h * w_end**alpha)
            guess[b + "_1"] = alpha
        elif kind == "W":
            guess[b] = tail_h * math.sqrt(w_end)
        else:  # Wo, Ws: (R, tau)
            guess[b + "_0"] = max(float(re_[-1]) - r0 - float(rs.sum()), 0.1 * span)
            guess[b + "_1"] = 1 / w_end
    return [guess[name] for name, _ in parameter_names(circuit)]


def _arc_count(circ: str) -> int:
    return sum(1 for b in _split_top(circ, "-") if b.startswith("p("))


def auto_starts(fs: FloatArray, zs: ComplexArray, circ: str) -> list[list[float]]:
    """Starting points for a fit without a given guess: the read-off guess first, then (two or
    more arcs) the first arc at the highest-frequency apex of -Z'' and each later arc 1, 2 or 3
    decades below the one before. An arc hidden under its neighbour or under a blocking
    electrode's tail has no apex of its own, and a single start then tends to a local minimum
    with that arc's R near 0."""
    base = auto_initial_guess(fs, zs, circ)
    arcs = _arc_count(circ)
    if arcs < 2:
        return [base]
    mim = -zs.imag
    peaks, _ = find_peaks(mim, prominence=0.02 * max(float(mim.max()), 1e-300))
    f_top = float(fs[peaks[0]]) if peaks.size else float(fs[int(np.argmax(mim))])
    starts = [base]
    for decades in (1.0, 2.0, 3.0):
        apexes = [max(f_top / 10 ** (decades * k), float(fs.min())) for k in range(arcs)]
        if len(set(apexes)) < arcs:
            continue
        with contextlib.suppress(FitError):
            starts.append(auto_initial_guess(fs, zs, circ, arc_apex_hz=apexes))
    return starts


def _log_problem(
    fs: FloatArray,
    zs: ComplexArray,
    circ: str,
    names: list[str],
    guess: list[float],
    weighting: str,
) -> tuple[Callable[[FloatArray], FloatArray], FloatArray, FloatArray, FloatArray, int]:
    """Residual function over log(parameters), start, bounds and the number of residuals."""
    model = wrapCircuit(circ, {})
    y = np.hstack([zs.real, zs.imag])
    sigma = np.hstack([np.abs(zs), np.abs(zs)]) if weighting == "modulus" else np.ones(y.size)
    x0 = np.log(np.asarray(guess, dtype=float))
    lo, hi = x0 - LOG_SPAN, x0 + LOG_SPAN
    # CPE and La exponents stay in (0, 1], as impedance.py's default bounds have it.
    expo = np.array(
        [_kind(n.rsplit("_", 1)[0]) in ("CPE", "La") and n.endswith("_1") for n in names]
    )
    lo[expo], hi[expo] = math.log(1e-3), 0.0
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def resid(x: FloatArray) -> FloatArray:
        return np.asarray((model(fs, *np.exp(x)) - y) / sigma, dtype=float)

    return resid, x0, lo, hi, int(y.size)


def _screen(
    fs: FloatArray,
    zs: ComplexArray,
    circ: str,
    names: list[str],
    starts: list[list[float]],
    weighting: str,
) -> tuple[int, list[float]]:
    """The start whose short run (SCREEN_NFEV evaluations) reaches the lowest chi-square, and
    where that run ended (the full fit goes on from there)."""
    best: tuple[float, int, list[float]] | None = None
    for index, guess in enumerate(starts):
        resid, x0, lo, hi, _ = _log_problem(fs, zs, circ, names, guess, weighting)
        res = least_squares(resid, x0, bounds=(lo, hi), method="trf", max_nfev=SCREEN_NFEV)
        cost = float(np.sum(res.fun**2))
        if math.isfinite(cost) and (best is None or cost < best[0]):
            best = (cost, index, [float(v) for v in np.exp(res.x)])
    if best is None:
        return 0, starts[0]
    return best[1], best[2]


def _fit_log(
    fs: FloatArray,
    zs: ComplexArray,
    circ: str,
    names: list[str],
    guess: list[float],
    weighting: str,
) -> tuple[FloatArray, list[float | None], float, list[str]]:
    """Least squares over log(parameters): scale-free (R ~ 1e3 beside Q ~ 1e-9) and positive.

    Standard errors by the delta method, se(p) = p * se(log p), from the Jacobian at the optimum
    and the reduced chi-square (no absolute measurement variances are known).
    """
    resid, x0, lo, hi, n_res = _log_problem(fs, zs, circ, names, guess, weighting)
    res = least_squares(resid, x0, bounds=(lo, hi), method="trf", max_nfev=MAX_NFEV)
    if res.status <= 0:
        raise FitError(f"fit of {circ!r} did not converge: {res.message}")
    popt = np.exp(res.x)
    chi2 = float(np.sum(res.fun**2))
    dof = max(n_res - popt.size, 1)
    # Covariance as scipy's curve_fit forms it (pseudo-inverse of J^T J through the SVD), over the
    # parameters not pinned at a bound; a pinned one (e.g. a CPE exponent at 1) has no error bar.
    pinned = np.minimum(res.x - lo, hi - res.x) <= 1e-6
    colnorm = np.linalg.norm(res.jac, axis=0)
    idle = colnorm <= 1e-8 * max(float(colnorm.max()), 1e-300)
    free = ~pinned & ~idle
    jac = res.jac[:, free]
    errs: list[float | None] = [None] * popt.size
    if jac.shape[1]:
        _, sv, vt = np.linalg.svd(jac, full_matrices=False)
        if np.all(sv > np.finfo(float).eps * max(jac.shape) * sv[0]):
            var = np.diag((vt.T / sv**2) @ vt) * chi2 / dof
            for i, v in zip(np.flatnonzero(free), var, strict=True):
                errs[i] = float(popt[i] * math.sqrt(v))
    notes = []
    for n, pin, still, b in zip(names, pinned, idle, hi, strict=True):
        if pin and b == 0.0:
            notes.append(f"{n} is pinned at 1 (an ideal capacitor)")
        elif pin:
            notes.append(f"{n} is at the edge of its allowed range (not set by this spectrum)")
        elif still:
            notes.append(f"{n} has no effect on the fitted spectrum (not set by this spectrum)")
    if not any(e is not None for e in errs):
        notes.append("the Jacobian is singular: standard errors are not available")
    notes += [
        f"{n}: standard error exceeds the value"
        for n, p, e in zip(names, popt, errs, strict=True)
        if e is not None and e > p
    ]
    return popt, errs, chi2, notes


def _has_inductor(circ: str) -> bool:
    return any(_kind(e) in ("L", "La") for e in extract_circuit_elements(circ))


def fit_circuit(
    f: ArrayLike,
    z: ArrayLike,
    circuit: str,
    initial_guess: list[float] | None = None,
    weighting: Weighting = "modulus",
    f_range: tuple[float, float] | None = None,
    inductance: Literal["auto", "drop", "keep"] = "auto",
) -> CircuitFit:
    """Fit an equivalent circuit (a key of ``CIRCUITS`` or an impedance.py circuit string).

    ``weighting='modulus'`` divides both residuals by |Z| (the usual choice without measured
    variances); ``'unit'`` fits absolute residuals. ``f_range`` (Hz, inclusive) selects points.
    Inductive points at the top of the spectrum (Z'' > 0: leads and cables) need a series
    inductor: with ``inductance='auto'`` a circuit without one gets ``L0-`` in front (the fitted
    circuit string says so); ``'drop'`` leaves that block of points out instead (impedance.py's
    ``ignoreBelowX``), counted in ``dropped_inductive``; ``'keep'`` fits the circuit as given.
    The model is impedance.py's; the optimiser scipy's ``least_squares`` in log-parameter space.
    """
    measurement_type = circuit if circuit in CIRCUITS else None
    circ = CIRCUITS.get(circuit, circuit)
    try:
        parameter_names(circ)
    except Exception as exc:  # impedance.py raises bare Exceptions/ValueErrors on bad strings
        raise FitError(f"circuit {circ!r} is not a valid impedance.py circuit: {exc}") from exc
    if weighting not in ("modulus", "unit"):
        raise FitError(f"weighting must be 'modulus' or 'unit', not {weighting!r}")
    fs, zs = as_spectrum(f, z)
    if f_range is not None:
        lo, hi = sorted(f_range)
        keep = (fs >= lo) & (fs <= hi)
        fs, zs = fs[keep], zs[keep]
        if fs.size == 0:
            raise FitError(f"no points in {f_range} Hz")
    dropped = 0
    if not _has_inductor(circ) and zs.imag[0] > 0:
        if inductance == "auto":
            taken = set(extract_circuit_elements(circ))
            circ = f"{next(f'L{i}' for i in range(100) if f'L{i}' not in taken)}-{circ}"
        elif inductance == "drop":
            while dropped < zs.size and zs.imag[dropped] > 0:
                dropped += 1
            fs, zs = fs[dropped:], zs[dropped:]
    names_units = parameter_names(circ)
    names = [n for n, _ in names_units]
    if fs.size * 2 <= len(names):
        raise FitError(f"{fs.size} points are too few for the {len(names)} parameters of {circ!r}")
    start_note = ""
    if initial_guess is None:
        starts = auto_starts(fs, zs, circ)
        source = "automatic"
        guess, fit_from = starts[0], starts[0]
        if len(starts) > 1:
            chosen, fit_from = _screen(fs, zs, circ, names, starts, weighting)
            guess = starts[chosen]
            if chosen:
                start_note = (
                    f"automatic initial guess: start {chosen + 1} of {len(starts)} (arc apexes "
                    "placed a decade step apart) reached a lower residual than the read-off one"
                )
    else:
        guess = [float(x) for x in initial_guess]
        source = "given"
        if len(guess) != len(names):
            raise FitError(f"{circ!r} has {len(names)} parameters, initial_guess {len(guess)}")
        if any(not (g > 0 and math.isfinite(g)) for g in guess):
            raise FitError("every initial guess must be a positive finite number")
        fit_from = guess
    popt, errs, chi2, notes = _fit_log(fs, zs, circ, names, fit_from, weighting)
    if start_note:
        notes.insert(0, start_note)
    rel = (zs - circuit_impedance(circ, popt, fs)) / np.abs(zs)
    rms_rel = float(np.sqrt(np.mean(np.concatenate([rel.real, rel.imag]) ** 2)))
    params = tuple(
        FitParameter(name=n, value=float(v), stderr=e, unit=u)
        for (n, u), v, e in zip(names_units, popt, errs, strict=True)
    )
    return CircuitFit(
        circuit=circ,
        measurement_type=measurement_type,
        parameters=params,
        initial_guess=tuple(guess),
        guess_source=source,
        weighting=weighting,
        f_range=(float(fs.min()), float(fs.max())),
        n_points=int(fs.size),
        dropped_inductive=dropped,
        chi_square=chi2,
        rms_relative=rms_rel,
        warnings=tuple(notes),
    )
