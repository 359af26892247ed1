"""Pure powder dose check: short, ok and unknown, with the numbers behind each."""

from __future__ import annotations

import pytest

from depositions.dose import (
    AVOGADRO,
    DEFAULT_SITE_DENSITY_PER_M2,
    LoadArea,
    dose_check,
    required_umol,
)
from depositions.expansion import BlockSpec, RecipeSpec, StepSpec, SubCycleSpec


def al2o3(repeats: int = 100) -> RecipeSpec:
    sc = SubCycleSpec(
        name="Al2O3",
        steps=(
            StepSpec(1, "pulse", "TMA", 0.5),
            StepSpec(2, "purge", "N2", 30.0),
            StepSpec(3, "pulse", "H2O", 0.5),
            StepSpec(4, "purge", "N2", 30.0),
        ),
    )
    return RecipeSpec(subcycles=(sc,), blocks=(BlockSpec("Al2O3", 1),), repeats=repeats)


POWDER = [LoadArea("NMC-001", mass_g=10.0, bet_m2_g=0.5)]  # 5 m²


def test_required_dose_from_area_and_site_density():
    need = required_umol(area_m2=5.0, site_density_per_m2=DEFAULT_SITE_DENSITY_PER_M2)
    assert need == pytest.approx(5.0 * 5e18 / AVOGADRO * 1e6)  # ~41.5 µmol
    assert 41 < need < 42


def test_short_dose_is_flagged_with_the_numbers():
    report = dose_check(spec=al2o3(), loads=POWDER, dose_umol_per_pulse={"TMA": 20, "H2O": 500})
    by_source = {line.source_label: line for line in report.lines}
    assert report.total_area_m2 == pytest.approx(5.0)
    assert by_source["TMA"].status == "short"
    assert "needed for 5 m²" in by_source["TMA"].reason
    assert by_source["TMA"].ratio == pytest.approx(20 / report.required_umol_per_dose)
    assert by_source["H2O"].status == "ok"
    assert report.status == "short"
    assert report.consumption_umol == {"TMA": 2000.0, "H2O": 50000.0}


def test_enough_dose_passes_and_safety_factor_is_configurable():
    ok = dose_check(spec=al2o3(), loads=POWDER, dose_umol_per_pulse={"TMA": 90, "H2O": 90})
    assert ok.status == "ok"  # 90 >= 41.5 x 2
    strict = dose_check(
        spec=al2o3(), loads=POWDER, dose_umol_per_pulse={"TMA": 90, "H2O": 90}, safety_factor=3
    )
    assert strict.status == "short"


def test_unknown_calibration_says_unknown_rather_than_guessing():
    report = dose_check(spec=al2o3(), loads=POWDER, dose_umol_per_pulse={"H2O": 500})
    tma = next(line for line in report.lines if line.source_label == "TMA")
    assert tma.status == "unknown" and "no dose calibration for TMA" in tma.reason
    assert tma.delivered_umol is None
    assert report.status == "unknown"


def test_unknown_area_says_which_load():
    loads = [*POWDER, LoadArea("LCO-002", mass_g=5.0, bet_m2_g=None)]
    report = dose_check(spec=al2o3(), loads=loads, dose_umol_per_pulse={"TMA": 1e6, "H2O": 1e6})
    assert report.total_area_m2 is None
    assert {line.status for line in report.lines} == {"unknown"}
    assert "LCO-002" in report.lines[0].reason


def test_no_powder_load_is_unknown():
    report = dose_check(spec=al2o3(), loads=[], dose_umol_per_pulse={"TMA": 20, "H2O": 20})
    assert report.status == "unknown"
    assert report.lines[0].reason == "no product powder load in the run"


def test_multi_pulse_doses_add_up_and_plasma_is_not_estimated():
    sc = SubCycleSpec(
        name="AlN",
        steps=(
            StepSpec(1, "pulse", "TMA", 0.1),
            StepSpec(2, "pulse", "TMA", 0.1),
            StepSpec(3, "purge", "Ar", 10.0),
            StepSpec(4, "plasma", "N2 plasma", 10.0, plasma_power_w=300.0),
        ),
    )
    spec = RecipeSpec(subcycles=(sc,), blocks=(BlockSpec("AlN", 1),), repeats=10)
    report = dose_check(spec=spec, loads=POWDER, dose_umol_per_pulse={"TMA": 45, "N2 plasma": 1})
    by_source = {line.source_label: line for line in report.lines}
    assert by_source["TMA"].doses_per_subcycle == 2
    assert by_source["TMA"].delivered_umol == 90 and by_source["TMA"].status == "ok"
    assert by_source["N2 plasma"].status == "unknown"
