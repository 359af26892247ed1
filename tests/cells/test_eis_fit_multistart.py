"""Multi-start automatic guess: a grain-boundary arc hidden between the bulk arc and a strong
blocking-electrode tail (generated spectra of known parameters)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cells.eis.fit import CIRCUITS, auto_starts, circuit_impedance, fit_circuit

CIRC = CIRCUITS["bulk_grain_boundary"]  # R0-p(R1,CPE1)-p(R2,CPE2)-CPE3
F = np.logspace(6, -1, 71)


def _spectrum(f2: float, q3: float, a3: float, a2: float) -> tuple[list[float], np.ndarray]:
    """Bulk arc R1 = 1000 ohm at 100 kHz, grain boundary R2 = 1000 ohm at f2, CPE3 tail."""
    r0, r1, f1, a1, r2 = 50.0, 1000.0, 1e5, 0.9, 1000.0
    q1 = 1 / (r1 * (2 * math.pi * f1) ** a1)
    q2 = 1 / (r2 * (2 * math.pi * f2) ** a2)
    params = [r0, r1, q1, a1, r2, q2, a2, q3, a3]
    return params, circuit_impedance(CIRC, params, F)


# each of these converged to R2 ~ 0 or R2 >> R1 from the single read-off guess
HIDDEN = [(100.0, 1e-4, 0.8, 0.85), (100.0, 1e-4, 0.9, 0.85), (300.0, 1e-4, 0.6, 0.85)]


@pytest.mark.parametrize("case", HIDDEN)
def test_hidden_grain_boundary_arc_is_recovered(case: tuple[float, float, float, float]) -> None:
    params, z = _spectrum(*case)
    fit = fit_circuit(F, z, "bulk_grain_boundary")
    assert fit.value("R1") == pytest.approx(params[1], rel=1e-3)
    assert fit.value("R2") == pytest.approx(params[4], rel=1e-3)
    assert fit.rms_relative < 1e-5
    assert fit.guess_source == "automatic"
    assert len(fit.initial_guess) == len(params)


def test_hidden_arc_with_noise_stays_near_the_truth() -> None:
    params, z = _spectrum(*HIDDEN[0])
    rng = np.random.default_rng(7)
    noisy = z * (1 + 0.005 * (rng.standard_normal(z.size) + 1j * rng.standard_normal(z.size)))
    fit = fit_circuit(F, noisy, "bulk_grain_boundary")
    assert fit.value("R1") == pytest.approx(params[1], rel=0.05)
    assert fit.value("R2") == pytest.approx(params[4], rel=0.1)
    assert fit.rms_relative < 0.01


def test_starts_only_for_two_or_more_arcs() -> None:
    _, z = _spectrum(*HIDDEN[0])
    assert len(auto_starts(F, z, CIRC)) == 4  # read-off guess + 1, 2, 3 decades apart
    assert len(auto_starts(F, z, "R0-p(R1,CPE1)-CPE2")) == 1


def test_separated_arcs_keep_the_read_off_start() -> None:
    params, z = _spectrum(1e2, 1e-5, 0.85, 0.85)
    fit = fit_circuit(F, z, "bulk_grain_boundary")
    assert fit.value("R2") == pytest.approx(params[4], rel=1e-3)
    assert not any(w.startswith("automatic initial guess: start") for w in fit.warnings)
