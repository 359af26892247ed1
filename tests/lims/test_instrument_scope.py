"""Instrument tokens push files and read their own jobs; every other endpoint refuses them."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from lims import services as lims_services
from lims.api.permissions import InstrumentScope
from lims.ingestion import services
from lims.models import IngestionJob, OutboxEvent


def _post(client, content: bytes, name: str = "data.bin", **fields):
    upload = io.BytesIO(content)
    upload.name = name
    return client.post("/api/v1/ingest/", {"file": upload, **fields}, format="multipart")


def _drf_views(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from _drf_views(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            cls = getattr(entry.callback, "cls", None)
            if cls is not None:
                yield prefix + str(entry.pattern), cls, getattr(entry.callback, "initkwargs", {})


def test_every_api_view_applies_the_instrument_scope():
    """A view that sets its own ``permission_classes`` must keep the default scope."""
    served_without_data = {"SpectacularAPIView", "SpectacularSwaggerView"}
    missing = [
        route
        for route, cls, initkwargs in _drf_views()
        if cls.__name__ not in served_without_data
        and InstrumentScope not in initkwargs.get("permission_classes", cls.permission_classes)
    ]
    assert len(list(_drf_views())) > 20
    assert missing == []


@pytest.fixture
def other_instrument_job(project, django_capture_on_commit_callbacks):
    """A job of another instrument of the same project."""
    token = lims_services.instrument_token_create(
        instrument_name="cycler-other", project=project, kind="cycler"
    )
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = services.ingest_submit(
            stream=io.BytesIO(b"other instrument's bytes"),
            filename="other.txt",
            project=project,
            instrument=token.instrument,
        )
    return job


@pytest.mark.django_db
def test_an_instrument_ingests_and_reads_only_its_own_jobs(
    instrument_client, other_instrument_job, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        pushed = _post(instrument_client, b"my bytes", "mine.txt")
    assert pushed.status_code == 202
    mine = pushed.json()["job"]["id"]
    assert instrument_client.get(f"/api/v1/jobs/{mine}/").status_code == 200
    listed = instrument_client.get("/api/v1/jobs/").json()["results"]
    assert [j["id"] for j in listed] == [mine]
    other = other_instrument_job.pk
    assert instrument_client.get(f"/api/v1/jobs/{other}/").status_code == 404
    # re-running is a person's decision, even for its own job
    refused = instrument_client.post(f"/api/v1/jobs/{mine}/rerun/")
    assert refused.status_code == 403
    assert "only ingest files and read its own jobs" in refused.json()["detail"]
    assert IngestionJob.objects.get(pk=mine).status == "pending"


@pytest.mark.django_db
def test_an_instrument_can_neither_create_nor_edit_cells(instrument_client, user_client, cell):
    events = OutboxEvent.objects.count()
    created = instrument_client.post(
        "/api/v1/cells/",
        {"code": "C-999", "project": "assb", "format": "bulk_pellet"},
        format="json",
    )
    assert created.status_code == 403
    patched = instrument_client.patch(
        f"/api/v1/cells/{cell.code}/", {"cathode_mass_mg": "99"}, format="json"
    )
    assert patched.status_code == 403
    cell.refresh_from_db()
    assert cell.cathode_mass_mg == Decimal("10")
    assert OutboxEvent.objects.count() == events
    assert instrument_client.get("/api/v1/cells/").status_code == 403
    assert instrument_client.get(f"/api/v1/cells/{cell.code}/").status_code == 403
    # people are not affected
    assert user_client.get(f"/api/v1/cells/{cell.code}/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/recipes/"),
        ("post", "/api/v1/recipes/"),
        ("get", "/api/v1/process-references/"),
        ("get", "/api/v1/samples/"),
        ("post", "/api/v1/samples/import/"),
        ("get", "/api/v1/projects/"),
        ("get", "/api/v1/instruments/"),
        ("post", "/api/v1/column-mappings/"),
        ("get", "/api/v1/deposition-runs/"),
        ("options", "/api/v1/jobs/"),
    ],
)
def test_other_endpoints_refuse_an_instrument(instrument_client, method, path):
    response = getattr(instrument_client, method)(path, {}, format="json")
    assert response.status_code == 403, (path, response.content)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/cells/", "/jobs/", "/upload/", "/samples/", "/admin/"])
def test_pages_do_not_take_an_instrument_token(instrument_token, client, path):
    """Pages authenticate by session only: the token header gets the login page."""
    response = client.get(path, HTTP_AUTHORIZATION=f"Token {instrument_token.key}")
    assert response.status_code == 302
    assert "login" in response["Location"]
