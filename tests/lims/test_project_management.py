"""Managers manage their project's people and instrument tokens; nobody else does.

Rules in ``lims.services``: only a manager (or staff) acts, a project keeps one manager, a
token is owned by the manager who issued it, an instrument name of another project is not
reused, and each change is in the change log without the token's key.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError

from lims import services
from lims.models import InstrumentToken, Membership, ObjectChange, Project


@pytest.fixture
def people(project):
    users = get_user_model().objects
    made = {}
    for role in ("viewer", "editor", "manager"):
        made[role] = users.create_user(f"pm-{role}", password="pw-pm-12345")
        Membership.objects.create(project=project, user=made[role], role=role)
    made["newcomer"] = users.create_user("pm-new", password="pw-pm-12345")
    return made


@pytest.mark.django_db
def test_only_a_manager_adds_people_and_changes_roles(project, people):
    for role in ("viewer", "editor"):
        with pytest.raises(PermissionDenied):
            services.membership_set(
                project=project, username="pm-new", role="editor", by=people[role]
            )
    made = services.membership_set(
        project=project, username="pm-new", role="viewer", by=people["manager"]
    )
    assert made.role == "viewer"
    services.membership_set(project=project, username="pm-new", role="editor", by=people["manager"])
    assert Membership.objects.get(project=project, user=people["newcomer"]).role == "editor"
    with pytest.raises(ValidationError, match="no active account"):
        services.membership_set(
            project=project, username="nobody", role="viewer", by=people["manager"]
        )


@pytest.mark.django_db
def test_the_last_manager_can_neither_leave_nor_step_down(project, people):
    manager = people["manager"]
    with pytest.raises(ValidationError, match="at least one manager"):
        services.membership_remove(project=project, username="pm-manager", by=manager)
    with pytest.raises(ValidationError, match="at least one manager"):
        services.membership_set(project=project, username="pm-manager", role="editor", by=manager)
    services.membership_set(project=project, username="pm-editor", role="manager", by=manager)
    services.membership_remove(project=project, username="pm-manager", by=manager)
    assert not Membership.objects.filter(user=manager).exists()


@pytest.mark.django_db
def test_a_token_is_issued_to_the_project_owned_by_its_manager_and_logged_without_its_key(
    project, people
):
    with pytest.raises(PermissionDenied):
        services.project_token_issue(
            project=project, instrument_name="cycler-9", kind="cycler", by=people["editor"]
        )
    token = services.project_token_issue(
        project=project, instrument_name="cycler-9", kind="cycler", by=people["manager"]
    )
    assert token.owner == people["manager"] and token.instrument.project == project
    other = Project.objects.create(name="Other", slug="other")
    Membership.objects.create(project=other, user=people["manager"], role="manager")
    with pytest.raises(ValidationError, match="taken"):
        services.project_token_issue(
            project=other, instrument_name="cycler-9", kind="cycler", by=people["manager"]
        )
    services.instrument_token_revoke(token=token, by=people["manager"])
    ct = ContentType.objects.get_for_model(InstrumentToken)
    entries = ObjectChange.objects.filter(content_type=ct, object_id=str(token.pk))
    assert [e.action for e in entries.order_by("seq")] == ["create", "update"]
    for entry in entries:
        assert token.key not in str(entry.prechange) + str(entry.postchange) + entry.object_repr
    assert entries.order_by("seq").last().postchange["revoked"] is True


@pytest.mark.django_db
def test_the_project_page_shows_people_and_tokens_and_lets_a_manager_act(client, project, people):
    client.force_login(people["viewer"])
    page = client.get(f"/projects/{project.slug}/").content.decode()
    assert "pm-manager" in page and 'id="member-form"' not in page
    assert (
        client.post(f"/projects/{project.slug}/members/", {"username": "pm-new"}).status_code == 403
    )

    client.force_login(people["manager"])
    assert 'id="member-form"' in client.get(f"/projects/{project.slug}/").content.decode()
    client.post(f"/projects/{project.slug}/members/", {"username": "pm-new", "role": "editor"})
    assert Membership.objects.get(user=people["newcomer"]).role == "editor"
    issued = client.post(
        f"/projects/{project.slug}/tokens/",
        {"instrument_name": "potentiostat-2", "kind": "potentiostat"},
    )
    token = InstrumentToken.objects.get(instrument__name="potentiostat-2")
    assert token.key in issued.content.decode() and issued["Cache-Control"] == "no-store"
    assert token.key not in client.get(f"/projects/{project.slug}/").content.decode()
    client.post(f"/projects/{project.slug}/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked
    refused = client.post(f"/projects/{project.slug}/members/pm-manager/remove/", follow=True)
    assert "at least one manager" in refused.content.decode()


@pytest.mark.django_db
def test_members_over_the_api(project, people):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(people["editor"])
    url = f"/api/v1/projects/{project.pk}/members/"
    listed = api.get(url).json()
    assert {"username": "pm-manager", "role": "manager"} in listed
    assert api.post(url, {"username": "pm-new", "role": "viewer"}, format="json").status_code == 403
    api.force_authenticate(people["manager"])
    added = api.post(url, {"username": "pm-new", "role": "viewer"}, format="json")
    assert added.status_code == 200 and {"username": "pm-new", "role": "viewer"} in added.json()
    last = api.delete(f"{url}pm-manager/")
    assert last.status_code == 400 and "manager" in str(last.json())
    assert api.delete(f"{url}pm-new/").status_code == 200
    assert not Membership.objects.filter(user=people["newcomer"]).exists()
