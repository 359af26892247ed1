"""dQ/dV and dV/dQ: synthetic half cycles with known peaks, and a real BioLogic file."""

from __future__ import annotations

import polars as pl
import pytest

from cells.analytics.dqdv import DqdvParams, dqdv_cycles
from tests.cells.analytics_data import half_cycle_rows

CHARGE = [(3.7, 1.0), (4.0, 0.6)]
DISCHARGE = [(3.65, 1.0), (3.95, 0.6)]
WIDTH = 0.02  # logistic width (V); a peak's height is capacity / (4 width)


def _cycle(noise_v: float = 3e-4) -> pl.DataFrame:
    ch = half_cycle_rows(
        CHARGE, direction="charge", current_a=1e-4, rows=3000, noise_v=noise_v, seed=1, width=WIDTH
    )
    rest = pl.DataFrame(
        {
            "time_s": [ch["time_s"][-1] + 5.0],
            "current_a": [0.0],
            "voltage_v": [4.2],
            "charge_capacity_ah": [ch["charge_capacity_ah"][-1]],
            "discharge_capacity_ah": [0.0],
        }
    )
    dis = half_cycle_rows(
        DISCHARGE,
        direction="discharge",
        current_a=1e-4,
        rows=3000,
        noise_v=noise_v,
        seed=2,
        width=WIDTH,
    )
    dis = dis.with_columns(pl.col("time_s") + ch["time_s"][-1] + 10.0)
    return pl.concat([ch, rest, dis]).with_columns(pl.lit(1).alias("cycle_index"))


def test_two_logistic_plateaus_give_two_peaks_at_their_voltages_with_their_capacities():
    results = dqdv_cycles(_cycle(), cycle_indices=[1])
    assert [r.direction for r in results] == ["charge", "discharge"]
    for result, plateaus, sign in ((results[0], CHARGE, 1), (results[1], DISCHARGE, -1)):
        assert result.capacity_mah == pytest.approx(1.6 + 0.02 * 0.9, rel=1e-4)  # tails
        # the grid keeps the integral: dQ/dV over V is the half cycle's capacity
        assert result.integral_mah == pytest.approx(result.capacity_mah, rel=1e-9)
        assert len(result.peaks) == 2
        for peak, (centre, cap) in zip(result.peaks, plateaus, strict=True):
            assert peak.voltage_v == pytest.approx(centre, abs=0.005)
            assert peak.area_mah == pytest.approx(cap, rel=0.02)  # + a little background
            assert sign * peak.dqdv_mah_per_v > 0
            assert abs(peak.dqdv_mah_per_v) == pytest.approx(cap / (4 * WIDTH), rel=0.05)


def test_dvdq_is_the_inverse_slope_on_a_capacity_grid():
    charge = dqdv_cycles(_cycle(noise_v=0.0), cycle_indices=[1])[0]
    q, dvdq = charge.capacity_grid_mah, charge.dvdq_v_per_mah
    assert q[0] == 0 and q[-1] == pytest.approx(charge.capacity_mah)
    # the middle of the first plateau (Q = 0.5 mAh + background) is a minimum of dV/dQ:
    # dV/dQ = 1/(dQ/dV) = 4 width / capacity there
    mid = min(range(len(q)), key=lambda k: abs(q[k] - 0.5 - 0.02 * 0.3))
    assert dvdq[mid] == pytest.approx(4 * WIDTH / 1.0, rel=0.1)


def test_noise_that_reverses_voltage_does_not_break_the_integral_or_add_peaks():
    noisy = dqdv_cycles(_cycle(noise_v=2e-3), cycle_indices=[1])
    for r in noisy:
        assert r.integral_mah == pytest.approx(r.capacity_mah, rel=1e-9)
        assert len(r.peaks) == 2


def test_method_names_its_parameters():
    method = DqdvParams(step_v=0.002, window=15).method()
    assert method["params"]["step_v"] == 0.002
    assert "2 mV" in method["grid"] and "window 15 bins (30 mV)" in method["smoothing"]
    assert "isotonic" in method["monotonic"]


def test_a_cycle_without_current_gives_nothing():
    frame = _cycle().with_columns(pl.lit(0.0).alias("current_a"))
    assert dqdv_cycles(frame, cycle_indices=[1]) == []
    assert dqdv_cycles(_cycle(), cycle_indices=[2]) == []
