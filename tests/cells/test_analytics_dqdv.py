"""dQ/dV and dV/dQ: synthetic half cycles with known peaks (with noise, quantised and repeated
voltages and a constant-voltage hold), and real cycler files of five vendors, which must not
be spiky."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from cells.analytics.dqdv import DqdvParams, HalfCycleDqdv, dqdv_cycles
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext
from lims.ingestion.registry import detect_parser
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
        assert result.cv_capacity_mah == 0 and result.cv_voltage_v is None  # no CV hold
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
    method = DqdvParams(step_v=0.001, sigma_v=0.015).method()
    assert method["params"]["step_v"] == 0.001 and method["params"]["sigma_v"] == 0.015
    assert "1 mV" in method["grid"]
    assert "Gaussian, sigma 15 mV (FWHM 35.3 mV)" in method["smoothing"]
    assert "isotonic" in method["monotonic"] and "2 mV" in method["cv_hold"]


def test_a_cycle_without_current_gives_nothing():
    frame = _cycle().with_columns(pl.lit(0.0).alias("current_a"))
    assert dqdv_cycles(frame, cycle_indices=[1]) == []
    assert dqdv_cycles(_cycle(), cycle_indices=[2]) == []


# -- not spiky: what the method guarantees, checked on synthetic and real half cycles ---------


def _sharpness(curve: HalfCycleDqdv, sigma_v: float) -> float:
    """max |d2(dQ/dV)/dV2| x sigma^2 / max |dQ/dV|. A Gaussian of ``sigma_v`` reaches 1 on a
    single spike and stays below it on anything smoother, so a value above 1 is a feature
    sharper than the smoothing the plot declares: a spike."""
    y = np.asarray(curve.dqdv_mah_per_v)
    step = curve.voltage_v[1] - curve.voltage_v[0]
    return float(np.abs(np.diff(y, 2)).max() / step**2 * sigma_v**2 / np.abs(y).max())


def _wrong_sign(curve: HalfCycleDqdv) -> float:
    """The largest excursion of the wrong sign (negative on charge), relative to the peak."""
    y = np.asarray(curve.dqdv_mah_per_v) * (1 if curve.direction == "charge" else -1)
    return float(max(0.0, -y.min()) / y.max())


def _assert_not_spiky(curve: HalfCycleDqdv, label: str) -> None:
    sigma = DqdvParams().sigma_v
    assert _wrong_sign(curve) <= 1e-9, f"{label}: a lobe of the wrong sign"
    assert _sharpness(curve, sigma) <= 1.0, f"{label}: sharper than the smoothing (a spike)"
    # the curve holds the capacity without the CV hold, exactly
    assert curve.integral_mah + curve.cv_capacity_mah == pytest.approx(
        curve.capacity_mah, rel=1e-9
    ), label


def _with_cv_hold(frame: pl.DataFrame, *, volts: float, hold_mah: float, rows: int) -> pl.DataFrame:
    """A constant-voltage hold after the charge: |I| decays exponentially at ``volts`` (with
    0.3 mV noise) for four time constants, ``hold_mah`` x (1 - e^-4) more; the counter goes
    on. (Below 1 % of the current it would be a rest.)"""
    ch = frame.filter(pl.col("current_a") > 0)
    i0 = float(ch["current_a"][-1])
    tau = hold_mah / 1000 * 3600 / i0  # s: the integral of i0 exp(-t/tau) is i0 tau
    t = np.linspace(0, 4 * tau, rows)
    current = i0 * np.exp(-t / tau)
    q = float(ch["charge_capacity_ah"][-1]) + i0 * tau * (1 - np.exp(-t / tau)) / 3600
    noise = np.random.default_rng(3).normal(0, 3e-4, rows)
    hold = pl.DataFrame(
        {
            "time_s": float(ch["time_s"][-1]) + 1.0 + t,
            "current_a": current,
            "voltage_v": volts + noise,
            "charge_capacity_ah": q,
            "discharge_capacity_ah": np.zeros(rows),
            "cycle_index": np.ones(rows, dtype=np.int32),
        }
    )
    rest = frame.filter(pl.col("current_a") <= 0)
    return pl.concat([ch, hold, rest], how="vertical_relaxed")


def test_a_constant_voltage_hold_is_split_off_and_reported_not_drawn_as_a_spike():
    hold_mah = 0.4  # a quarter of the CC charge, all of it at 4.3 V
    frame = _with_cv_hold(_cycle(), volts=4.3, hold_mah=hold_mah, rows=400)
    charge, discharge = dqdv_cycles(frame, cycle_indices=[1])
    expected = hold_mah * (1 - np.exp(-4.0))
    assert charge.capacity_mah == pytest.approx(1.618 + expected, rel=1e-4)
    # the hold, plus the last CC rows already within 2 mV of 4.3 V (where V(Q) is flat)
    assert charge.cv_capacity_mah == pytest.approx(expected, rel=3e-3)
    assert charge.cv_voltage_v == pytest.approx(4.3, abs=2e-4)
    assert charge.cv_rows >= 400
    assert charge.integral_mah == pytest.approx(1.618, rel=3e-3)
    # the plateaus are what they were without the hold; nothing grows at 4.3 V
    assert [round(p.voltage_v, 2) for p in charge.peaks] == [3.70, 4.00]
    volts = np.asarray(charge.voltage_v)
    near_cut = np.abs(volts - 4.3) < 0.02
    assert np.asarray(charge.dqdv_mah_per_v)[near_cut].max() < 0.05 * charge.peaks[1].dqdv_mah_per_v
    _assert_not_spiky(charge, "charge with CV hold")
    assert discharge.cv_capacity_mah == 0  # a constant-current end is not a hold


def test_quantised_and_repeated_voltages_do_not_make_spikes():
    """An ADC that resolves 1 mV, every row logged twice, and 4 mV noise that runs
    backwards: the same two peaks, no spike, the whole capacity."""
    frame = _cycle(noise_v=4e-3).with_columns(pl.col("voltage_v").round(3))
    frame = pl.concat([frame, frame]).sort("time_s", maintain_order=True)
    for r in dqdv_cycles(frame, cycle_indices=[1]):
        plateaus = CHARGE if r.direction == "charge" else DISCHARGE
        assert [p.voltage_v for p in r.peaks] == pytest.approx([c for c, _ in plateaus], abs=0.01)
        _assert_not_spiky(r, f"quantised {r.direction}")


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cycler"
HALVES = ("charge", "discharge")
# (file, cycles, half cycles that end in a CV hold): five vendors, cathodes, an anode half
# cell (graphite, 0.05-1 V) and a Na-ion cathode with many sharp plateaus (the .mpr)
REAL = [
    ("biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr", [2, 3], set()),
    ("arbin/navani_arbin_example.res", [1, 2], set()),
    ("arbin/bdtk_arbin_example.csv", [1, 2], {(n, d) for n in (1, 2) for d in HALVES}),
    ("arbin/navani_bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx", [1], set()),
    ("neware/navani_test.ndax", [1], {(1, d) for d in HALVES}),
    ("neware/cellpy_neware_uio.csv", [1, 3], set()),
    ("maccor/beep_xTESLADIAG_000038con.078", [1, 2], {(1, "charge"), (2, "charge")}),
]


def _series(relative: str) -> pl.DataFrame:
    path = FIXTURES / relative
    with path.open("rb") as fh:
        parser = detect_parser(fh.read(SNIFF_BYTES), path.name, kind="cycler")
    assert parser is not None, relative
    series = parser.parse(path, ParseContext(filename=path.name)).series.collect()
    first = series["cycle"].min()
    return series.with_columns((pl.col("cycle") - first + 1).alias("cycle_index"))


@pytest.mark.parametrize(("relative", "cycles", "holds"), REAL, ids=[r[0] for r in REAL])
def test_real_files_give_dqdv_without_spikes(relative, cycles, holds):
    """Method version 1 (Savitzky-Golay, 55 mV window) failed this on all 24 half cycles: lobes
    of the wrong sign of 0.4-38 % of the peak (the .mpr: 7-10 %), and on 12 of them (six
    files) features up to 2.2 times sharper than the smoothing declared here (a CV hold drawn
    as a spike at the cut-off). Version 2 stays at or below 0.95 of that bound."""
    series = _series(relative)
    curves = dqdv_cycles(series, cycle_indices=cycles)
    assert len(curves) == 2 * len(cycles)
    for curve in curves:
        label = f"{relative} cycle {curve.cycle_index} {curve.direction}"
        _assert_not_spiky(curve, label)
        assert curve.peaks, label
        if (curve.cycle_index, curve.direction) in holds:
            assert curve.cv_capacity_mah > 0.01 * curve.capacity_mah, label
            part = series.filter(pl.col("cycle_index") == curve.cycle_index)
            sign = 1 if curve.direction == "charge" else -1
            last = part.filter(pl.col("current_a") * sign > 0)["voltage_v"][-1]
            assert curve.cv_voltage_v == pytest.approx(last, abs=2e-3), label
        else:
            assert curve.cv_capacity_mah == 0 and curve.cv_rows == 0, label
