"""Pure recipe expansion: counts, order, durations, thickness, composition, speed."""

from __future__ import annotations

import itertools
import time
from collections import Counter

import pytest

from depositions.expansion import (
    BlockSpec,
    ExpansionError,
    RecipeSpec,
    StepSpec,
    SubCycleSpec,
    composition_hint,
    expected_thickness,
    iter_steps,
    planned_duration_s,
    pulses_per_source,
    step_count,
    subcycle_counts,
    summary,
)


def binary(name: str, metal: str, metal_s: float, gpc: float | None) -> SubCycleSpec:
    return SubCycleSpec(
        name=name,
        gpc_angstrom=gpc,
        steps=(
            StepSpec(1, "pulse", metal, metal_s),
            StepSpec(2, "purge", "N2", 10.0),
            StepSpec(3, "pulse", "H2O", 0.1),
            StepSpec(4, "purge", "N2", 10.0),
        ),
    )


LI = binary("Li2O", "LiOtBu", 2.0, 0.5)
NB = binary("Nb2O5", "Nb(OEt)5", 3.0, 0.4)


def linbox(repeats: int = 5) -> RecipeSpec:
    return RecipeSpec(
        subcycles=(LI, NB),
        blocks=(BlockSpec("Li2O", 1), BlockSpec("Nb2O5", 4)),
        repeats=repeats,
    )


def al2o3(repeats: int = 100, **kw) -> RecipeSpec:
    sc = SubCycleSpec(
        name="Al2O3",
        gpc_angstrom=1.1,
        steps=(
            StepSpec(1, "pulse", "TMA", 0.015),
            StepSpec(2, "purge", "N2", 20.0),
            StepSpec(3, "pulse", "H2O", 0.015),
            StepSpec(4, "purge", "N2", 20.0),
        ),
    )
    return RecipeSpec(subcycles=(sc,), blocks=(BlockSpec("Al2O3", 1),), repeats=repeats, **kw)


def test_linbox_expands_to_5_li_20_nb_25_water_pulses():
    spec = linbox()
    walked = Counter(s.source_label for s in iter_steps(spec) if s.kind == "pulse")
    assert walked == {"LiOtBu": 5, "Nb(OEt)5": 20, "H2O": 25}
    assert pulses_per_source(spec) == {"LiOtBu": 5, "H2O": 25, "Nb(OEt)5": 20}
    assert subcycle_counts(spec) == {"Li2O": 5, "Nb2O5": 20}


def test_sequence_order_and_indices():
    steps = list(iter_steps(linbox()))
    assert len(steps) == step_count(linbox()) == 5 * (1 + 4) * 4
    first_super = steps[:20]
    # one Li2O sub-cycle, then Nb2O5 four times
    assert [s.subcycle for s in first_super[::4]] == ["Li2O", "Nb2O5", "Nb2O5", "Nb2O5", "Nb2O5"]
    assert [s.repetition for s in first_super[4::4]] == [0, 1, 2, 3]
    assert {s.block for s in first_super[:4]} == {0} and {s.block for s in first_super[4:]} == {1}
    last = steps[-1]
    assert (last.supercycle, last.block, last.subcycle, last.repetition) == (4, 1, "Nb2O5", 3)
    assert (last.order, last.kind, last.source_label) == (4, "purge", "N2")
    # offsets are contiguous: every step starts where the previous one ended
    for before, after in itertools.pairwise(steps):
        assert after.start_s == pytest.approx(before.start_s + before.duration_s, abs=1e-6)
    assert steps[0].start_s == 0.0


def test_binary_al2o3_times_100():
    spec = al2o3()
    assert pulses_per_source(spec) == {"TMA": 100, "H2O": 100}
    assert planned_duration_s(spec) == pytest.approx(100 * 40.03)
    thickness = expected_thickness(spec)
    assert thickness.total_nm == pytest.approx(11.0)  # 100 x 1.1 Å
    assert composition_hint(spec).text == "Al2O3 = 1"


def test_expected_thickness_is_sum_of_count_times_gpc():
    thickness = expected_thickness(linbox())
    # 5 x 0.5 Å + 20 x 0.4 Å = 10.5 Å
    assert thickness.by_subcycle_nm == {"Li2O": pytest.approx(0.25), "Nb2O5": pytest.approx(0.8)}
    assert thickness.total_nm == pytest.approx(1.05)
    assert summary(linbox())["expected_gpc_angstrom_per_supercycle"] == pytest.approx(2.1)


def test_missing_gpc_gives_no_total_but_says_which():
    spec = RecipeSpec(
        subcycles=(LI, binary("Nb2O5", "Nb(OEt)5", 3.0, None)),
        blocks=(BlockSpec("Li2O", 1), BlockSpec("Nb2O5", 4)),
        repeats=5,
    )
    thickness = expected_thickness(spec)
    assert thickness.total_nm is None
    assert thickness.missing_gpc == ["Nb2O5"]
    assert thickness.known_nm == pytest.approx(0.25)


