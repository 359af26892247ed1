"""The beat safety net re-dispatches what a lost message or a dead worker left behind."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from lims import services
from lims.models import IngestionJob, OutboxEvent, RawFile


@pytest.mark.django_db
def test_sweep_redispatches_stale_pending_and_dead_running_jobs(project, monkeypatch):
    sent: list[tuple[str, object]] = []
    from lims.events import tasks as event_tasks
    from lims.ingestion import tasks as ingest_tasks

    monkeypatch.setattr(ingest_tasks.ingest_job_run, "delay", lambda i: sent.append(("job", i)))
    monkeypatch.setattr(event_tasks.event_relay, "delay", lambda i: sent.append(("event", i)))
    raw = RawFile.objects.create(
        sha256="a" * 64,
        size=1,
        original_name="x",
        project=project,
        storage_path="raw/aa/" + "a" * 64,
    )
    old = timezone.now() - timedelta(hours=2)
    stale = IngestionJob.objects.create(
        raw_file=raw, parser_name="p", parser_version="1", project=project
    )
    fresh = IngestionJob.objects.create(
        raw_file=raw, parser_name="p", parser_version="2", project=project
    )
    dead = IngestionJob.objects.create(
        raw_file=raw,
        parser_name="p",
        parser_version="3",
        project=project,
        status="running",
        started_at=old,
    )
    IngestionJob.objects.filter(pk__in=[stale.pk, dead.pk]).update(created_at=old, queued_at=old)
    event = OutboxEvent.objects.create(topic="lims.job.created", payload={})
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=old)

    counts = services.sweep_stuck()

    assert counts == {"jobs": 2, "events": 1, "deliveries": 0}
    assert sorted(i for kind, i in sent if kind == "job") == sorted([stale.pk, dead.pk])
    assert ("event", str(event.pk)) in sent
    assert IngestionJob.objects.get(pk=dead.pk).status == "pending"
    assert fresh.pk not in [i for _, i in sent]
