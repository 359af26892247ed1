"""The ingest endpoint: storage, dedupe, auth, limits, clear failures (worker run in-process)."""

from __future__ import annotations

import hashlib
import io

import pytest
from django.test import override_settings

from lims.ingestion import services, storage
from lims.models import IngestionJob, RawFile

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def _post(client, content: bytes, name: str = "data.bin", **fields):
    upload = io.BytesIO(content)
    upload.name = name
    return client.post("/api/v1/ingest/", {"file": upload, **fields}, format="multipart")


@pytest.mark.django_db
def test_instrument_upload_is_stored_content_addressed_and_deduplicated(
    instrument_client, fixture_path, django_capture_on_commit_callbacks
):
    content = (fixture_path / MPR).read_bytes()
    with django_capture_on_commit_callbacks(execute=False):
        first = _post(instrument_client, content, "C09.mpr", cell="C-001")
    assert first.status_code == 202, first.content
    body = first.json()
    sha = hashlib.sha256(content).hexdigest()
    assert body["raw_file"] == {"sha256": sha, "size": len(content)}
    assert body["job"]["status"] == "pending"
    assert body["job"]["url"].endswith(f"/api/v1/jobs/{body['job']['id']}/")
    stored = storage.absolute(storage.raw_relpath(sha))
    assert stored.read_bytes() == content
    job = IngestionJob.objects.get(pk=body["job"]["id"])
    assert job.parser_name == "biologic_mpr"
    assert job.params == {"cell": "C-001"}
    assert job.instrument is not None and job.instrument.last_file_at is not None

    with django_capture_on_commit_callbacks(execute=False):
        again = _post(instrument_client, content, "renamed.mpr")
    assert again.status_code == 200
    assert again.json()["job"]["id"] == body["job"]["id"]
    assert RawFile.objects.count() == 1
    assert IngestionJob.objects.count() == 1


@pytest.mark.django_db
def test_unauthenticated_upload_is_refused(client):
    response = client.post("/api/v1/ingest/", {"file": io.BytesIO(b"x")})
    assert response.status_code in (401, 403)


@pytest.mark.django_db
def test_bad_token_is_refused():
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = _post(client, b"abc")
    assert response.status_code in (401, 403)


@pytest.mark.django_db
def test_instrument_cannot_ingest_into_another_project(instrument_client):
    from lims.models import Project

    Project.objects.create(name="Other", slug="other")
    response = _post(instrument_client, b"hello", project="other")
    assert response.status_code == 403
    assert RawFile.objects.count() == 0


@pytest.mark.django_db
def test_person_must_name_a_project_when_member_of_several(user_client, user):
    from lims.models import Membership, Project

    Membership.objects.create(
        project=Project.objects.create(name="P2", slug="p2"), user=user, role="editor"
    )
    assert _post(user_client, b"abc").status_code == 400
    assert _post(user_client, b"abc", project="p2").status_code == 202


@pytest.mark.django_db
@override_settings(LIMS_UPLOAD_MAX_BYTES=1000)
def test_upload_over_the_limit_is_refused(instrument_client):
    response = _post(instrument_client, b"x" * 5000)
    assert response.status_code == 413
    assert RawFile.objects.count() == 0