def test_a_purge_only_subcycle_needs_no_gpc():
    """A long purge between blocks is a sub-cycle without doses: it grows nothing."""
    purge = SubCycleSpec("long purge", (StepSpec(1, "purge", "", 300.0),))
    spec = RecipeSpec(
        subcycles=(binary("Al2O3", "TMA", 0.1, 1.1), purge),
        blocks=(BlockSpec("Al2O3", 50), BlockSpec("long purge", 1), BlockSpec("Al2O3", 20)),
        repeats=1,
    )
    thickness = expected_thickness(spec)
    assert thickness.missing_gpc == []
    assert thickness.by_subcycle_nm["long purge"] == 0.0
    assert thickness.total_nm == pytest.approx(7.7)  # 70 x 1.1 Å


def test_planned_duration_includes_pre_and_post_steps():
    spec = al2o3(
        pre_steps=(StepSpec(1, "wait", "", 60.0), StepSpec(2, "pulse", "TMA", 0.5)),
        post_steps=(StepSpec(1, "purge", "N2", 120.0),),
    )
    assert planned_duration_s(spec) == pytest.approx(60 + 0.5 + 4003 + 120)
    assert pulses_per_source(spec)["TMA"] == 101  # the nucleation pre-pulse counts
    steps = list(iter_steps(spec))
    assert steps[0].phase == "pre" and steps[0].supercycle is None
    assert steps[2].phase == "cycle" and steps[2].start_s == pytest.approx(60.5)
    assert steps[-1].phase == "post" and steps[-1].start_s == pytest.approx(60.5 + 4003)


def test_stop_flow_counts_fills_not_holds_and_plasma_counts():
    sc = SubCycleSpec(
        name="x",
        steps=(
            StepSpec(1, "fill", "TMA", 0.1),
            StepSpec(2, "exposure", "TMA", 5.0),
            StepSpec(3, "purge", "Ar", 10.0),
            StepSpec(4, "plasma", "O2 plasma", 4.0, plasma_power_w=300.0),
            StepSpec(5, "purge", "Ar", 10.0),
        ),
    )
    spec = RecipeSpec(subcycles=(sc,), blocks=(BlockSpec("x", 1),), repeats=3)
    assert pulses_per_source(spec) == {"TMA": 3, "O2 plasma": 3}


def test_composition_hint_is_subcycle_ratio():
    hint = composition_hint(linbox())
    assert hint.per_supercycle == {"Li2O": 1, "Nb2O5": 4}
    assert hint.fractions == {"Li2O": 0.2, "Nb2O5": 0.8}
    assert hint.text == "Li2O:Nb2O5 = 1:4"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"blocks": (BlockSpec("nope", 1),)}, "unknown sub-cycle"),
        ({"blocks": (BlockSpec("Li2O", 0),)}, "at least once"),
        ({"blocks": ()}, "at least one supercycle block"),
        ({"repeats": 0}, "repeat at least once"),
    ],
)
def test_invalid_structures_are_refused(kwargs, message):
    base = {"subcycles": (LI, NB), "blocks": (BlockSpec("Li2O", 1),), "repeats": 1}
    with pytest.raises(ExpansionError, match=message):
        RecipeSpec(**{**base, **kwargs})


def test_dose_step_without_source_is_refused():
    sc = SubCycleSpec(name="bad", steps=(StepSpec(1, "pulse", " ", 0.1),))
    with pytest.raises(ExpansionError, match="names no source"):
        RecipeSpec(subcycles=(sc,), blocks=(BlockSpec("bad", 1),), repeats=1)


def test_2000_cycles_counts_are_arithmetic_and_the_generator_streams():
    spec = linbox(repeats=2000)
    started = time.perf_counter()
    result = summary(spec)
    assert time.perf_counter() - started < 0.05
    assert result["pulses_per_source"] == {"LiOtBu": 2000, "H2O": 10000, "Nb(OEt)5": 8000}
    assert result["planned_duration_s"] == pytest.approx(2000 * (22.1 + 4 * 23.1))
    # the generator yields lazily: the first steps come without building the sequence
    gen = iter_steps(spec)
    assert next(gen).source_label == "LiOtBu"
    last = None
    for last in iter_steps(spec):  # noqa: B007 - walk to the end once
        pass
    assert last is not None and last.supercycle == 1999
    assert last.start_s + last.duration_s == pytest.approx(result["planned_duration_s"])


def test_snapshot_round_trip():
    spec = al2o3(pre_steps=(StepSpec(1, "wait", "", 60.0),))
    again = RecipeSpec.from_dict(spec.to_dict())
    assert again == spec
    assert summary(again) == summary(spec)
