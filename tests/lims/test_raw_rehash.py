"""Raw files are re-hashed when a worker reads them and by a scheduled check."""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from cells.models import CyclingTest
from lims import services
from lims.ingestion import services as ingestion
from lims.ingestion import storage
from lims.models import IngestionJob, RawFile

MPR = "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


@contextmanager
def _tampered(path: Path, *, remove: bool = False) -> Iterator[None]:
    """Change (or remove) a stored blob, putting it back afterwards: the store is shared by
    the session's tests (content addressed)."""
    original, mode = path.read_bytes(), path.stat().st_mode
    path.chmod(mode | stat.S_IWUSR)
    try:
        if remove:
            path.unlink()
        else:
            data = bytearray(original)
            data[len(data) // 2] ^= 0x01  # one bit
            path.write_bytes(bytes(data))
        yield
    finally:
        path.write_bytes(original)
        os.chmod(path, stat.S_IMODE(mode))


def _upload(client, content: bytes, name: str, capture, **fields: str) -> IngestionJob:
    upload = io.BytesIO(content)
    upload.name = name
    with capture(execute=False):
        response = client.post("/api/v1/ingest/", {"file": upload, **fields}, format="multipart")
    assert response.status_code == 202, response.content
    return IngestionJob.objects.get(pk=response.json()["job"]["id"])


@pytest.mark.django_db
def test_a_worker_refuses_a_raw_file_whose_bytes_changed(
    instrument_client, cell, fixture_path, django_capture_on_commit_callbacks
):
    content = (fixture_path / MPR).read_bytes()
    capture = django_capture_on_commit_callbacks
    job = _upload(instrument_client, content, "C09.mpr", capture, cell=cell.code)
    path = storage.absolute(job.raw_file.storage_path)
    with _tampered(path):
        job = ingestion.job_run(job_id=job.pk)
    assert job is not None and job.status == "failed"
    assert "C09.mpr at " in job.error and str(path) in job.error
    assert "no longer matches its sha256" in job.error and job.raw_file.sha256 in job.error
    assert not CyclingTest.objects.exists()
    # the file put back, a re-run reads it
    with django_capture_on_commit_callbacks(execute=False):
        job = ingestion.job_rerun(job=job)
    job = ingestion.job_run(job_id=job.pk)
    assert job is not None and job.status == "succeeded", job.error


@pytest.mark.django_db
def test_the_scheduled_check_names_altered_and_missing_files(
    instrument_client, fixture_path, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    a = _upload(instrument_client, b"t,v\n0,1\n1,2\n# rehash a\n", "a.csv", capture)
    b = _upload(instrument_client, b"t,v\n0,1\n1,2\n# rehash b\n", "b.csv", capture)
    c = _upload(instrument_client, b"t,v\n0,1\n1,2\n# rehash c\n", "c.csv", capture)
    report = services.raw_files_verify()
    assert report["checked"] == RawFile.objects.count() == 3 and report["problems"] == []
    call_command("verify_raw_files")  # all match: no error

    path_a = storage.absolute(a.raw_file.storage_path)
    path_b = storage.absolute(b.raw_file.storage_path)
    with _tampered(path_a), _tampered(path_b, remove=True):
        report = services.raw_files_verify()
        found = {(p["path"], p["problem"]) for p in report["problems"]}
        assert found == {
            (a.raw_file.storage_path, "altered"),
            (b.raw_file.storage_path, "missing"),
        }
        assert report["problems"][0]["held_by"][0].startswith("assb:")
        with pytest.raises(CommandError, match="2 of 3 raw files missing or altered"):
            call_command("verify_raw_files")
    assert services.raw_files_verify()["problems"] == []
    assert c.raw_file.sha256 == storage.file_sha256(storage.absolute(c.raw_file.storage_path))


def test_beat_runs_the_check():
    entry = settings.CELERY_BEAT_SCHEDULE["raw-files-verify"]
    assert entry["task"] == "lims.raw_files_verify"
    from lims.celery import app

    app.loader.import_default_modules()
    assert "lims.raw_files_verify" in app.tasks
