"""Storage faults on a real disk (a tmpfs made read-only or filled): the API answers 503/507
with Retry-After and records nothing; a job meeting the fault goes back to pending, never
failed as bad data, and finishes once the store is back."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from lims.ingestion import services, storage
from lims.models import IngestionJob, RawFile
from tests.faults.mounts import fill, read_only, tmpfs

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


@pytest.fixture
def store(settings, tmp_path_factory) -> Iterator[Path]:
    with tmpfs(Path(django_settings.DATA_DIR) / f"faults-{tmp_path_factory.mktemp('s').name}") as p:
        settings.LIMS_STORAGE_DIR = p
        yield p
        read_only(p, on=False)


def _post(client, content: bytes):
    return client.post(
        "/api/v1/ingest/", {"file": io.BytesIO(content), "cell": "C-001"}, format="multipart"
    )


@pytest.mark.django_db
def test_a_read_only_store_answers_503_and_records_nothing(
    instrument_client, fixture_path, store, django_capture_on_commit_callbacks
):
    content = (fixture_path / MPR).read_bytes()
    read_only(store)

    response = _post(instrument_client, content)

    assert response.status_code == 503, response.content
    assert response["Retry-After"] == "60"
    assert "nothing was stored" in response.json()["detail"]
    assert "Read-only file system" in response.json()["detail"]
    assert not RawFile.objects.exists() and not IngestionJob.objects.exists()

    read_only(store, on=False)  # mended: the client's retry is accepted
    with django_capture_on_commit_callbacks(execute=False):
        assert _post(instrument_client, content).status_code == 202


@pytest.mark.django_db
def test_full_upload_temp_space_answers_507_not_a_malformed_body(
    instrument_client, fixture_path, settings, tmp_path
):
    content = (fixture_path / MPR).read_bytes()
    with tmpfs(tmp_path / "upload-tmp", size="1m") as temp:
        settings.FILE_UPLOAD_TEMP_DIR = str(temp)
        fill(temp)
        response = _post(instrument_client, content)

    assert response.status_code == 507, response.content
    assert response["Retry-After"] == "60"
    assert "No space left on device" in response.json()["detail"]
    assert not RawFile.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rerun_while_the_store_is_read_only_goes_back_to_pending(
    project, fixture_path, store, django_capture_on_commit_callbacks, monkeypatch
):
    # committed for real here (transaction=True), so on-commit hooks run despite the capture:
    # keep the job's dispatch from reaching the session's worker, which would race this test
    # for the job (it read another store and failed the job: CI saw it once)
    dispatched: list[int] = []
    monkeypatch.setattr(services, "_dispatch", dispatched.append)
    content = (fixture_path / MPR).read_bytes()
    with django_capture_on_commit_callbacks(execute=False):
        job, _ = services.ingest_submit(
            stream=io.BytesIO(content), filename="C09.mpr", project=project
        )
    assert services.job_run(job_id=job.pk).status == "needs_linking"
    read_only(store)

    with django_capture_on_commit_callbacks(execute=False):
        services.job_rerun(job=job)
    with pytest.raises(storage.StorageUnavailable, match="not writable: Read-only"):
        services.job_run(job_id=job.pk)  # the task retries it (a transient error)

    job.refresh_from_db()
    assert (job.status, job.error, job.leased_by) == ("pending", "", "")
    read_only(store, on=False)
    assert services.job_run(job_id=job.pk).status == "needs_linking"
    assert dispatched == [job.pk, job.pk]  # the upload, the re-run
