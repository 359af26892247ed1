"""Catalogue pages: every entry lists (search, sort, paginate), shows and edits via services."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from lims.catalogue import REGISTRY


@pytest.mark.django_db
@pytest.mark.parametrize("slug", sorted(REGISTRY))
def test_every_list_renders_and_sorts(slug, client, user):
    client.force_login(user)
    assert client.get(f"/catalogue/{slug}/?q=x").status_code == 200
    for key in REGISTRY[slug].sort:
        assert client.get(f"/catalogue/{slug}/?o=-{key}").status_code == 200


@pytest.mark.django_db
def test_chemical_create_edit_detail_and_search_by_synonym(client, user, admin_user):
    """Chemicals are shared by every project: staff write them, an editor may not."""
    client.force_login(user)
    assert client.get("/catalogue/chemicals/new/").status_code == 403
    client.force_login(admin_user)
    response = client.post(
        "/catalogue/chemicals/new/",
        {
            "name": "trimethylaluminum",
            "formula": "Al(CH3)3",
            "synonyms": '["TMA"]',
            "cas_number": "75-24-1",
            "state": "liquid",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    detail_url = response["Location"]
    assert "75-24-1" in client.get(detail_url).content.decode()
    assert "trimethylaluminum" in client.get("/catalogue/chemicals/?q=TMA").content.decode()
    edit = client.post(
        detail_url + "edit/",
        {
            "name": "trimethylaluminum",
            "formula": "Al2Me6",
            "synonyms": '["TMA"]',
            "cas_number": "75-24-1",
            "state": "liquid",
        },
    )
    assert edit.status_code == 302
    assert "Al2Me6" in client.get(detail_url).content.decode()
    bad = client.post(
        "/catalogue/chemicals/new/",
        {"name": "X", "cas_number": "75-24-2", "state": "liquid", "synonyms": "[]"},
    )
    assert bad.status_code == 200 and "errorlist" in bad.content.decode()


@pytest.mark.django_db
def test_references_are_read_only_for_people_and_editable_by_staff(client, user, admin_user):
    client.force_login(user)
    assert client.get("/catalogue/process-references/new/").status_code == 403
    assert "LiNbOx" in client.get("/catalogue/process-references/?q=LiNb").content.decode()
    client.force_login(admin_user)
    assert client.get("/catalogue/process-references/new/").status_code == 200


@pytest.mark.django_db
def test_lot_paperwork_edits_but_not_its_history(client, user, project):
    from samples import services
    from samples.models import MaterialLot

    material = services.material_create(name="NMC811", material_class="cathode_active")
    lot, _ = services.lot_receive(project=project, material=material, lot_number="L1", quantity=5)
    client.force_login(user)
    response = client.post(
        f"/catalogue/material-lots/{lot.pk}/edit/",
        {"supplier": "BASF", "storage_location": "glovebox 2"},
    )
    assert response.status_code == 302
    lot = MaterialLot.objects.get(pk=lot.pk)
    assert lot.supplier == "BASF" and lot.quantity_received == 5
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.lot_update(lot=lot, quantity_received=9)


@pytest.mark.django_db
def test_catalogue_lists_run_constant_queries(client, user, project):
    from samples import services

    client.force_login(user)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/catalogue/material-lots/").status_code == 200
        return len(ctx.captured_queries)

    material = services.material_create(name="NMC", material_class="cathode_active")
    for i in range(3):
        services.lot_receive(project=project, material=material, lot_number=f"A{i}", quantity=1)
    few = count()
    for i in range(3, 25):
        services.lot_receive(project=project, material=material, lot_number=f"A{i}", quantity=1)
    assert count() == few
