"""A broker fault after the commit never turns an accepted upload into an error.

The job, raw file and event are committed before any message is sent; sending happens in
``on_commit`` hooks. The real outage (a Redis server stopped under gunicorn and a worker) is
in ``tests/faults/``; here each hook meets kombu's own "connection refused" error.
"""

from __future__ import annotations

import io

import pytest
from kombu.exceptions import OperationalError

from lims.events import tasks as event_tasks
from lims.ingestion import tasks as ingest_tasks
from lims.models import IngestionJob, OutboxEvent, RawFile

pytestmark = pytest.mark.django_db


def _refused(*_: object) -> None:
    raise OperationalError("Error 111 connecting to 127.0.0.1:6390. Connection refused.")


def _post(client, content: bytes):
    return client.post(
        "/api/v1/ingest/",
        {"file": io.BytesIO(content), "kind": "cycler"},
        format="multipart",
    )


def test_upload_answers_202_when_the_broker_is_down(
    instrument_client, monkeypatch, django_capture_on_commit_callbacks, caplog
):
    monkeypatch.setattr(ingest_tasks.ingest_job_run, "delay", _refused)
    monkeypatch.setattr(event_tasks.event_relay_pending, "delay", _refused)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(instrument_client, b"time,voltage\n0,3.1\n")

    assert response.status_code == 202, response.content
    job = IngestionJob.objects.get(pk=response.json()["job"]["id"])
    assert job.status == "pending"  # the sweep sends it once the broker is back
    assert RawFile.objects.filter(pk=job.raw_file_id).exists()
    assert OutboxEvent.objects.get(topic="lims.job.created").status == "pending"
    assert "could not send lims.ingest_job_run" in caplog.text


def test_a_failing_event_hook_does_not_skip_the_jobs_own_dispatch(
    instrument_client, monkeypatch, django_capture_on_commit_callbacks
):
    sent: list[int] = []
    monkeypatch.setattr(ingest_tasks.ingest_job_run, "delay", sent.append)
    monkeypatch.setattr(event_tasks.event_relay_pending, "delay", _refused)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(instrument_client, b"time,voltage\n0,3.2\n")

    assert response.status_code == 202
    assert sent == [response.json()["job"]["id"]]


def test_one_relay_task_per_transaction_relays_every_pending_event(
    project, monkeypatch, django_capture_on_commit_callbacks
):
    from django.db import transaction

    from lims.events.services import event_emit, event_relay_pending

    sent: list[None] = []
    monkeypatch.setattr(event_tasks.event_relay_pending, "delay", lambda: sent.append(None))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for n in range(5):
            event_emit(topic="test.thing", payload={"n": n})
    assert len(sent) == 1
    with django_capture_on_commit_callbacks(execute=True):
        event_emit(topic="test.thing", payload={"n": 5})  # the next transaction: its own relay
    assert len(sent) == 2

    assert event_relay_pending() == 6
    assert not OutboxEvent.objects.filter(status="pending").exists()
    assert event_relay_pending() == 0


def test_an_upload_queues_its_job_alone_and_the_job_relays_the_created_event(
    instrument_client, monkeypatch, django_capture_on_commit_callbacks
):
    """One task per upload: the job's task relays ``lims.job.created`` before it runs the
    job, in the queue's place the relay task had."""
    jobs: list[int] = []
    relays: list[None] = []
    monkeypatch.setattr(ingest_tasks.ingest_job_run, "delay", jobs.append)
    monkeypatch.setattr(event_tasks.event_relay_pending, "delay", lambda: relays.append(None))

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(instrument_client, b"time,voltage\n0,3.3\n")
    assert response.status_code == 202, response.content
    assert jobs == [response.json()["job"]["id"]] and relays == []
    created = OutboxEvent.objects.get(topic="lims.job.created")
    assert created.status == "pending"

    with django_capture_on_commit_callbacks(execute=True):
        ingest_tasks.ingest_job_run.apply(args=(jobs[0],))
    created.refresh_from_db()
    assert created.status == "dispatched"
