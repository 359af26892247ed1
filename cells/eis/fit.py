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
import functools
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
from scipy.optimize import brentq, least_squares, minimize_scalar, nnls
from scipy.signal import find_peaks

from cells.eis.circuits import EVALUATOR, CircuitModel, Unsupported, compile_circuit

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


@functools.lru_cache(maxsize=64)
def _compiled(circuit: str) -> CircuitModel | None:
    """The NumPy model of a circuit, or None when it has an element only impedance.py models."""
    try:
        return compile_circuit(circuit)
    except Unsupported:
        return None


def evaluator(circuit: str) -> str:
    """Which code evaluates ``circuit`` in a fit (provenance beside the library versions)."""
    if _compiled(circuit) is not None:
        return EVALUATOR
    return f"impedance.py {impedance.__version__} wrapCircuit, finite-difference Jacobian"


def circuit_impedance(circuit: str, params: ArrayLike, f: ArrayLike) -> ComplexArray:
    """Impedance of a circuit at ``f`` (Hz): the NumPy model, else impedance.py's evaluation."""
    fa = np.asarray(f, dtype=float)
    pa = np.asarray(params, dtype=float)
    model = _compiled(circuit)
    if model is not None:
        return model.impedance(pa, 2 * np.pi * fa)
    stacked = wrapCircuit(circuit, {})(fa, *[float(p) for p in pa])
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


