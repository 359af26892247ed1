"""Li-symmetric cell analysis on generated steps with known answers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from cells.analytics.symmetric import SymmetricParams, analyse
from tests.cells.analytics_data import symmetric_series

AREA = 0.785  # cm2
ASR = 100.0  # ohm cm2: eta = ASR x j
J = [0.1, 0.2, 0.4, 0.8]  # mA/cm2
HALF, REST = 1800.0, 600.0


def _series(short_step: int = 4, short_after_s: float = HALF + 900.0) -> pl.DataFrame:
    return symmetric_series(
        J,
        area_cm2=AREA,
        asr_ohm_cm2=ASR,
        half_s=HALF,
        rest_s=REST,
        short_step=short_step,
        short_after_s=short_after_s,
    )


def test_steps_overpotentials_and_the_short_match_the_generated_answers():
    result = analyse(_series(), area_cm2=AREA)
    assert [s.current_density_ma_cm2 for s in result.steps] == pytest.approx(J)
    assert [s.current_ma for s in result.steps] == pytest.approx([j * AREA for j in J])
    assert [s.segments for s in result.steps] == [2, 2, 2, 2]
    # plateau |V| = ASR x j (the start transient has decayed in the last half)
    for step, j in zip(result.steps, J, strict=True):
        assert step.overpotential_v == pytest.approx(ASR * j / 1000, rel=0.01)
        assert step.asr_ohm_cm2 == pytest.approx(ASR, rel=0.01)
    assert [s.shorted for s in result.steps] == [False, False, False, True]
    assert [s.start_s for s in result.steps] == [0, 4200, 8400, 12600]
    failure = result.failure
    assert failure is not None and failure.kind == "short" and failure.step == 4
    assert failure.ccd_ma_cm2 == pytest.approx(0.8)
    assert failure.ccd_ma == pytest.approx(0.8 * AREA)
    short_at = 3 * (2 * HALF + REST) + HALF + 900.0
    assert failure.time_s == short_at
    assert failure.time_to_short_s == short_at  # current flows from t = 0
    # areal capacity: 1 h at each of 0.1, 0.2, 0.4 mA/cm2, then 0.8 mA/cm2 for 2700 s
    expected = 0.1 + 0.2 + 0.4 + 0.8 * (HALF + 900.0) / 3600
    assert failure.areal_capacity_mah_cm2 == pytest.approx(expected, rel=1e-9)
    assert failure.capacity_mah == pytest.approx(expected * AREA, rel=1e-9)


def test_no_short_means_no_ccd_and_all_steps_reported():
    result = analyse(_series(short_step=0), area_cm2=AREA)
    assert result.failure is None
    assert len(result.steps) == 4 and not any(s.shorted or s.noisy for s in result.steps)


def test_a_short_in_the_first_half_cycle_of_a_step_keeps_its_pre_short_overpotential():
    result = analyse(_series(short_step=3, short_after_s=1200.0), area_cm2=AREA)
    assert len(result.steps) == 3
    assert result.failure is not None and result.failure.ccd_ma_cm2 == pytest.approx(0.4)
    assert result.failure.time_s == 2 * (2 * HALF + REST) + 1200.0
    assert result.steps[2].overpotential_v == pytest.approx(0.04, rel=0.01)


def test_noise_is_a_failure_too():
    frame = _series(short_step=0)
    # the 0.4 mA/cm2 step turns noisy: random dips to a fraction of its plateau
    t = frame["time_s"].to_numpy()
    in_step = (t > 2 * (2 * HALF + REST)) & (t < 3 * (2 * HALF + REST) - REST)
    dips = np.random.default_rng(3).uniform(0.1, 1.0, in_step.sum())
    volts = frame["voltage_v"].to_numpy().copy()
    volts[in_step] *= dips
    result = analyse(frame.with_columns(pl.Series("voltage_v", volts)), area_cm2=AREA)
    assert result.failure is not None and result.failure.kind == "noise"
    assert result.failure.ccd_ma_cm2 == pytest.approx(0.4)
    assert result.steps[2].noisy


def test_without_an_area_densities_are_unknown_but_currents_are_not():
    result = analyse(_series(), area_cm2=None)
    assert result.steps[0].current_density_ma_cm2 is None
    assert result.failure is not None and result.failure.areal_capacity_mah_cm2 is None
    assert result.failure.ccd_ma == pytest.approx(0.8 * AREA)


def test_method_states_the_thresholds():
    method = SymmetricParams(hold_s=30).method()
    assert "30 s" in method["short"] and "last half" in method["overpotential"]