@pytest.mark.django_db
def test_unknown_kind_is_a_400(instrument_client):
    assert _post(instrument_client, b"abc", kind="spectrum").status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.mpr", b"", "empty"),
        ("garbage.bin", bytes(range(256)) * 40, "no parser recognises"),
        ("notes.txt", "Grüße, nothing tabular here\n".encode("utf-16"), "no parser recognises"),
    ],
)
def test_unparseable_files_are_kept_and_their_job_fails_clearly(
    instrument_client, name, content, expected, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = _post(instrument_client, content, name)
    assert response.status_code == 202
    job = services.job_run(job_id=response.json()["job"]["id"])
    assert job is not None
    assert job.status == "failed"
    assert name in job.error and expected in job.error
    assert storage.absolute(job.raw_file.storage_path).read_bytes() == content


@pytest.mark.django_db
def test_truncated_mpr_fails_with_location(
    instrument_client, fixture_path, django_capture_on_commit_callbacks
):
    content = (fixture_path / MPR).read_bytes()[:3000]
    with django_capture_on_commit_callbacks(execute=False):
        response = _post(instrument_client, content, "cut.mpr")
    job = services.job_run(job_id=response.json()["job"]["id"])
    assert job is not None and job.status == "failed"
    assert job.error.startswith("cut.mpr")
    assert len(job.error) > len("cut.mpr: ")


@pytest.mark.django_db
def test_job_endpoint_and_rerun(instrument_client, user_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job_id = _post(instrument_client, b"\x00\x01junk", "junk.bin").json()["job"]["id"]
    services.job_run(job_id=job_id)
    detail = instrument_client.get(f"/api/v1/jobs/{job_id}/").json()
    assert detail["status"] == "failed"
    assert detail["error"]
    # a person re-runs (an instrument may only push files and read its jobs)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        rerun = user_client.post(f"/api/v1/jobs/{job_id}/rerun/")
    assert rerun.status_code == 202
    assert rerun.json()["status"] == "pending"
    assert len(callbacks) == 1  # dispatched again on commit
    assert user_client.post(f"/api/v1/jobs/{job_id}/rerun/").status_code == 400


@pytest.mark.django_db
def test_malformed_multipart_is_a_400_not_a_500(instrument_client):
    body = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'
    response = instrument_client.generic(
        "POST", "/api/v1/ingest/", body, content_type="multipart/form-data; boundary=xyz"
    )
    assert response.status_code == 400
    assert RawFile.objects.count() == 0


@pytest.mark.django_db
def test_upload_without_a_file_is_a_400(instrument_client):
    response = instrument_client.post("/api/v1/ingest/", {"cell": "C-001"}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize(("after_s", "writes"), [(1.0, 0), (0.0, 2)])
def test_progress_is_written_only_for_a_job_running_long_enough_to_show_it(
    instrument_client, django_capture_on_commit_callbacks, after_s, writes
):
    """A small file's job finishes before a page's next poll: no progress writes (they were
    two write transactions per file); a slower one writes 50 and 90 as before."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with django_capture_on_commit_callbacks(execute=False):
        response = _post(instrument_client, b"time_s,voltage_v,current_a\n0,3.2,0.1\n1,3.3,0.1\n")
    with (
        override_settings(LIMS_JOB_PROGRESS_AFTER_S=after_s),
        CaptureQueriesContext(connection) as queries,
    ):
        job = services.job_run(job_id=response.json()["job"]["id"])
    assert job is not None and job.status != "failed", job.error
    progress = [q for q in queries.captured_queries if 'SET "progress"' in q["sql"]]
    assert len(progress) == writes


@pytest.mark.django_db
def test_an_instruments_last_file_is_stamped_to_the_minute(
    instrument_client, instrument_token, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from lims.models import Instrument

    instrument = instrument_token.instrument
    with django_capture_on_commit_callbacks(execute=False):
        assert _post(instrument_client, b"time,voltage\n0,3.1\n", "a.csv").status_code == 202
    instrument.refresh_from_db()
    first = instrument.last_file_at
    assert first is not None
    with django_capture_on_commit_callbacks(execute=False):
        assert _post(instrument_client, b"time,voltage\n0,3.2\n", "b.csv").status_code == 202
    instrument.refresh_from_db()
    assert instrument.last_file_at == first
    Instrument.objects.filter(pk=instrument.pk).update(last_file_at=first - timedelta(seconds=61))
    with django_capture_on_commit_callbacks(execute=False):
        assert _post(instrument_client, b"time,voltage\n0,3.3\n", "c.csv").status_code == 202
    instrument.refresh_from_db()
    assert instrument.last_file_at > first
