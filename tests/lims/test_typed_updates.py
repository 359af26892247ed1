"""Services taking ``**fields`` refuse a name that is not a field: nothing saved, no event."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from cells import services as cell_services
from depositions import services as dep_services
from depositions.inputs import SegmentInput
from lims.fields import check_fields
from lims.models import Instrument, OutboxEvent
from samples import services as sample_services
from tests.depositions.factories import make_al2o3

SEGMENTS = [
    SegmentInput("ramp", Decimal("400"), rate_k_per_min=Decimal("5")),
    SegmentInput("dwell", Decimal("400"), duration_min=Decimal("60")),
]


@pytest.fixture
def world(project, cell):
    """One of everything a ``**fields`` service writes."""
    material = sample_services.material_create(name="TMA", material_class="precursor")
    lot, _ = sample_services.lot_receive(
        project=project, material=material, lot_number="L-1", quantity=Decimal("50")
    )
    powder = sample_services.sample_create(
        project=project, code="P-1", kind="powder", quantity=Decimal("5")
    )
    instrument = Instrument.objects.create(name="ALD-1", kind="ald_tool", project=project)
    tool = dep_services.tool_create(instrument=instrument, reactor_type="fluidized_bed")
    port = dep_services.tool_source_create(
        tool=tool, label="P1", delivery="vapour_draw", reactant="TMA"
    )
    chemical = dep_services.chemical_create(name="trimethylaluminum", state="liquid")
    bottle = dep_services.precursor_lot_create(
        material_lot=lot, chemical=chemical, bottle_label="B-1"
    )
    recipe = make_al2o3(project)
    draft = make_al2o3(project, name="draft")
    run = dep_services.run_create(project=project, code="R-1", tool=tool, recipe=recipe)
    anneal = dep_services.post_treatment_create(
        project=project, code="AN-1", atmosphere="o2", segments=SEGMENTS
    )
    reference = dep_services.process_reference_save(
        key="al2o3-tma", material="Al2O3", source="test", gpc_min_angstrom=Decimal("1.1")
    )
    return {
        "project": project,
        "cell": cell,
        "material": material,
        "lot": lot,
        "powder": powder,
        "tool": tool,
        "port": port,
        "chemical": chemical,
        "bottle": bottle,
        "recipe": recipe,
        "draft": draft,
        "run": run,
        "anneal": anneal,
        "reference": reference,
    }


W = dict[str, Any]
# service name -> a call with one misspelt field (the typo is always ``typo``)
CALLS: dict[str, Callable[[W, dict[str, Any]], Any]] = {
    "cell_create": lambda w, typo: cell_services.cell_create(
        project=w["project"], code="C-2", format="bulk_pellet", **typo
    ),
    "cell_update": lambda w, typo: cell_services.cell_update(cell=w["cell"], **typo),
    "lot_receive": lambda w, typo: sample_services.lot_receive(
        project=w["project"],
        material=w["material"],
        lot_number="L-2",
        quantity=Decimal("1"),
        **typo,
    ),
    "sample_create": lambda w, typo: sample_services.sample_create(
        project=w["project"], code="P-2", kind="powder", quantity=Decimal("1"), **typo
    ),
    "material_update": lambda w, typo: sample_services.material_update(
        material=w["material"], **typo
    ),
    "lot_update": lambda w, typo: sample_services.lot_update(lot=w["lot"], **typo),
    "tool_update": lambda w, typo: dep_services.tool_update(tool=w["tool"], **typo),
    "tool_source_create": lambda w, typo: dep_services.tool_source_create(
        tool=w["tool"], label="P2", delivery="vapour_draw", **typo
    ),
    "tool_source_update": lambda w, typo: dep_services.tool_source_update(source=w["port"], **typo),
    "chemical_create": lambda w, typo: dep_services.chemical_create(
        name="water", state="liquid", **typo
    ),
    "chemical_update": lambda w, typo: dep_services.chemical_update(chemical=w["chemical"], **typo),
    "precursor_lot_create": lambda w, typo: dep_services.precursor_lot_create(
        material_lot=w["lot"], chemical=w["chemical"], bottle_label="B-2", **typo
    ),
    "precursor_lot_update": lambda w, typo: dep_services.precursor_lot_update(
        lot=w["bottle"], **typo
    ),
    "recipe_create": lambda w, typo: make_al2o3(w["project"], name="other", **typo),
    "recipe_update": lambda w, typo: dep_services.recipe_update(recipe=w["draft"], **typo),
    "recipe_new_version": lambda w, typo: dep_services.recipe_new_version(
        recipe=w["recipe"], **typo
    ),
    "process_reference_save": lambda w, typo: dep_services.process_reference_save(
        reference=w["reference"], **typo
    ),
    "run_create": lambda w, typo: dep_services.run_create(
        project=w["project"], code="R-2", tool=w["tool"], recipe=w["recipe"], **typo
    ),
    "run_update": lambda w, typo: dep_services.run_update(run=w["run"], **typo),
    "thickness_measurement_add": lambda w, typo: dep_services.thickness_measurement_add(
        sample=w["powder"], method="ellipsometry", value_nm=Decimal("5"), **typo
    ),
    "composition_measurement_add": lambda w, typo: dep_services.composition_measurement_add(
        sample=w["powder"], method="xps", fractions={"Li": 0.2, "Nb": 0.2}, **typo
    ),
    "film_property_add": lambda w, typo: dep_services.film_property_add(
        sample=w["powder"], density_g_cm3=Decimal("3"), **typo
    ),
    "post_treatment_create": lambda w, typo: dep_services.post_treatment_create(
        project=w["project"], code="AN-2", atmosphere="o2", segments=SEGMENTS, **typo
    ),
    "post_treatment_update": lambda w, typo: dep_services.post_treatment_update(
        treatment=w["anneal"], **typo
    ),
}


def _services_taking_fields() -> set[str]:
    found = set()
    for module in (cell_services, sample_services, dep_services):
        for name, func in inspect.getmembers(module, inspect.isfunction):
            if func.__module__ != module.__name__ or name.startswith("_"):
                continue
            params = inspect.signature(func).parameters.values()
            if any(p.kind is p.VAR_KEYWORD for p in params) and name not in PASS_THROUGH:
                found.add(name)
    return found


# ``**kwargs`` handed on to a service with an explicit signature (a typo is a TypeError there)
PASS_THROUGH = {"sample_split", "sample_mix", "sample_press"}


def test_every_service_taking_fields_is_covered():
    assert _services_taking_fields() == set(CALLS)


@pytest.mark.django_db
@pytest.mark.parametrize("service", sorted(CALLS))
def test_a_misspelt_field_is_refused_naming_it(world, service):
    events = OutboxEvent.objects.count()
    with pytest.raises(ValidationError) as caught:
        CALLS[service](world, {"notse": "x"})
    assert "notse" in caught.value.message_dict
    assert "'notse' is not a field of" in caught.value.message_dict["notse"][0]
    assert OutboxEvent.objects.count() == events


@pytest.mark.django_db
def test_the_issue_example_saves_nothing_emits_nothing_and_suggests_the_field(cell):
    events = OutboxEvent.objects.count()
    with pytest.raises(ValidationError) as caught:
        cell_services.cell_update(cell=cell, cathode_mas_mg=Decimal("99"))
    hint = "'cathode_mas_mg' is not a field of cell (did you mean cathode_mass_mg?)"
    assert caught.value.message_dict == {"cathode_mas_mg": [hint]}
    cell.refresh_from_db()
    assert cell.cathode_mass_mg == Decimal("10")
    assert OutboxEvent.objects.count() == events
    # the right name still works, and the event says so
    cell_services.cell_update(cell=cell, cathode_mass_mg=Decimal("12"))
    cell.refresh_from_db()
    assert cell.cathode_mass_mg == Decimal("12")
    assert OutboxEvent.objects.filter(topic="cells.cell.updated").exists()


@pytest.mark.django_db
def test_keys_foreign_key_ids_and_computed_fields():
    from cells.models import Cell

    check_fields(Cell, {"cathode_sample_id": None, "cathode_sample": None})
    with pytest.raises(ValidationError) as caught:
        check_fields(Cell, {"id": 5, "created_at": None})
    assert set(caught.value.message_dict) == {"id", "created_at"}
