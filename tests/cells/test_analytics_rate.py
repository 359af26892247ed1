"""Rate capability on a generated series of rate steps."""

from __future__ import annotations

import polars as pl
import pytest

from cells.analytics.rate import cycle_currents, rate_steps
from tests.cells.analytics_data import rate_series

NOMINAL = 2.0  # mAh
# (discharge C-rate, cycles, discharge capacity mAh per cycle)
STEPS = [(0.1, 3, 1.9), (0.5, 3, 1.7), (1.0, 2, 1.4), (2.0, 2, 1.0), (0.1, 2, 1.85)]


def _cycles() -> list[dict]:
    series = rate_series(STEPS, nominal_mah=NOMINAL)
    currents = cycle_currents(series)
    caps = {c: d for c, d in enumerate((cap for _, n, cap in STEPS for _ in range(n)), start=1)}
    return [
        {
            **row,
            "charge_mah": NOMINAL,
            "discharge_mah": caps[row["cycle_index"]],
            "discharge_mah_g": caps[row["cycle_index"]] / 0.01,
        }
        for row in currents.to_dicts()
    ]


def test_currents_per_cycle_are_the_programmed_ones():
    cycles = _cycles()
    assert len(cycles) == 12
    expected = [rate * NOMINAL for rate, n, _ in STEPS for _ in range(n)]
    assert [c["discharge_current_ma"] for c in cycles] == pytest.approx(expected, rel=1e-9)
    assert [c["charge_current_ma"] for c in cycles] == pytest.approx([0.1 * NOMINAL] * 12)
    # durations: capacity / current (the rest rows are not counted)
    assert cycles[0]["charge_duration_s"] == pytest.approx(NOMINAL / (0.1 * NOMINAL) * 3600)


def test_rate_steps_group_consecutive_cycles_and_report_capacity():
    result = rate_steps(_cycles(), nominal_mah=NOMINAL)
    steps = result.steps
    assert [(s.first_cycle, s.last_cycle, s.cycles) for s in steps] == [
        (1, 3, 3),
        (4, 6, 3),
        (7, 8, 2),
        (9, 10, 2),
        (11, 12, 2),
    ]
    assert [s.c_rate for s in steps] == pytest.approx([r for r, _, _ in STEPS])
    assert [s.capacity_mean_mah for s in steps] == pytest.approx([c for *_, c in STEPS])
    assert steps[0].capacity_first_mah == 1.9 and steps[0].capacity_last_mah == 1.9
    assert steps[1].capacity_mean_mah_g == pytest.approx(170.0)
    assert result.per_cycle[3]["discharge_c_rate"] == pytest.approx(0.5)
    assert result.per_cycle[3]["charge_c_rate"] == pytest.approx(0.1)
    assert "2 mAh" in result.method["c_rate"]


def test_first_and_last_differ_within_a_fading_step():
    cycles = _cycles()
    for k, cap in zip((3, 4, 5), (1.75, 1.7, 1.65), strict=True):
        cycles[k]["discharge_mah"] = cap
    step = rate_steps(cycles, nominal_mah=NOMINAL).steps[1]
    assert (step.capacity_first_mah, step.capacity_last_mah) == (1.75, 1.65)
    assert step.capacity_mean_mah == pytest.approx(1.7)


def test_a_small_drift_stays_in_the_step_and_no_nominal_means_no_c_rate():
    cycles = _cycles()
    cycles[1]["discharge_current_ma"] *= 1.05  # within the 10 % tolerance
    result = rate_steps(cycles, nominal_mah=None)
    assert [s.cycles for s in result.steps] == [3, 3, 2, 2, 2]
    assert all(s.c_rate is None for s in result.steps)
    assert "no nominal capacity" in result.method["c_rate"]


def test_a_cycle_without_discharge_breaks_the_step():
    series = rate_series(STEPS[:1], nominal_mah=NOMINAL)
    series = series.filter(~((pl.col("cycle_index") == 2) & (pl.col("current_a") < 0)))
    currents = cycle_currents(series).to_dicts()
    assert currents[1]["discharge_current_ma"] is None
    cycles = [{**c, "charge_mah": 2.0, "discharge_mah": 1.9} for c in currents]
    result = rate_steps(cycles, nominal_mah=NOMINAL)
    assert [(s.first_cycle, s.last_cycle) for s in result.steps] == [(1, 1), (3, 3)]
