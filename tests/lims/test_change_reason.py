"""The change log says why (a reason from the API) and, for an instrument, who answers for it."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from rest_framework.test import APIClient

from cells.models import Cell, CyclingTest
from lims import services
from lims.changelog import chain_verify
from lims.ingestion.tasks import ingest_job_run
from lims.models import ObjectChange

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def _cell_changes(cell: Cell) -> list[ObjectChange]:
    ct = ContentType.objects.get_for_model(Cell)
    return list(
        ObjectChange.objects.filter(content_type=ct, object_id=str(cell.pk)).order_by("seq")
    )


@pytest.mark.django_db
def test_reason_header_lands_in_the_entry(user_client, cell):
    response = user_client.patch(
        f"/api/v1/cells/{cell.code}/",
        {"notes": "pellet re-weighed"},
        format="json",
        HTTP_X_LIMS_REASON="balance recalibrated on 2026-12-01",
    )
    assert response.status_code == 200, response.content
    entry = _cell_changes(cell)[-1]
    assert (entry.action, entry.context, entry.reason) == (
        "update",
        "api",
        "balance recalibrated on 2026-12-01",
    )
    assert chain_verify().first_break is None


@pytest.mark.django_db
def test_reason_field_lands_in_the_entry_and_in_the_rederived_records_event(user_client, cell):
    from lims.models import OutboxEvent

    response = user_client.patch(
        f"/api/v1/cells/{cell.code}/",
        {"cathode_mass_mg": "12", "reason": "typo in the weighed mass"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert _cell_changes(cell)[-1].reason == "typo in the weighed mass"
    event = OutboxEvent.objects.filter(topic="cells.cell.active_mass_changed").get()
    assert event.payload["reason"] == "typo in the weighed mass"


@pytest.mark.django_db
def test_utf8_reason_header_and_the_header_winning_over_the_field(user_client, cell):
    response = user_client.patch(
        f"/api/v1/cells/{cell.code}/",
        {"notes": "x", "reason": "from the body"},
        format="json",
        HTTP_X_LIMS_REASON="Maßband kalibriert".encode().decode("latin-1"),
    )
    assert response.status_code == 200, response.content
    assert _cell_changes(cell)[-1].reason == "Maßband kalibriert"


@pytest.mark.django_db
def test_a_write_without_reason_has_an_empty_one(user_client, cell):
    response = user_client.patch(f"/api/v1/cells/{cell.code}/", {"notes": "y"}, format="json")
    assert response.status_code == 200
    assert _cell_changes(cell)[-1].reason == ""


@pytest.mark.django_db
def test_ingest_changes_name_the_instrument_and_the_token_owner(
    project, cell, fixture_path, django_capture_on_commit_callbacks
):
    owner = get_user_model().objects.create_user("bob", password="pw-bob-12345")
    token = services.instrument_token_create(
        instrument_name="cycler-7", project=project, kind="cycler", owner=owner
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    upload = io.BytesIO((fixture_path / MPR).read_bytes())
    upload.name = "C09.mpr"
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/api/v1/ingest/", {"file": upload, "cell": cell.code}, format="multipart"
        )
    assert response.status_code == 202, response.content
    ingest_job_run(response.json()["job"]["id"])  # the task, in process
    test = CyclingTest.objects.get(cell=cell)
    ct = ContentType.objects.get_for_model(CyclingTest)
    entry = ObjectChange.objects.get(content_type=ct, object_id=str(test.pk), action="create")
    assert (entry.context, entry.instrument_name, entry.user, entry.user_name) == (
        "ingest",
        "cycler-7",
        owner,
        "bob",
    )
    assert chain_verify().first_break is None