def _layout(circ: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(arcs as (R, CPE|C) name pairs from high to low frequency, series element names), or
    FitError for a circuit the automatic guess does not understand."""
    arcs: list[tuple[str, str]] = []
    series: list[str] = []
    for b in _split_top(circ, "-"):
        if b.startswith("p("):
            parts = _split_top(b[2:-1], ",")
            kinds = sorted(_kind(p) for p in parts if _ELEMENT.match(p))
            if len(parts) != 2 or kinds not in (["CPE", "R"], ["C", "R"]):
                raise FitError(
                    f"no automatic initial guess for the block {b!r} of {circ!r}: "
                    "give initial_guess"
                )
            r = next(p for p in parts if _kind(p) == "R")
            arcs.append((r, next(p for p in parts if p != r)))
        elif _ELEMENT.match(b) and _kind(b) in {"R", "L", "C", "CPE", "W", "Wo", "Ws"}:
            series.append(b)
        else:
            raise FitError(f"no automatic initial guess for {b!r} of {circ!r}: give initial_guess")
    return arcs, series


def auto_initial_guess(
    f: ArrayLike,
    z: ArrayLike,
    circuit: str,
    *,
    arc_alpha: float = 0.85,
) -> list[float]:
    """An initial guess read off the spectrum, so a fit converges without a person.

    R0 from the high-frequency intercept (or the foot of the first arc), each p(R,CPE) arc from
    an apex of -Z'' (R ~ the arc's share of the real-axis span, Q from R*Q*(2*pi*f_apex)^a = 1),
    the tail element from the last points (CPE exponent from the log-log slope, Warburg from
    -Z'' * sqrt(w)). Arcs without a visible apex are placed in the remaining decades. Supports
    series R, L, C, CPE, W, Wo, Ws and p(R, CPE|C) blocks; anything else needs ``initial_guess``.
    The fallback start beside ``drt_initial_guess`` (see ``auto_starts``).
    """
    fs, zs = as_spectrum(f, z)
    w = 2 * np.pi * fs
    re_, mim = zs.real, -zs.imag
    zmax = float(np.abs(zs).max())
    arcs, series = _layout(circuit)

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
    series_r = [b for b in series if _kind(b) == "R"]
    for b in series:
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


# Distribution of relaxation times (DRT) behind the spectrum-derived start: RC time constants on a
# log grid this many per decade, half a decade beyond the measured range on each side.
DRT_PER_DECADE = 6
# Ridge weight on the RC resistances (in units of the median |Z|). With 0.5 % noise, 1e-4 / 1e-3 /
# 1e-2 let the noise ring into spurious peaks (19 / 6 / 1 of the bench's 72 grid spectra then
# fitted into a wrong minimum from this start alone), 0.1 none; exact spectra are unaffected.
DRT_RIDGE = 0.1
# CPE exponents of a tail element tried in the linear step (the best one is kept).
DRT_TAIL_ALPHAS = tuple(round(0.5 + 0.05 * i, 2) for i in range(11))


def _nnls_drt(
    w: FloatArray, zs: ComplexArray, taus: FloatArray, extra: list[NDArray[Any]]
) -> tuple[FloatArray, float]:
    """Non-negative, ridge-regularised fit of Z = R_inf + sum R_k/(1 + j w tau_k) + sum c_i e_i(w)
    weighted by 1/|Z|: coefficients [R_inf, R_k..., c_i...] and the weighted residual norm."""
    mod = np.abs(zs)
    cols = np.column_stack(
        [np.ones(w.size, dtype=complex), 1 / (1 + 1j * w[:, None] * taus[None, :]), *extra]
    )
    cols = cols / mod[:, None]
    scale = np.abs(cols).max(axis=0)  # unit columns: nnls converges on badly scaled problems too
    a = np.vstack([cols.real, cols.imag]) / scale
    b = np.concatenate([zs.real / mod, zs.imag / mod])
    # penalty DRT_RIDGE * sum (R_k / median |Z|)^2 on the RC resistances only
    ridge = np.zeros((taus.size, a.shape[1]))
    rc = 1 + np.arange(taus.size)
    ridge[np.arange(taus.size), rc] = math.sqrt(DRT_RIDGE) / (scale[rc] * float(np.median(mod)))
    y, _ = nnls(
        np.vstack([a, ridge]), np.concatenate([b, np.zeros(taus.size)]), maxiter=50 * a.shape[1]
    )
    return y / scale, float(np.linalg.norm(a @ y - b))


def drt_initial_guess(f: ArrayLike, z: ArrayLike, circuit: str) -> list[float]:
    """A start from the distribution of relaxation times (DRT) of the spectrum.

    A linear, non-negative fit of R_inf + a grid of RC elements (+ the circuit's series L and its
    tail element: C, W, or CPE with the best of ``DRT_TAIL_ALPHAS``) shows each arc as a peak in
    R over log tau even where -Z'' has no apex of its own (an arc under its neighbour or under a
    blocking electrode's tail). The ``n`` arcs of the circuit are the ``n`` most prominent peaks
    at least a decade apart: R = the resistance nearer that peak than any other, tau = its centre,
    CPE exponent from its width (a ZARC's DRT has variance pi^2/3 (1/a^2 - 1) in ln tau), Q =
    tau^a / R. A second series R keeps its read-off value. FitError for a circuit with more than
    one tail element or a finite-length Warburg (Wo, Ws), or a DRT with fewer peaks than arcs.
    """
    fs, zs = as_spectrum(f, z)
    arcs, series = _layout(circuit)
    base = dict(
        zip(
            [n for n, _ in parameter_names(circuit)],
            auto_initial_guess(fs, zs, circuit),
            strict=True,
        )
    )
    w = 2 * np.pi * fs
    lo, hi = math.log10(1 / w.max()) - 0.5, math.log10(1 / w.min()) + 0.5
    taus = np.logspace(lo, hi, round((hi - lo) * DRT_PER_DECADE) + 1)
    kinds = {b: _kind(b) for b in series}
    inductors = [b for b in series if kinds[b] == "L"]
    tails = [b for b in series if kinds[b] in ("C", "CPE", "W", "Wo", "Ws")]
    if len(tails) > 1 or len(inductors) > 1 or any(kinds[b] in ("Wo", "Ws") for b in tails):
        raise FitError("the DRT start models at most one L and one tail element (C, CPE or W)")
    extra = [1j * w + 0j] if inductors else []
    tail = tails[0] if tails else None
    alphas: tuple[float | None, ...] = (None,)
    if tail is not None:
        alphas = {"C": (1.0,), "W": (None,), "CPE": DRT_TAIL_ALPHAS}[kinds[tail]]

    def solve(alpha: float | None) -> tuple[float, FloatArray]:
        cols = list(extra)
        if tail is not None:
            cols.append(
                (1 - 1j) / np.sqrt(w) if kinds[tail] == "W" else (1j * w) ** -(alpha or 1.0)
            )
        x, norm = _nnls_drt(w, zs, taus, cols)
        return norm, x

    tried = {alpha: solve(alpha) for alpha in alphas}
    alpha = min(tried, key=lambda a: tried[a][0])
    if len(alphas) > 1 and alpha is not None:
        # a tail exponent a little off leaves its misfit to the RC grid: refine between the steps
        step = DRT_TAIL_ALPHAS[1] - DRT_TAIL_ALPHAS[0]
        fine = minimize_scalar(
            lambda a: solve(float(a))[0],
            bounds=(max(alpha - step, 0.3), min(alpha + step, 1.0)),
            method="bounded",
            options={"xatol": 2e-3},
        )
        if fine.success and fine.fun < tried[alpha][0]:
            alpha = float(fine.x)
            tried[alpha] = solve(alpha)
    x = tried[alpha][1]
    r_inf, rk = float(x[0]), x[1 : 1 + taus.size]
    coef = x[1 + taus.size :]
    guess = dict(base)
    series_r = [b for b in series if kinds[b] == "R"]
    if series_r and r_inf > 0:
        guess[series_r[0]] = r_inf
    if inductors and coef[0] > 0:
        guess[inductors[0]] = float(coef[0])
    if tail is not None and coef[-1] > 0:
        if kinds[tail] == "C":
            guess[tail] = float(1 / coef[-1])
        elif kinds[tail] == "W":
            guess[tail] = float(coef[-1])
        else:
            guess[tail + "_0"] = float(1 / coef[-1])
            guess[tail + "_1"] = float(alpha or 1.0)
    # Arc centres: the most prominent peaks of the resistance within half a decade (a shoulder of
    # a larger peak is not one), then greedily the largest resistance at least a decade apart.
    half = DRT_PER_DECADE // 2
    window = np.convolve(rk, np.ones(2 * half + 1), mode="same")
    peaks, props = find_peaks(np.concatenate([[0.0], window, [0.0]]), prominence=0.0)
    ranked = (peaks - 1)[np.argsort(props["prominences"])[::-1]]
    centres: list[int] = []
    free = np.ones(rk.size, dtype=bool)
    for k in [int(k) for k in ranked] + [-1] * len(arcs):
        if len(centres) == len(arcs) or not np.any(free & (window > 0)):
            break
        if k < 0 or not free[k]:
            k = int(np.argmax(np.where(free, window, -1.0)))
        centres.append(k)
        free[max(k - DRT_PER_DECADE + 1, 0) : k + DRT_PER_DECADE] = False
    if len(centres) < len(arcs):
        raise FitError(f"the DRT shows {len(centres)} separate peaks for {len(arcs)} arcs")
    centres.sort()  # small tau first = high frequency first, the order of the circuit's arcs
    lnt = np.log(taus)
    nearest = np.argmin(np.abs(np.arange(rk.size)[:, None] - np.array(centres)[None, :]), axis=1)
    for (r_name, c_name), k, i in zip(arcs, centres, range(len(centres)), strict=True):
        mass = rk[nearest == i]
        r_arc = float(mass.sum())
        sel = slice(max(k - half, 0), k + half + 1)
        m = rk[sel]
        centre = float(np.sum(m * lnt[sel]) / m.sum())
        var = float(np.sum(rk[nearest == i] * (lnt[nearest == i] - centre) ** 2) / r_arc)
        a = float(np.clip(1 / math.sqrt(1 + 3 * var / math.pi**2), 0.5, 1.0))
        tau = math.exp(centre)
        guess[r_name] = r_arc
        if _kind(c_name) == "CPE":
            guess[c_name + "_0"] = tau**a / r_arc
            guess[c_name + "_1"] = a
        else:
            guess[c_name] = tau / r_arc
    return [guess[n] for n, _ in parameter_names(circuit)]


def auto_starts(fs: FloatArray, zs: ComplexArray, circ: str) -> list[tuple[str, list[float]]]:
    """Named starting points for a fit without a given guess: the DRT start (``drt_initial_guess``)
    and the read-off one (``auto_initial_guess``). Each is fitted to the end and the lower
    chi-square kept: the DRT start finds arcs that have no apex of -Z'' of their own, the read-off
    start is the fallback when the linear DRT step misreads a spectrum."""
    read_off = auto_initial_guess(fs, zs, circ)
    starts: list[tuple[str, list[float]]] = []
    with contextlib.suppress(FitError, RuntimeError):  # RuntimeError: nnls iteration limit
        starts.append(("DRT", drt_initial_guess(fs, zs, circ)))
    starts.append(("read-off", read_off))
    return starts


Residuals = Callable[[FloatArray], FloatArray]


def _log_problem(
    fs: FloatArray,
    zs: ComplexArray,
    circ: str,
    names: list[str],
    guess: list[float],
    weighting: str,
) -> tuple[Residuals, Residuals | str, FloatArray, FloatArray, FloatArray, int]:
    """Residuals over log(parameters), their Jacobian (or scipy's '2-point' differences when only
    impedance.py models the circuit), start, bounds and the number of residuals."""
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
    compiled = _compiled(circ)
    if compiled is None:
        model = wrapCircuit(circ, {})

        def resid_slow(x: FloatArray) -> FloatArray:
            return np.asarray((model(fs, *np.exp(x)) - y) / sigma, dtype=float)

        return resid_slow, "2-point", x0, lo, hi, int(y.size)

    w = 2 * np.pi * fs

    def resid(x: FloatArray) -> FloatArray:
        z = compiled.impedance(np.exp(x), w)
        return np.asarray((np.hstack([z.real, z.imag]) - y) / sigma, dtype=float)

    def jac(x: FloatArray) -> FloatArray:
        p = np.exp(x)
        _, dz = compiled.jacobian(p, w)
        dz = dz * p[None, :]  # d/d(log p) = p d/dp
        return np.asarray(np.vstack([dz.real, dz.imag]) / sigma[:, None], dtype=float)

    return resid, jac, x0, lo, hi, int(y.size)


def _arc_order(circ: str, names: list[str], x: FloatArray) -> NDArray[np.intp]:
    """Parameter order that lists interchangeable arcs (series p(R,CPE) or p(R,C) blocks) from high
    to low frequency, as the circuits are written (R1 the bulk, R2 the grain boundary). Swapping
    two such blocks leaves the impedance unchanged, so a fit may end with them either way round."""
    order = np.arange(len(names))
    try:
        arcs, _ = _layout(circ)
    except FitError:
        return order
    index = {n: i for i, n in enumerate(names)}
    groups: dict[str, list[list[int]]] = {}
    for r, c in arcs:
        if _kind(c) == "CPE":
            groups.setdefault("CPE", []).append([index[r], index[c + "_0"], index[c + "_1"]])
        else:
            groups.setdefault("C", []).append([index[r], index[c]])
    for kind, blocks in groups.items():
        p = np.exp(x)
        if kind == "CPE":  # tau = (R Q)^(1/a)
            ln_tau = [math.log(p[b[0]] * p[b[1]]) / p[b[2]] for b in blocks]
        else:
            ln_tau = [math.log(p[b[0]] * p[b[1]]) for b in blocks]
        for slot, src in zip(blocks, [blocks[i] for i in np.argsort(ln_tau)], strict=True):
            order[slot] = src
    return order


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
    resid, jac, x0, lo, hi, n_res = _log_problem(fs, zs, circ, names, guess, weighting)
    res = least_squares(resid, x0, jac=jac, bounds=(lo, hi), method="trf", max_nfev=MAX_NFEV)
    if res.status <= 0:
        raise FitError(f"fit of {circ!r} did not converge: {res.message}")
    order = _arc_order(circ, names, res.x)
    x, lo, hi, jac_all = res.x[order], lo[order], hi[order], res.jac[:, order]
    popt = np.exp(x)
    chi2 = float(np.sum(res.fun**2))
    dof = max(n_res - popt.size, 1)
    # Covariance as scipy's curve_fit forms it (pseudo-inverse of J^T J through the SVD), over the
    # parameters not pinned at a bound; a pinned one (e.g. a CPE exponent at 1) has no error bar.
    pinned = np.minimum(x - lo, hi - x) <= 1e-6
    colnorm = np.linalg.norm(jac_all, axis=0)
    idle = colnorm <= 1e-8 * max(float(colnorm.max()), 1e-300)
    free = ~pinned & ~idle
    jac = jac_all[:, free]
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
    if initial_guess is None:
        source = "automatic"
        best: tuple[float, list[float], tuple[Any, ...]] | None = None
        failures = []
        starts = auto_starts(fs, zs, circ)
        for label, start in starts:
            try:
                fitted = _fit_log(fs, zs, circ, names, start, weighting)
            except FitError as exc:
                failures.append(f"{label} start: {exc}")
                continue
            # a later start must do better than rounding (exact spectra end near 1e-26 either way)
            if best is None or fitted[2] < best[0] - max(1e-6 * best[0], 1e-18):
                best = (fitted[2], start, (label, *fitted))
        if best is None:
            raise FitError("; ".join(failures))
        guess = best[1]
        label, popt, errs, chi2, notes = best[2]
        if label != starts[0][0]:
            notes.insert(
                0,
                f"automatic initial guess: the {label} start reached a lower chi-square than the "
                f"{starts[0][0]} start",
            )
    else:
        guess = [float(x) for x in initial_guess]
        source = "given"
        if len(guess) != len(names):
            raise FitError(f"{circ!r} has {len(names)} parameters, initial_guess {len(guess)}")
        if any(not (g > 0 and math.isfinite(g)) for g in guess):
            raise FitError("every initial guess must be a positive finite number")
        popt, errs, chi2, notes = _fit_log(fs, zs, circ, names, guess, weighting)
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
        versions={**library_versions(), "evaluator": evaluator(circ)},
    )
