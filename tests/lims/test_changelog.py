"""Every domain change is logged with actor, context, request id and before/after."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType

from cells import services
from cells.models import Cell
from lims.changelog import change_context
from lims.models import ObjectChange


@pytest.mark.django_db
def test_create_update_delete_are_logged_with_context(project, user):
    with change_context("web", user=user, request_id="req-1"):
        cell = services.cell_create(
            project=project, code="LOG-1", format="coin", cell_type="full", notes="first"
        )
        services.cell_update(cell=cell, notes="second")
    with change_context("api", user=user, request_id="req-2"):
        Cell.objects.get(pk=cell.pk).delete()
    ct = ContentType.objects.get_for_model(Cell)
    rows = list(ObjectChange.objects.filter(content_type=ct).order_by("time", "pk"))
    assert [r.action for r in rows] == ["create", "update", "delete"]
    assert [r.request_id for r in rows] == ["req-1", "req-1", "req-2"]
    assert [r.context for r in rows] == ["web", "web", "api"]
    assert rows[0].user == user and rows[0].prechange is None
    assert rows[1].prechange["notes"] == "first" and rows[1].postchange["notes"] == "second"
    assert rows[2].postchange is None and rows[2].prechange["code"] == "LOG-1"


@pytest.mark.django_db
def test_shell_is_the_default_context_and_noop_saves_are_not_logged(project):
    cell = services.cell_create(project=project, code="LOG-2", format="coin", cell_type="full")
    Cell.objects.get(pk=cell.pk).save()
    ct = ContentType.objects.get_for_model(Cell)
    rows = ObjectChange.objects.filter(content_type=ct, object_id=str(cell.pk))
    assert rows.count() == 1 and rows.get().context == "shell"


@pytest.mark.django_db
def test_api_changes_are_logged_as_api_with_the_request_user(user_client, user, project):
    response = user_client.post(
        "/api/v1/cells/",
        {
            "code": "LOG-3",
            "project": "assb",
            "format": "coin",
            "cell_type": "full",
            "cathode_mass_mg": "10",
            "ratio_active": "70",
            "ratio_se": "30",
            "ratio_carbon": "0",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Decimal(response.json()["active_mass_mg"]) == Decimal("7.0000")
    change = ObjectChange.objects.get(object_repr="LOG-3")
    assert change.context == "api" and change.user == user
    assert response["X-Request-Id"] == change.request_id
