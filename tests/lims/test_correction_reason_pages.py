"""Pages ask why when a correction changes a value results are derived from (ALCOA+ "why").

The reason lands in the change-log entry of the change and, for the active mass, in the event
that re-derives the cell's performance records. Edits that change nothing results use, and new
objects, need none.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType

from cells.models import Cell
from lims import demo
from lims.models import ObjectChange, OutboxEvent


def _cell_post(cell: Cell, **changes: str) -> dict[str, str]:
    """The edit form as the browser sends it: every field with its current value."""
    from cells.forms import CellForm

    form = CellForm(instance=cell, user=None)
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        data[name] = "" if value is None else str(value)
    return {**data, **changes}


def _last_cell_entry(cell: Cell) -> ObjectChange:
    ct = ContentType.objects.get_for_model(Cell)
    return ObjectChange.objects.filter(content_type=ct, object_id=str(cell.pk)).latest("seq")


@pytest.mark.django_db
def test_a_cathode_mass_correction_without_reason_is_refused_and_changes_nothing(
    client, user, cell
):
    client.force_login(user)
    response = client.post(f"/cells/{cell.code}/edit/", _cell_post(cell, cathode_mass_mg="11"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Say why" in page and "Cathode mass" in page
    cell.refresh_from_db()
    assert cell.cathode_mass_mg == Decimal("10")


@pytest.mark.django_db
def test_the_reason_lands_in_the_change_log_and_in_the_rederivation_event(client, user, cell):
    client.force_login(user)
    why = "balance recalibrated; pellet re-weighed"
    response = client.post(
        f"/cells/{cell.code}/edit/", _cell_post(cell, cathode_mass_mg="11", reason=why)
    )
    assert response.status_code == 302
    cell.refresh_from_db()
    assert cell.cathode_mass_mg == Decimal("11")
    entry = _last_cell_entry(cell)
    assert entry.reason == why and entry.context == "web" and entry.user == user
    event = OutboxEvent.objects.filter(topic="cells.cell.active_mass_changed").latest("pk")
    assert event.payload["reason"] == why


@pytest.mark.django_db
def test_notes_need_no_reason_and_a_new_cell_is_not_asked_for_one(client, user, cell):
    client.force_login(user)
    response = client.post(f"/cells/{cell.code}/edit/", _cell_post(cell, notes="re-labelled"))
    assert response.status_code == 302
    assert _last_cell_entry(cell).reason == ""
    assert 'name="reason"' not in client.get("/cells/new/").content.decode()
    assert 'name="reason"' in client.get(f"/cells/{cell.code}/edit/").content.decode()


@pytest.fixture
def chain(project, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        demo.process_chain(project=project, user=user)


@pytest.mark.django_db
def test_a_second_thickness_at_the_same_spot_is_a_correction(chain, client, user):
    from depositions.models import ThicknessMeasurement

    client.force_login(user)
    url, wafer = "/depositions/runs/RUN-AL-01/thickness/", "SI-W01.RUN-AL-01"
    first = {"sample": wafer, "method": "xrr", "value_nm": "1.15", "location": "centre"}
    client.post(url, first)
    client.post(url, {**first, "location": "edge", "value_nm": "1.05"})  # a map point
    assert ThicknessMeasurement.objects.filter(sample__code=wafer, method="xrr").count() == 2

    refused = client.post(url, {**first, "value_nm": "1.25"}, follow=True)
    assert "say why the new value corrects it" in refused.content.decode()
    assert ThicknessMeasurement.objects.filter(sample__code=wafer, method="xrr").count() == 2

    client.post(url, {**first, "value_nm": "1.25", "reason": "fit model had wrong SiO2"})
    row = ThicknessMeasurement.objects.filter(sample__code=wafer, method="xrr").latest("pk")
    assert row.value_nm == Decimal("1.25")
    ct = ContentType.objects.get_for_model(ThicknessMeasurement)
    entry = ObjectChange.objects.get(content_type=ct, object_id=str(row.pk), action="create")
    assert entry.reason == "fit model had wrong SiO2"


@pytest.mark.django_db
def test_a_molar_mass_correction_in_the_catalogue_needs_a_reason(client, admin_user):
    from depositions.models import Chemical

    tma = Chemical.objects.create(
        name="trimethylaluminum",
        formula="Al(CH3)3",
        molar_mass_g_mol=Decimal("72.09"),
        state="liquid",
    )
    client.force_login(admin_user)
    form = {
        "name": tma.name,
        "formula": tma.formula,
        "synonyms": "[]",
        "cas_number": "",
        "state": tma.state,
        "molar_mass_g_mol": "1.0",
    }
    refused = client.post(f"/catalogue/chemicals/{tma.pk}/edit/", form)
    assert refused.status_code == 200 and "Say why" in refused.content.decode()
    tma.refresh_from_db()
    assert tma.molar_mass_g_mol == Decimal("72.09")
    done = client.post(
        f"/catalogue/chemicals/{tma.pk}/edit/",
        {**form, "molar_mass_g_mol": "144.17", "reason": "dimer mass"},
    )
    assert done.status_code == 302, done.content.decode()[-3000:]
    ct = ContentType.objects.get_for_model(Chemical)
    assert (
        ObjectChange.objects.filter(content_type=ct, object_id=str(tma.pk)).latest("seq").reason
        == "dimer mass"
    )
