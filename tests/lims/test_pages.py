"""Browser pages render for the right people and say what they should."""

from __future__ import annotations

import io
import re

import pytest

from lims.ingestion import services
from lims.models import IngestionJob, WorkerHeartbeat


@pytest.mark.django_db
def test_pages_need_a_login(client):
    for url in ("/cells/", "/upload/", "/jobs/"):
        response = client.get(url)
        assert response.status_code == 302 and "/login/" in response["Location"]


@pytest.mark.django_db
def test_upload_form_creates_a_job_and_shows_it(client, user, django_capture_on_commit_callbacks):
    client.force_login(user)
    upload = io.BytesIO(b"\x00garbage\x01")
    upload.name = "mystery.bin"
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(
            "/upload/", {"file": upload, "project": user.projects.get().pk, "kind": ""}
        )
    job = IngestionJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    services.job_run(job_id=job.pk)
    page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert "mystery.bin" in page and "no parser recognises" in page and "Re-run" in page
    status = client.get(f"/jobs/{job.pk}/status/").json()
    assert status["status"] == "failed" and status["finished"]
    listing = client.get("/jobs/?status=failed").content.decode()
    assert "mystery.bin" in listing


@pytest.mark.django_db
def test_jobs_of_other_projects_are_invisible(client, user, django_capture_on_commit_callbacks):
    from lims.models import Project

    other = Project.objects.create(name="Secret", slug="secret")
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = services.ingest_submit(stream=io.BytesIO(b"x"), filename="x.bin", project=other)
    client.force_login(user)
    assert client.get(f"/jobs/{job.pk}/").status_code == 404
    assert "x.bin" not in client.get("/jobs/").content.decode()


@pytest.mark.django_db
def test_dashboard_is_for_staff_and_shows_health(client, user, admin_user):
    from django.utils import timezone

    client.force_login(user)
    assert client.get("/dashboard/").status_code == 302
    WorkerHeartbeat.objects.create(hostname="worker@lab", seen_at=timezone.now())
    client.force_login(admin_user)
    page = client.get("/dashboard/").content.decode()
    assert "Ingestion health" in page and "worker@lab" in page and "alive" in page


@pytest.mark.django_db
def test_cell_pages(client, user, cell):
    client.force_login(user)
    listing = client.get("/cells/?q=C-00").content.decode()
    assert "C-001" in listing
    detail = client.get("/cells/C-001/").content.decode()
    assert "7.0000 mg" in detail and "composite mass x active fraction" in detail
    assert "vendor/plotly/plotly.min.js" in detail
    response = client.post(
        "/cells/C-001/edit/",
        {
            "format": "bulk_pellet",
            "cell_type": "cathode_half",
            "ratio_active": "70",
            "ratio_se": "30",
            "ratio_carbon": "0",
            "cathode_mass_mg": "20",
            "notes": "heavier",
            "reason": "re-weighed after pressing",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    cell.refresh_from_db()
    assert cell.active_mass_mg == 14


@pytest.mark.django_db
def test_static_plotly_is_served_locally(client, user):
    from django.contrib.staticfiles import finders

    assert finders.find("vendor/plotly/plotly.min.js")


@pytest.mark.django_db
def test_schema_and_swagger_ui_are_served_without_a_cdn(user_client, client, user):
    assert user_client.get("/api/schema/").status_code == 200
    client.force_login(user)
    page = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in page
    # every script and style is the app's own: no URL to another host (a random CSRF token
    # may well contain the letters "cdn", so look at addresses, not at text)
    addresses = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page)
    assert addresses and all(not a.startswith(("http:", "https:", "//")) for a in addresses)
