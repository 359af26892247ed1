"""Security review findings 1 and 2 (issue 12): nothing of another project can be picked.

A member of project B must not see project A's tools, ports, lots or furnaces in a form's
choices, nor attach them through the services (pages and API): a 400 / form error that names
nothing of project A.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from depositions import services
from depositions.inputs import BlockInput, SegmentInput, StepInput, SubCycleInput
from depositions.models import PrecursorLot, Tool, ToolSource
from lims.models import Instrument, Membership, Project
from samples import services as sample_services
from samples.models import Sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(db):
    """An editor of another project, B (a viewer is refused before any project check)."""
    other = Project.objects.create(name="Other lab", slug="other")
    person = get_user_model().objects.create_user("bob", password="pw-bob-123")
    Membership.objects.create(project=other, user=person, role=Membership.Role.EDITOR)
    person.project_b = other  # type: ignore[attr-defined]
    return person


@pytest.fixture
def precursor_lot_a(project):
    material = sample_services.material_create(name="TMA-A", material_class="precursor")
    lot, _ = sample_services.lot_receive(
        project=project,
        material=material,
        lot_number="SECRET-LOT-77",
        quantity=Decimal("50"),
        supplier="Secret Supplier",
    )
    return lot


def test_catalogue_forms_offer_only_the_users_projects(client, bob, ald_tool, precursor_lot_a):
    client.force_login(bob)
    for slug in ("tool-ports", "ald-tools", "precursor-bottles"):
        page = client.get(f"/catalogue/{slug}/new/").content.decode()
        assert "Picosun" not in page, slug
        assert "SECRET-LOT-77" not in page, slug


def test_a_port_on_another_projects_tool_is_a_form_error(client, bob, ald_tool):
    client.force_login(bob)
    before = ToolSource.objects.count()
    response = client.post(
        "/catalogue/tool-ports/new/",
        {"tool": ald_tool.pk, "label": "P9", "reactant": "TMA", "delivery": "vapour_draw"},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert ToolSource.objects.count() == before


def test_create_services_check_the_users_project(bob, ald_tool, precursor_lot_a, tma):
    with pytest.raises(ValidationError) as tool_error:
        services.tool_create(instrument=ald_tool.instrument, reactor_type="viscous", user=bob)
    assert "instrument" in tool_error.value.message_dict
    with pytest.raises(ValidationError) as port_error:
        services.tool_source_create(tool=ald_tool, label="P9", delivery="vapour_draw", user=bob)
    assert "tool" in port_error.value.message_dict
    with pytest.raises(ValidationError) as bottle_error:
        services.precursor_lot_create(
            material_lot=precursor_lot_a, chemical=tma, bottle_label="B-9", user=bob
        )
    assert "material_lot" in bottle_error.value.message_dict
    assert "SECRET" not in str(bottle_error.value)
    assert Tool.objects.count() == 1 and PrecursorLot.objects.count() == 0


def test_api_creates_on_another_projects_rows_are_400(bob, ald_tool, precursor_lot_a, tma):
    api = APIClient()
    api.force_authenticate(bob)
    port = api.post(
        "/api/v1/tool-sources/",
        {"tool": ald_tool.pk, "label": "P9", "delivery": "vapour_draw"},
        format="json",
    )
    assert port.status_code == 400, port.content
    bottle = api.post(
        "/api/v1/precursor-lots/",
        {"material_lot": precursor_lot_a.pk, "chemical": tma.pk, "bottle_label": "B-9"},
        format="json",
    )
    assert bottle.status_code == 400, bottle.content
    assert b"SECRET" not in bottle.content
    tool = api.post(
        "/api/v1/ald-tools/",
        {"instrument": ald_tool.instrument.pk, "reactor_type": "viscous"},
        format="json",
    )
    assert tool.status_code == 400, tool.content


def test_a_sample_cannot_use_another_projects_lot(bob, precursor_lot_a):
    with pytest.raises(ValidationError) as error:
        sample_services.sample_create(
            project=bob.project_b, code="B-1", kind="powder", quantity=1, lot=precursor_lot_a
        )
    assert "lot" in error.value.message_dict
    api = APIClient()
    api.force_authenticate(bob)
    response = api.post(
        "/api/v1/samples/",
        {
            "project": bob.project_b.pk,
            "code": "B-2",
            "kind": "powder",
            "quantity": "1",
            "lot": precursor_lot_a.pk,
        },
        format="json",
    )
    assert response.status_code == 400, response.content
    assert b"SECRET" not in response.content
    assert not Sample.objects.filter(code__in=["B-1", "B-2"]).exists()


def test_a_recipe_step_cannot_use_another_projects_port(bob, ald_tool):
    port = ald_tool.sources.get(label="P1")
    steps = [
        StepInput(kind="pulse", source=port, duration_s=Decimal("0.1")),
        StepInput(kind="purge", source_label="N2", duration_s=Decimal("5")),
    ]
    with pytest.raises(ValidationError) as error:
        services.recipe_create(
            project=bob.project_b,
            name="stolen",
            subcycles=[SubCycleInput(name="A", steps=steps)],
            blocks=[BlockInput("A", 1)],
        )
    assert "source" in error.value.message_dict


def test_an_anneal_cannot_use_another_projects_furnace(bob, project):
    furnace = Instrument.objects.create(name="Tube A", kind="furnace", project=project)
    with pytest.raises(ValidationError) as error:
        services.post_treatment_create(
            project=bob.project_b,
            code="AN-B",
            atmosphere="o2",
            furnace=furnace,
            segments=[SegmentInput(kind="hold", target_c=Decimal("25"), duration_min=1)],
        )
    assert "furnace" in error.value.message_dict
