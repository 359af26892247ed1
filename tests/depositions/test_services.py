"""Deposition services and selectors on the database: recipes, runs, lineage, bottles, GPC."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from depositions import selectors, services
from depositions.furnace import selectors as furnace_selectors
from depositions.inputs import (
    AnnealInput,
    BlockInput,
    LoadOutput,
    SegmentInput,
    StepInput,
    SubCycleInput,
)
from depositions.models import (
    ProcessReference,
    Recipe,
    RunPrecursor,
    SourceInstallation,
)
from depositions.references import read_rows
from lims.models import OutboxEvent
from samples import selectors as sample_selectors
from samples import services as sample_services
from samples.models import Sample
from samples.services import OutputSpec
from tests.depositions.factories import make_al2o3, make_linbox

pytestmark = pytest.mark.django_db
T0 = timezone.now().replace(microsecond=0) - timedelta(days=30)


def _run(project, tool, recipe, code="R-001", **kw):
    return services.run_create(project=project, code=code, tool=tool, recipe=recipe, **kw)


# --- reference data ------------------------------------------------------------------------


def test_reference_processes_are_seeded_with_their_source_and_reload_is_idempotent():
    rows = read_rows()
    assert ProcessReference.objects.count() == len(rows) == 20
    al2o3 = ProcessReference.objects.get(key="al2o3-tma-h2o")
    assert (al2o3.gpc_min_angstrom, al2o3.gpc_max_angstrom) == (Decimal("1.0"), Decimal("1.1"))
    lipon = ProcessReference.objects.get(key="lipon-liotbu-tmp-n2plasma")
    assert lipon.ionic_conductivity_s_cm == pytest.approx(3.0e-7)
    assert "pairing approximate" in lipon.source
    assert all(ref.source for ref in ProcessReference.objects.all())
    # a staff edit survives a reload; --update overwrites it
    services.process_reference_save(reference=al2o3, notes="checked against our own XRR")
    assert services.process_references_load() == (0, 0)
    assert ProcessReference.objects.get(key="al2o3-tma-h2o").notes == "checked against our own XRR"
    assert services.process_references_load(update=True) == (0, 20)
    assert ProcessReference.objects.get(key="al2o3-tma-h2o").notes == ""
    out = StringIO()
    call_command("depositions_load_references", stdout=out)
    assert out.getvalue().strip() == "process references: 0 created, 0 updated"


# --- chemicals, ports, bottles --------------------------------------------------------------


def test_chemical_search_finds_synonyms_and_cas_is_checked(tma):
    assert list(selectors.chemical_list(filters={"q": "TMA"})) == [tma]
    assert list(selectors.chemical_list(filters={"q": "75-24-1"})) == [tma]
    assert not selectors.chemical_list(filters={"q": "TEMAZr"}).exists()
    with pytest.raises(ValidationError, match="check digit"):
        services.chemical_create(name="water", state="liquid", cas_number="7732-18-4")
    assert services.chemical_create(name="water", state="liquid", cas_number="7732-18-5")


def test_install_history_and_lot_on_port_at_time(project, ald_tool, tma, tma_bottle):
    port = ald_tool.sources.get(label="P1")
    lot_b, _ = sample_services.lot_receive(
        project=project,
        material=tma_bottle.material_lot.material,
        lot_number="TMA-2026-02",
        quantity=Decimal("50"),
    )
    bottle_b = services.precursor_lot_create(material_lot=lot_b, chemical=tma, bottle_label="B-018")
    services.source_install(tool_source=port, precursor_lot=tma_bottle, installed_at=T0)
    services.source_install(
        tool_source=port, precursor_lot=bottle_b, installed_at=T0 + timedelta(days=10)
    )
    first = SourceInstallation.objects.get(precursor_lot=tma_bottle)
    assert first.removed_at == T0 + timedelta(days=10)
    assert selectors.lot_on_port_at(tool_source=port, at=T0 - timedelta(hours=1)) is None
    assert selectors.lot_on_port_at(tool_source=port, at=T0 + timedelta(days=1)) == tma_bottle
    assert selectors.lot_on_port_at(tool_source=port, at=T0 + timedelta(days=10)) == bottle_b
    tma_bottle.refresh_from_db()
    assert tma_bottle.status == "in_use" and tma_bottle.opened_on == T0.date()
    with pytest.raises(ValidationError, match="time order"):
        services.source_install(
            tool_source=port, precursor_lot=tma_bottle, installed_at=T0 + timedelta(days=5)
        )


def test_runs_that_used_a_bottle(project, user, ald_tool, tma, tma_bottle):
    port = ald_tool.sources.get(label="P1")
    lot_b, _ = sample_services.lot_receive(
        project=project,
        material=tma_bottle.material_lot.material,
        lot_number="TMA-2026-03",
        quantity=Decimal("50"),
    )
    bottle_b = services.precursor_lot_create(material_lot=lot_b, chemical=tma, bottle_label="B-019")
    recipe = make_al2o3(project)
    services.source_install(tool_source=port, precursor_lot=tma_bottle, installed_at=T0)
    r1 = _run(project, ald_tool, recipe, "R-1", started_at=T0 + timedelta(hours=1))
    r2 = _run(project, ald_tool, recipe, "R-2", started_at=T0 + timedelta(hours=2))
    services.source_install(
        tool_source=port, precursor_lot=bottle_b, installed_at=T0 + timedelta(days=1)
    )
    r3 = _run(project, ald_tool, recipe, "R-3")  # planned now: bottle B is on the port
    assert RunPrecursor.objects.get(run=r3).precursor_lot == bottle_b
    used_a = selectors.runs_for_precursor_lot(user=user, lot=tma_bottle)
    assert {r.code for r in used_a} == {r1.code, r2.code}
    assert [r.code for r in selectors.runs_for_precursor_lot(user=user, lot=bottle_b)] == ["R-3"]


# --- recipes ----------------------------------------------------------------------------------


def test_recipe_structure_round_trips_through_the_database(project):
    recipe = make_linbox(project)
    summary = selectors.recipe_summary(recipe=recipe)
    assert summary["pulses_per_source"] == {"LiOtBu": 5, "H2O": 25, "Nb(OEt)5": 20}
    assert summary["composition"]["text"] == "Li2O:Nb2O5 = 1:4"
    assert summary["expected_thickness_nm"] == pytest.approx(1.05)
    # (2 + 10 + 0.1 + 10) + 4 x (3 + 10 + 0.1 + 10) = 114.5 s per supercycle
    assert summary["planned_duration_s"] == pytest.approx(5 * 114.5)


def test_expected_thickness_from_the_reference_gpc(project):
    ref = ProcessReference.objects.get(key="al2o3-tma-h2o")
    recipe = make_al2o3(project, gpc=str(ref.gpc_max_angstrom), process_reference=ref)
    assert selectors.recipe_summary(recipe=recipe)["expected_thickness_nm"] == pytest.approx(11.0)


def test_unfrozen_recipe_can_be_edited(project):
    recipe = make_al2o3(project)
    recipe = services.recipe_update(recipe=recipe, supercycle_repeats=250, notes="thicker")
    assert selectors.recipe_summary(recipe=recipe)["pulses_per_source"] == {"TMA": 250, "H2O": 250}
    with pytest.raises(ValidationError, match="unknown sub-cycle"):
        services.recipe_update(
            recipe=recipe,
            blocks=[BlockInput("ZnO", 1)],
        )


def test_frozen_recipe_refuses_edits_and_a_new_version_carries_the_change(project, ald_tool):
    v1 = make_linbox(project)
    run = _run(project, ald_tool, v1)
    v1.refresh_from_db()
    assert v1.frozen and v1.frozen_at is not None
    with pytest.raises(ValidationError, match="frozen"):
        services.recipe_update(recipe=v1, supercycle_repeats=10)
    v2 = services.recipe_new_version(recipe=v1, notes="double thickness", supercycle_repeats=10)
    assert (v2.version, v2.frozen, v2.previous_version) == (2, False, v1)
    assert v2.deposition_temperature_c == v1.deposition_temperature_c
    summary = selectors.recipe_summary(recipe=v2)
    assert summary["pulses_per_source"] == {"LiOtBu": 10, "H2O": 50, "Nb(OEt)5": 40}
    services.recipe_update(recipe=v2, notes="still editable")
    # v1 and the run's snapshot are what the run used
    assert selectors.recipe_summary(recipe=Recipe.objects.get(pk=v1.pk))["supercycle_repeats"] == 5
    assert run.recipe_snapshot["summary"]["pulses_per_source"]["LiOtBu"] == 5
    assert run.recipe_snapshot["recipe"]["version"] == 1
    assert services.recipe_new_version(recipe=v1).version == 3


# --- runs and lineage ---------------------------------------------------------------------------


def test_run_completion_debits_inputs_and_produces_coated_outputs(
    project, user, ald_tool, nmc, wafer
):
    run = _run(project, ald_tool, make_al2o3(project), operator=user)
    assert run.planned_cycles == 100 and run.setpoint_temperature_c == Decimal("150")
    powder = services.run_load_add(run=run, sample=nmc, mass_g=Decimal("4"), position="bed")
    witness = services.run_load_add(run=run, sample=wafer, role="witness")
    assert powder.quantity == Decimal("4") and powder.bet_m2_g == Decimal("0.5")
    assert witness.quantity == Decimal("1") and witness.area_cm2 == Decimal("4")
    services.run_start(run=run)
    done = services.run_complete(
        run=run, actual_cycles=100, outputs={witness.pk: LoadOutput(code="W-001-c")}
    )
    assert done.status == "completed" and done.operation is not None
    nmc.refresh_from_db()
    wafer.refresh_from_db()
    assert nmc.remaining == Decimal("6") and nmc.state == "as_received"
    assert wafer.remaining == 0 and wafer.state == "consumed"
    coated = Sample.objects.get(code="NMC-001.R-001")
    assert (coated.kind, coated.state, coated.quantity) == ("coated_powder", "coated", Decimal("4"))
    assert coated.material == nmc.material and coated.bet_m2_g == Decimal("0.5")
    coated_wafer = Sample.objects.get(code="W-001-c")
    assert (coated_wafer.kind, coated_wafer.unit) == ("wafer", "count")
    assert coated_wafer.material == wafer.material  # not the powder's material
    powder.refresh_from_db()
    assert powder.output_sample == coated
    graph = sample_selectors.lineage(sample=nmc)
    (op,) = graph.operations.values()
    assert (op.kind, op.label) == ("deposition", "R-001")
    assert {s.code for s in graph.samples.values()} >= {"NMC-001", "NMC-001.R-001", "W-001-c"}
    topics = set(OutboxEvent.objects.values_list("topic", flat=True))
    assert {"depositions.run.completed", "samples.operation.recorded"} <= topics
    with pytest.raises(ValidationError, match="completed"):
        services.run_complete(run=done)


def test_over_consumption_is_refused_and_nothing_is_written(project, ald_tool, nmc):
    run = _run(project, ald_tool, make_al2o3(project))
    services.run_load_add(run=run, sample=nmc, mass_g=Decimal("8"))
    sample_services.sample_split(
        sample=nmc, aliquots=[OutputSpec(code="NMC-001-a", kind="powder", quantity=Decimal("5"))]
    )
    with pytest.raises(ValidationError) as err:
        services.run_complete(run=run)
    assert "cannot take 8 g from NMC-001: only 5 g remain" in err.value.messages[0]
    run.refresh_from_db()
    nmc.refresh_from_db()
    assert run.status == "planned" and run.operation is None
    assert nmc.remaining == Decimal("5")
    assert not Sample.objects.filter(code="NMC-001.R-001").exists()


def test_run_rules(project, ald_tool, nmc):
    recipe = make_al2o3(project)
    with pytest.raises(ValidationError, match="chamber"):
        _run(project, ald_tool, recipe, chamber=2)
    with pytest.raises(ValidationError, match="barcode"):
        _run(project, ald_tool, recipe, code="R 1")
    run = _run(project, ald_tool, recipe)
    with pytest.raises(ValidationError, match="no loads"):
        services.run_complete(run=run)
    services.run_abort(run=run, reason="TMA line blocked")
    with pytest.raises(ValidationError, match="aborted"):
        services.run_load_add(run=run, sample=nmc, mass_g=Decimal("1"))


def test_dose_check_flags_a_short_tma_dose(project, ald_tool, nmc, wafer):
    run = _run(project, ald_tool, make_al2o3(project))
    services.run_load_add(run=run, sample=nmc, mass_g=Decimal("10"))  # 10 g x 0.5 m²/g = 5 m²
    services.run_load_add(run=run, sample=wafer, role="witness")
    report = selectors.run_dose_check(run=run)
    assert report["total_area_m2"] == pytest.approx(5.0)
    assert report["ports"] == {"TMA": "P1", "H2O": "P2"}
    lines = {line["source_label"]: line for line in report["lines"]}
    assert lines["TMA"]["status"] == "short"  # 20 µmol < 41.5 µmol x 2
    assert lines["H2O"]["status"] == "ok"
    assert report["status"] == "short"
    services.tool_source_update(source=ald_tool.sources.get(label="P1"), dose_umol_per_pulse=None)
    assert selectors.run_dose_check(run=run)["status"] == "unknown"


# --- measurements ---------------------------------------------------------------------------------


def test_measured_gpc_is_computed_on_read_with_provenance(project, ald_tool, wafer):
    ref = ProcessReference.objects.get(key="al2o3-tma-h2o")
    run = _run(project, ald_tool, make_al2o3(project, process_reference=ref))
    services.run_load_add(run=run, sample=wafer, role="witness")
    services.run_complete(run=run)
    witness = Sample.objects.get(code="W-001.R-001")
    thickness = services.thickness_measurement_add(
        sample=witness,
        method="ellipsometry",
        value_nm=Decimal("10.5"),
        uncertainty_nm=Decimal("0.2"),
        optical_model="Cauchy on Si",
    )
    assert thickness.run == run  # found from the lineage
    (gpc,) = selectors.run_gpc(run=run)
    assert gpc.gpc_angstrom == pytest.approx(1.05)
    assert gpc.gpc_uncertainty_angstrom == pytest.approx(0.02)
    assert (gpc.cycles, gpc.cycles_source, gpc.basis) == (100, "planned", "sub-cycle")
    assert gpc.expected_gpc_angstrom == pytest.approx(1.1)
    assert gpc.ratio_to_expected == pytest.approx(1.05 / 1.1)
    assert gpc.reference == "al2o3-tma-h2o" and gpc.reference_verdict == "within"
    # correct the cycle count: the GPC follows, nothing stored went stale
    run = services.run_update(run=run, actual_cycles=150)
    (gpc,) = selectors.run_gpc(run=run)
    assert (gpc.cycles, gpc.cycles_source) == (150, "actual")
    assert gpc.gpc_angstrom == pytest.approx(0.7) and gpc.reference_verdict == "below"


def test_supercycle_gpc_is_per_supercycle(project, ald_tool, wafer):
    run = _run(project, ald_tool, make_linbox(project))
    services.run_load_add(run=run, sample=wafer, role="witness")
    services.run_complete(run=run)
    services.thickness_measurement_add(
        sample=Sample.objects.get(code="W-001.R-001"), method="xrr", value_nm=Decimal("1.0")
    )
    (gpc,) = selectors.run_gpc(run=run)
    assert gpc.basis == "supercycle" and gpc.gpc_angstrom == pytest.approx(2.0)
    assert gpc.expected_gpc_angstrom == pytest.approx(2.1)
    assert gpc.reference_verdict == "no reference"


def test_composition_derives_li_to_metal_ratio(project, wafer):
    row = services.composition_measurement_add(
        sample=wafer, method="xps", fractions={"Li": 0.2, "Nb": 0.2, "O": 0.6}
    )
    assert row.li_to_metal_ratio == Decimal("1.0000")
    with pytest.raises(ValidationError, match="more than 1"):
        services.composition_measurement_add(
            sample=wafer, method="xps", fractions={"Li": 20, "Nb": 20, "O": 60}
        )
    film = services.film_property_add(
        sample=wafer, ionic_conductivity_s_cm=6.4e-8, temperature_c=Decimal("25")
    )
    assert film.ionic_conductivity_s_cm == pytest.approx(6.4e-8)
    with pytest.raises(ValidationError, match="at least one property"):
        services.film_property_add(sample=wafer)


# --- anneals ------------------------------------------------------------------------------------

LI3PO4 = [
    SegmentInput("ramp", Decimal("600"), rate_k_per_min=Decimal("5")),
    SegmentInput("dwell", Decimal("600"), duration_min=Decimal("120")),
    SegmentInput("cool", Decimal("25"), rate_k_per_min=Decimal("5")),
]


def test_anneal_consumes_inputs_and_produces_annealed_outputs(project, nmc):
    from lims.models import Instrument

    furnace = Instrument.objects.create(name="Tube furnace 1", kind="furnace", project=project)
    treatment = services.post_treatment_create(
        project=project, code="AN-001", atmosphere="o2", furnace=furnace, segments=LI3PO4
    )
    profile = furnace_selectors.treatment_profile(treatment=treatment)
    assert profile.dwells[0].duration_s == 7200 and profile.total_s == 21000
    done = services.post_treatment_complete(
        treatment=treatment, inputs=[AnnealInput(sample=nmc, quantity=Decimal("2"))]
    )
    assert done.status == "completed" and done.operation.kind == "anneal"
    out = Sample.objects.get(code="NMC-001.AN-001")
    assert (out.kind, out.state, out.quantity) == ("annealed_powder", "annealed", Decimal("2"))
    nmc.refresh_from_db()
    assert nmc.remaining == Decimal("8")
    with pytest.raises(ValidationError, match="history"):
        services.post_treatment_update(treatment=done, notes="late edit")


def test_anneal_segments_are_validated(project):
    with pytest.raises(ValidationError, match="either a rate"):
        services.post_treatment_create(
            project=project,
            code="AN-002",
            atmosphere="ar",
            segments=[SegmentInput("ramp", Decimal("400"))],
        )
    with pytest.raises(ValidationError, match="add a ramp first"):
        services.post_treatment_create(
            project=project,
            code="AN-003",
            atmosphere="ar",
            segments=[SegmentInput("dwell", Decimal("400"), duration_min=Decimal("60"))],
        )
    furnace_wrong = services.post_treatment_create  # furnace must be a furnace
    from lims.models import Instrument

    cycler = Instrument.objects.create(name="cycler-x", kind="cycler", project=project)
    with pytest.raises(ValidationError, match="Furnace"):
        furnace_wrong(
            project=project, code="AN-004", atmosphere="ar", furnace=cycler, segments=LI3PO4
        )


def test_plasma_step_needs_its_power(project):
    plasma = SubCycleInput(
        name="AlN",
        steps=[
            StepInput(kind="pulse", source_label="TMA", duration_s=Decimal("0.05")),
            StepInput(kind="plasma", source_label="N2 plasma", duration_s=Decimal("10")),
        ],
    )
    with pytest.raises(ValidationError, match="needs its power"):
        services.recipe_create(
            project=project, name="AlN", subcycles=[plasma], blocks=[BlockInput("AlN", 1)]
        )


def test_tool_must_be_an_ald_instrument(project):
    from lims.models import Instrument

    cycler = Instrument.objects.create(name="BioLogic VMP3", kind="cycler", project=project)
    with pytest.raises(ValidationError, match="ALD tool"):
        services.tool_create(instrument=cycler, reactor_type="cross_flow")


def test_hand_entered_bottle_survives_the_refresh_at_start(project, ald_tool, tma, tma_bottle):
    port = ald_tool.sources.get(label="P1")
    services.source_install(tool_source=port, precursor_lot=tma_bottle, installed_at=T0)
    run = _run(project, ald_tool, make_al2o3(project))
    assert run.precursors.get().from_installation
    lot_b, _ = sample_services.lot_receive(
        project=project,
        material=tma_bottle.material_lot.material,
        lot_number="TMA-2026-09",
        quantity=Decimal("50"),
    )
    spare = services.precursor_lot_create(material_lot=lot_b, chemical=tma, bottle_label="B-099")
    services.run_precursor_set(run=run, tool_source=port, precursor_lot=spare)
    services.run_start(run=run)
    row = run.precursors.get()
    assert (row.precursor_lot, row.from_installation) == (spare, False)
