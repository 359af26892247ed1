"""Project roles (lims.access) and the security review's findings 3, 4 and 6, reproduced."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from lims import access
from lims.models import Membership, Project

CELL = {
    "format": "bulk_pellet",
    "cell_type": "cathode_half",
    "cathode_active_material": "NMC811",
    "ratio_active": "70",
    "ratio_se": "30",
    "ratio_carbon": "0",
    "cathode_mass_mg": "10",
}


def _person(name: str, **roles: str):
    person = get_user_model().objects.create_user(name, password="pw-roles-123")
    for slug, role in roles.items():
        project = Project.objects.get_or_create(slug=slug, defaults={"name": slug.upper()})[0]
        Membership.objects.create(project=project, user=person, role=role)
    return person


def _api(person) -> APIClient:
    client = APIClient()
    client.force_authenticate(person)
    return client


def _sample(project: Project, code: str):
    from samples import services as smp

    return smp.sample_create(project=project, code=code, kind="powder", quantity="1")


@pytest.mark.django_db
def test_new_members_are_viewers_and_the_path_to_a_project_is_found():
    from depositions.models import ThicknessMeasurement, Tool, ToolSource

    person = _person("vera")
    project = Project.objects.create(name="A", slug="a")
    assert Membership.objects.create(project=project, user=person).role == access.VIEWER
    assert access.project_path(Tool) == "instrument.project_id"
    assert access.project_path(ToolSource) == "tool.instrument.project_id"
    assert access.project_path(ThicknessMeasurement) == "sample.project_id"


@pytest.mark.django_db
def test_viewer_reads_editor_writes_the_same_cell(project, cell):
    viewer = _person("vera", assb="viewer")
    editor = _person("eddie", assb="editor")
    url = f"/api/v1/cells/{cell.code}/"
    assert _api(viewer).get(url).status_code == 200
    refused = _api(viewer).patch(url, {"notes": "mine"}, format="json")
    assert refused.status_code == 403 and "editor role" in refused.json()["detail"]
    assert _api(editor).patch(url, {"notes": "mine"}, format="json").status_code == 200


@pytest.mark.django_db
def test_a_create_needs_an_editor_of_the_project_in_the_payload(project):
    """Viewer of A and editor of B: has a write role, but not where the cell would go."""
    person = _person("mixed", assb="viewer", b="editor")
    client = _api(person)
    refused = client.post("/api/v1/cells/", {"code": "X-1", "project": "assb", **CELL})
    assert refused.status_code == 403
    made = client.post("/api/v1/cells/", {"code": "X-2", "project": "b", **CELL})
    assert made.status_code == 201, made.json()


@pytest.mark.django_db
def test_another_projects_codes_answer_like_codes_that_do_not_exist(project):
    """Finding 6: no existence oracle through sample codes or project slugs."""
    _sample(project, "SECRET-1")
    outsider = _api(_person("otto", b="editor"))

    def answer(**fields):
        response = outsider.post(
            "/api/v1/cells/", {"code": "O-1", "project": "b", **CELL, **fields}
        )
        return response.status_code, response.json()

    status, body = answer(cathode_sample="SECRET-1")
    status_none, body_none = answer(cathode_sample="NOPE-1")
    assert status == status_none == 400
    assert body["cathode_sample"] == [
        m.replace("NOPE-1", "SECRET-1") for m in body_none["cathode_sample"]
    ]
    foreign = outsider.post("/api/v1/cells/", {"code": "O-2", "project": "assb", **CELL})
    missing = outsider.post("/api/v1/cells/", {"code": "O-2", "project": "nope", **CELL})
    assert foreign.status_code == missing.status_code == 400
    assert foreign.json()["project"] == [
        m.replace("nope", "assb") for m in missing.json()["project"]
    ]
    assert outsider.get("/api/v1/samples/SECRET-1/").json() == (
        outsider.get("/api/v1/samples/NOPE-1/").json()
    )


@pytest.mark.django_db
def test_a_cell_with_another_of_my_projects_sample_is_refused_not_a_500(project):
    """Finding 6: an editor of two projects linking B's sample into A's cell got a 500."""
    editor = _api(_person("two", assb="editor", b="editor"))
    _sample(Project.objects.get(slug="b"), "B-POWDER")
    response = editor.post(
        "/api/v1/cells/", {"code": "A-1", "project": "assb", "cathode_sample": "B-POWDER", **CELL}
    )
    assert response.status_code == 400, response.content
    assert "B-POWDER" in str(response.json()) or "project" in str(response.json())


@pytest.mark.django_db
def test_instrument_token_neither_splits_nor_edits_the_catalogue(project, instrument_client):
    """Findings 3 and 6: a token splitting a sample got a 500; it edited a molar mass."""
    from depositions import services as dep

    _sample(project, "POWDER-1")
    split = instrument_client.post(
        "/api/v1/samples/POWDER-1/split/",
        {"aliquots": [{"code": "POWDER-1.a", "quantity": "0.1"}]},
        format="json",
    )
    assert split.status_code == 403
    chemical = dep.chemical_create(name="TMA", state="liquid", molar_mass_g_mol=Decimal("72.09"))
    url = f"/api/v1/chemicals/{chemical.pk}/"
    assert instrument_client.patch(url, {"molar_mass_g_mol": "1.0"}, format="json").status_code == (
        403
    )
    chemical.refresh_from_db()
    assert chemical.molar_mass_g_mol == Decimal("72.09")


@pytest.mark.django_db
def test_shared_catalogues_are_written_by_staff_only(project, user, admin_user):
    """Finding 4: any member changed a molar mass that feeds every project's dose checks."""
    from depositions import services as dep

    chemical = dep.chemical_create(name="TMA", state="liquid", molar_mass_g_mol=Decimal("72.09"))
    url = f"/api/v1/chemicals/{chemical.pk}/"
    refused = _api(user).patch(url, {"molar_mass_g_mol": "1.0"}, format="json")
    assert refused.status_code == 403 and "staff" in refused.json()["detail"]
    assert (
        _api(user).post("/api/v1/materials/", {"name": "X", "material_class": "other"}).status_code
        == 403
    )
    assert (
        _api(admin_user).patch(url, {"molar_mass_g_mol": "72.1"}, format="json").status_code == 200
    )
    chemical.refresh_from_db()
    assert chemical.molar_mass_g_mol == Decimal("72.1")


@pytest.mark.django_db
def test_pages_let_viewers_read_and_editors_write(client, project, cell):
    viewer = _person("vera", assb="viewer")
    editor = _person("eddie", assb="editor")
    client.force_login(viewer)
    assert client.get(f"/cells/{cell.code}/").status_code == 200
    assert client.post(f"/cells/{cell.code}/edit/", {}).status_code == 403
    assert client.post("/cells/new/", {}).status_code == 403
    client.force_login(editor)
    assert client.post(f"/cells/{cell.code}/edit/", {}).status_code == 200  # the form, with errors
    upload = io.BytesIO(b"x")
    upload.name = "x.txt"
    client.force_login(viewer)
    assert client.post("/upload/", {"file": upload, "project": project.pk}).status_code == 403


@pytest.mark.django_db
def test_the_upload_form_offers_only_projects_where_one_may_write(client, project):
    _person("vera", assb="viewer", b="editor")
    client.login(username="vera", password="pw-roles-123")
    page = client.get("/upload/").content.decode()
    assert 'value="' + str(Project.objects.get(slug="b").pk) + '"' in page
    assert ">ASSB coatings<" not in page
