"""Conductivity and Arrhenius numbers against hand computation and a known activation energy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cells.eis.conductivity import (
    BOLTZMANN_EV_K,
    ConductivityError,
    arrhenius,
    conductivity,
)

# A 1.0 mm pellet of 0.785 cm2 measured at 25, 50 and 75 degC with R = 1000, 400 and 180 Ohm.
# Expected values computed by hand (closed-form least squares in decimal arithmetic, 40 digits):
# sigma = 0.1 / (R * 0.785); Ea = -slope * k_B; s^2 = SSR / (n - 2).
R_OHM = (1000.0, 400.0, 180.0)
T_C = (25.0, 50.0, 75.0)
SIGMA = (1.273885e-4, 3.184713e-4, 7.077141e-4)
EA_EV = 0.3344126
EA_SE_EV = 0.002151377
PREFACTOR = 17018.34
SIGMA25 = 1.269812e-4
SIGMA25_SE = 1.001419e-6
R2 = 0.9999586


def close4(a: float, b: float) -> bool:
    """Equal to 4 significant digits."""
    return abs(a - b) <= 0.5e-4 * abs(b)


def test_conductivity_of_a_pellet_in_mm_and_cm() -> None:
    for r, expected in zip(R_OHM, SIGMA, strict=True):
        mm = conductivity(r, thickness_mm=1.0, area_cm2=0.785)
        cm = conductivity(r, thickness_cm=0.1, area_cm2=0.785)
        assert close4(mm.sigma_s_cm, expected)
        assert mm.sigma_s_cm == cm.sigma_s_cm
        assert mm.stderr_s_cm is None  # no input uncertainty: unknown, not zero


def test_conductivity_uncertainty_propagates() -> None:
    c = conductivity(
        1000.0,
        thickness_mm=1.0,
        area_cm2=0.785,
        resistance_stderr=20.0,  # 2 %
        thickness_stderr_mm=0.01,  # 1 %
        area_stderr_cm2=0.0157,  # 2 %
    )
    assert c.stderr_s_cm is not None
    assert close4(c.stderr_s_cm, 1.273885e-4 * 0.03)  # sqrt(4 + 1 + 4) % = 3 %
    only_r = conductivity(1000.0, thickness_cm=0.1, area_cm2=0.785, resistance_stderr=20.0)
    assert only_r.stderr_s_cm is not None
    assert close4(only_r.stderr_s_cm, 1.273885e-4 * 0.02)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"area_cm2": 0.785},  # no thickness
        {"area_cm2": 0.785, "thickness_cm": 0.1, "thickness_mm": 1.0},  # both units
        {"area_cm2": 0.0, "thickness_mm": 1.0},
        {"area_cm2": 0.785, "thickness_mm": -1.0},
    ],
)
def test_conductivity_refuses_ambiguous_or_bad_input(kwargs: dict) -> None:
    with pytest.raises(ConductivityError):
        conductivity(1000.0, **kwargs)


def test_arrhenius_matches_hand_computation() -> None:
    sig = [conductivity(r, thickness_mm=1.0, area_cm2=0.785).sigma_s_cm for r in R_OHM]
    fit = arrhenius(sig, temperatures_c=T_C)
    assert fit.ea_stderr_ev is not None and fit.sigma_25c_stderr_s_cm is not None
    assert fit.r_squared is not None
    assert close4(fit.ea_ev, EA_EV)
    assert close4(fit.ea_stderr_ev, EA_SE_EV)
    assert close4(fit.prefactor_s_k_cm, PREFACTOR)
    assert close4(fit.sigma_25c_s_cm, SIGMA25)
    assert close4(fit.sigma_25c_stderr_s_cm, SIGMA25_SE)
    assert close4(fit.r_squared, R2)
    same_in_k = arrhenius(sig, temperatures_k=[t + 273.15 for t in T_C])
    assert same_in_k.ea_ev == pytest.approx(fit.ea_ev, rel=1e-12)


def test_arrhenius_two_temperatures_has_no_uncertainty_and_one_is_refused() -> None:
    two = arrhenius([1e-4, 4e-4], temperatures_k=[300.0, 350.0])
    # Exact line through two points: Ea = k_B ln(sigma2 T2 / sigma1 T1) / (1/T1 - 1/T2).
    expected = BOLTZMANN_EV_K * math.log(4e-4 * 350 / (1e-4 * 300)) / (1 / 300 - 1 / 350)
    assert close4(two.ea_ev, expected)
    assert two.ea_stderr_ev is None and two.sigma_25c_stderr_s_cm is None
    with pytest.raises(ConductivityError, match="at least 2 temperatures"):
        arrhenius([1e-4, 2e-4], temperatures_k=[300.0, 300.0])
    with pytest.raises(ConductivityError, match="exactly one"):
        arrhenius([1e-4, 2e-4], temperatures_k=[300.0, 350.0], temperatures_c=[27.0, 77.0])


def _series(rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """A published-style series: 6 temperatures 25-100 degC, Ea = 0.35 eV, log-normal noise."""
    t = np.linspace(298.15, 373.15, 6)
    sigma = 5e3 / t * np.exp(-0.35 / (BOLTZMANN_EV_K * t))
    return t, sigma * np.exp(rng.normal(0.0, noise, t.size))


def test_arrhenius_recovers_a_known_activation_energy_within_its_error() -> None:
    t, sigma = _series(np.random.default_rng(7), 0.03)
    fit = arrhenius(sigma, temperatures_k=t, sigma_stderrs_s_cm=0.03 * sigma)
    assert fit.ea_stderr_ev is not None
    # Within the 95 % interval of the stated error (Student t, 4 degrees of freedom).
    assert abs(fit.ea_ev - 0.35) <= 2.776 * fit.ea_stderr_ev
    assert 0.001 < fit.ea_stderr_ev < 0.05


def test_arrhenius_stated_uncertainty_has_the_right_coverage() -> None:
    """Over many noisy series the true Ea lies within +-1 standard error about 63 % of the
    time (Student t with 4 degrees of freedom) and within +-2.776 about 95 %."""
    rng = np.random.default_rng(2026)
    z = []
    for _ in range(400):
        t, sigma = _series(rng, 0.03)
        fit = arrhenius(sigma, temperatures_k=t)
        assert fit.ea_stderr_ev is not None
        z.append(abs(fit.ea_ev - 0.35) / fit.ea_stderr_ev)
    within1 = np.mean(np.asarray(z) <= 1.0)
    within95 = np.mean(np.asarray(z) <= 2.776)
    assert 0.56 <= within1 <= 0.70
    assert 0.92 <= within95 <= 0.98
