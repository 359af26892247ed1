"""GET /api/v1/raw-files/check/?sha256=: what a harvester asks before it sends a file."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from lims import selectors
from lims import services as lims_services
from lims.models import InstrumentToken, Membership, Project

URL = "/api/v1/raw-files/check/"


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _push(client: APIClient, content: bytes, name: str = "run.csv"):
    upload = io.BytesIO(content)
    upload.name = name
    response = client.post("/api/v1/ingest/", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    return response.json()


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.mark.django_db
def test_an_instrument_learns_its_own_bytes_with_their_job_and_nothing_of_other_projects(
    project, instrument_token, django_capture_on_commit_callbacks
):
    other = Project.objects.create(name="Other", slug="other")
    stranger = lims_services.instrument_token_create(instrument_name="far", project=other)
    sibling = lims_services.instrument_token_create(instrument_name="near", project=project)
    mine, theirs, siblings = b"time_s,v\n1,3.1\n", b"time_s,v\n1,3.2\n", b"time_s,v\n1,3.3\n"
    with django_capture_on_commit_callbacks(execute=False):
        pushed = _push(_client(instrument_token.key), mine)
        _push(_client(stranger.key), theirs)
        _push(_client(sibling.key), siblings)
    client = _client(instrument_token.key)

    answer = client.get(URL, {"sha256": _sha(mine).upper()})
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["sha256"] == _sha(mine) and body["stored"] is True
    assert body["job"]["id"] == pushed["job"]["id"]
    assert body["job"]["url"].endswith(f"/api/v1/jobs/{pushed['job']['id']}/")

    # another project's bytes: not stored here (its upload would make a new raw file)
    assert client.get(URL, {"sha256": _sha(theirs)}).json() == {
        "sha256": _sha(theirs),
        "stored": False,
        "job": None,
    }
    # another source's bytes in this project: stored (an upload would be 409), job not named
    assert client.get(URL, {"sha256": _sha(siblings)}).json()["stored"] is True
    assert client.get(URL, {"sha256": _sha(siblings)}).json()["job"] is None
    # asking about another project is refused, as its upload would be
    assert client.get(URL, {"sha256": _sha(mine), "project": "other"}).status_code == 403


@pytest.mark.django_db
def test_people_ask_about_their_projects_and_a_bad_digest_is_400(
    project, user, instrument_token, django_capture_on_commit_callbacks
):
    content = b"time_s,v\n1,3.4\n"
    with django_capture_on_commit_callbacks(execute=False):
        _push(_client(instrument_token.key), content)
    person = APIClient()
    person.force_authenticate(user)
    assert person.get(URL, {"sha256": _sha(content)}).json()["stored"] is True
    assert person.get(URL, {"sha256": _sha(content), "project": "assb"}).json()["stored"] is True
    Project.objects.create(name="Elsewhere", slug="elsewhere")
    assert person.get(URL, {"sha256": _sha(content), "project": "elsewhere"}).json() == {
        "sha256": _sha(content),
        "stored": False,
        "job": None,
    }
    outsider = APIClient()
    from django.contrib.auth import get_user_model

    bob = get_user_model().objects.create_user("bob", password="pw-bob-12345")
    Membership.objects.create(project=Project.objects.get(slug="elsewhere"), user=bob)
    outsider.force_authenticate(bob)
    assert outsider.get(URL, {"sha256": _sha(content)}).json()["stored"] is False
    for bad in ("", "abc", "g" * 64, _sha(content) + "0"):
        assert person.get(URL, {"sha256": bad}).status_code == 400
    assert APIClient().get(URL, {"sha256": _sha(content)}).status_code == 401


@pytest.mark.django_db
def test_a_check_is_a_contact_and_the_dashboard_shows_each_harvester(
    project, instrument_token, django_user_model
):
    assert instrument_token.last_used_at is None
    silent = lims_services.instrument_token_create(instrument_name="silent-cycler", project=project)
    old = timezone.now() - timedelta(hours=2)
    InstrumentToken.objects.filter(pk=silent.pk).update(last_used_at=old)
    revoked = lims_services.instrument_token_create(instrument_name="gone", project=project)
    InstrumentToken.objects.filter(pk=revoked.pk).update(revoked=True)

    before = timezone.now()
    assert _client(instrument_token.key).get(URL, {"sha256": "0" * 64}).status_code == 200
    instrument_token.refresh_from_db()
    assert instrument_token.last_used_at is not None and instrument_token.last_used_at >= before

    contacts = selectors.harvester_contacts(now=timezone.now(), stale_after_s=900)
    state = {c.token.instrument.name: c.stale for c in contacts}
    assert state == {"cycler-test": False, "silent-cycler": True}

    staff = django_user_model.objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    browser = APIClient()
    browser.force_login(staff)
    page = browser.get("/dashboard/").content.decode()
    assert page.count('id="harvesters"') == 1
    assert "Harvesters" not in page.split("<title>", 1)[1].split("</title>", 1)[0]
    table = page.split('id="harvesters"', 1)[1].split("</table>", 1)[0]
    assert "cycler-test" in table and "in contact" in table
    assert "silent-cycler" in table and "stale" in table
    assert "gone" not in table


@pytest.mark.django_db
def test_last_contact_is_stamped_at_most_once_a_minute(instrument_token):
    """A busy instrument's calls do not each write its token row; a call a minute after
    the last stamp does."""
    client = _client(instrument_token.key)
    assert client.get(URL, {"sha256": "0" * 64}).status_code == 200
    instrument_token.refresh_from_db()
    first = instrument_token.last_used_at
    assert first is not None
    assert client.get(URL, {"sha256": "0" * 64}).status_code == 200
    instrument_token.refresh_from_db()
    assert instrument_token.last_used_at == first
    earlier = first - timedelta(seconds=61)
    InstrumentToken.objects.filter(pk=instrument_token.pk).update(last_used_at=earlier)
    assert client.get(URL, {"sha256": "0" * 64}).status_code == 200
    instrument_token.refresh_from_db()
    assert instrument_token.last_used_at > first
