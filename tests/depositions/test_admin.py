"""Every deposition model has a working admin; frozen recipes and snapshots are read-only."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model

from depositions import services
from tests.depositions.factories import make_al2o3

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.depositions.urls")]


@pytest.fixture
def staff_client(client, db):
    boss = get_user_model().objects.create_superuser("boss", password="pw-boss-123")
    client.force_login(boss)
    return client


def test_every_model_has_an_admin_with_list_search_and_filters(staff_client, project, ald_tool):
    from django.apps import apps

    recipe = make_al2o3(project)
    services.run_create(project=project, code="R-ADM", tool=ald_tool, recipe=recipe)
    for model in apps.get_app_config("depositions").get_models():
        model_admin = admin.site._registry.get(model)
        assert model_admin is not None, f"{model.__name__} has no admin"
        assert model_admin.search_fields, model.__name__
        meta = model._meta
        url = f"/admin/{meta.app_label}/{meta.model_name}/"
        response = staff_client.get(url, {"q": "x"})
        assert response.status_code == 200, url


def test_frozen_recipe_and_run_snapshot_are_read_only(staff_client, project, ald_tool):
    recipe = make_al2o3(project)
    run = services.run_create(project=project, code="R-ADM2", tool=ald_tool, recipe=recipe)
    page = staff_client.get(f"/admin/depositions/recipe/{recipe.pk}/change/")
    assert page.status_code == 200 and b"Save" not in page.content  # view-only
    refused = staff_client.post(f"/admin/depositions/recipe/{recipe.pk}/change/", {"name": "x"})
    assert refused.status_code == 403
    run_page = staff_client.get(f"/admin/depositions/depositionrun/{run.pk}/change/")
    assert run_page.status_code == 200
    assert run_page.context["adminform"].form.fields.get("recipe_snapshot") is None
    editable = make_al2o3(project, name="draft")
    draft = staff_client.get(f"/admin/depositions/recipe/{editable.pk}/change/")
    assert b"Save" in draft.content
