"""The beat safety net re-dispatches what a lost message or a dead worker left behind."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

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
    monkeypatch.setattr(
        event_tasks.event_relay_pending, "delay", lambda: sent.append(("events", None))
    )
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
    assert sent.count(("events", None)) == 1  # one batch relay for all pending events
    assert IngestionJob.objects.get(pk=dead.pk).status == "pending"
    assert fresh.pk not in [i for _, i in sent]
    # sent again: its clock starts over, so the next sweep does not send another copy
    assert IngestionJob.objects.get(pk=stale.pk).queued_at > old
    sent.clear()
    assert services.sweep_stuck()["jobs"] == 0 and ("job", stale.pk) not in sent


@pytest.mark.django_db
def test_a_broker_fault_in_the_sweep_is_logged_and_leaves_the_job_for_the_next(
    project, monkeypatch, caplog
):
    from kombu.exceptions import OperationalError

    from lims.ingestion import tasks as ingest_tasks

    def broker_down(*_):
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(ingest_tasks.ingest_job_run, "delay", broker_down)
    raw = RawFile.objects.create(
        sha256="e" * 64, size=1, original_name="x", project=project, storage_path="x"
    )
    job = IngestionJob.objects.create(
        raw_file=raw, parser_name="p", parser_version="1", project=project
    )
    old = timezone.now() - timedelta(hours=2)
    IngestionJob.objects.filter(pk=job.pk).update(queued_at=old)

    assert services.sweep_stuck()["jobs"] == 1
    assert IngestionJob.objects.get(pk=job.pk).queued_at == old  # not sent: due again
    assert "could not send lims.ingest_job_run" in caplog.text


def _running_job(project, *, lease_s: float, holder: str = "elsewhere:1:abcd1234", lost=0):
    raw = RawFile.objects.create(
        sha256="b" * 64, size=1, original_name="cell.csv", project=project, storage_path="x"
    )
    now = timezone.now()
    return IngestionJob.objects.create(
        raw_file=raw,
        parser_name="p",
        parser_version="1",
        project=project,
        status="running",
        started_at=now - timedelta(minutes=1),
        lease_expires_at=now + timedelta(seconds=lease_s),
        leased_by=holder,
        lost_attempts=lost,
        attempts=lost + 1,
    )


@pytest.fixture
def dispatched(monkeypatch) -> list[int]:
    from lims.ingestion import tasks as ingest_tasks

    sent: list[int] = []
    monkeypatch.setattr(ingest_tasks.ingest_job_run, "delay", sent.append)
    return sent


@pytest.mark.django_db
def test_sweep_gives_back_an_expired_lease_and_leaves_a_live_one(project, dispatched):
    expired = _running_job(project, lease_s=-1)
    live = IngestionJob.objects.create(
        raw_file=expired.raw_file,
        parser_name="p",
        parser_version="2",
        project=project,
        status="running",
        started_at=timezone.now() - timedelta(hours=3),  # long, but its lease is renewed
        lease_expires_at=timezone.now() + timedelta(seconds=60),
        leased_by="elsewhere:2:abcd1234",
    )

    assert services.sweep_stuck()["jobs"] == 1

    expired.refresh_from_db()
    assert (expired.status, expired.lost_attempts, expired.leased_by) == ("pending", 1, "")
    assert expired.lease_expires_at is None
    assert dispatched == [expired.pk]
    live.refresh_from_db()
    assert live.status == "running" and live.lost_attempts == 0


@pytest.mark.django_db
def test_sweep_fails_a_job_whose_workers_died_max_times(project, dispatched, settings):
    settings.LIMS_JOB_MAX_LOST = 3
    job = _running_job(project, lease_s=-1, lost=2)

    assert services.sweep_stuck()["jobs"] == 0

    job.refresh_from_db()
    assert job.status == "failed" and job.lost_attempts == 3
    assert (
        job.error == "cell.csv: the worker died while reading this file (3 attempts); not retried"
    )
    assert dispatched == []
    assert OutboxEvent.objects.filter(topic="lims.job.failed").exists()
    services.sweep_stuck()  # a failed job stays failed
    job.refresh_from_db()
    assert job.status == "failed" and dispatched == []


@pytest.mark.django_db
def test_rerun_refuses_a_live_lease_and_reclaims_an_expired_one(
    project, dispatched, django_capture_on_commit_callbacks
):
    from django.core.exceptions import ValidationError

    from lims.ingestion.services import job_rerun

    job = _running_job(project, lease_s=60)
    with pytest.raises(ValidationError, match="its worker holds it until"):
        job_rerun(job=job)
    IngestionJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        job = job_rerun(job=job)
    assert job.status == "pending" and job.leased_by == "" and job.lost_attempts == 0
    assert dispatched == [job.pk]


@pytest.mark.django_db
def test_a_holder_process_gone_from_this_host_is_dead_before_its_lease_ends(project):
    import socket
    import subprocess
    import sys

    from lims.ingestion import lease

    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        job = _running_job(project, lease_s=60, holder=f"{host}:{sleeper.pid}:a1")
        assert not lease.is_stale(job)  # alive, lease live
        sleeper.kill()
        sleeper.wait()
        assert lease.is_stale(job)  # gone: no need to wait 60 s
    finally:
        sleeper.kill()
    job.leased_by = f"other-host:{sleeper.pid}:a1"
    assert not lease.is_stale(job)  # another host's pids say nothing here


@pytest.mark.django_db(transaction=True)
def test_the_lease_keeper_renews_on_its_own_connection_and_notices_a_takeover(project, settings):
    from lims.ingestion import lease

    settings.LIMS_JOB_LEASE_RENEW_S = 0.05
    token = lease.new_token()
    job = _running_job(project, lease_s=1, holder=token)
    first = job.lease_expires_at
    keeper = lease.LeaseKeeper(job.pk, token)
    keeper.start()
    try:
        time.sleep(0.3)
        job.refresh_from_db()
        assert job.lease_expires_at > first + timedelta(seconds=60)  # renewed to a full lease
        assert not lease.is_stale(job)
        IngestionJob.objects.filter(pk=job.pk).update(leased_by="elsewhere:9:takeover")
        assert keeper.lost.wait(2)
    finally:
        keeper.stop()
    assert not keeper.is_alive()
    # this process's attempt is over: the job reads as stale without counting a death
    IngestionJob.objects.filter(pk=job.pk).update(leased_by=token)
    job.refresh_from_db()
    assert lease.is_stale(job) and lease.ended_here(token)


@pytest.mark.django_db(transaction=True)
def test_an_attempt_that_lost_its_lease_writes_nothing(project, settings, monkeypatch):
    """A worker cut off from the database past its lease must not overwrite the new attempt."""
    from lims.ingestion import registry
    from lims.ingestion import services as ingest
    from tests.runtime_parsers import install

    install()
    raw = RawFile.objects.create(
        sha256="c" * 64, size=1, original_name="x.rtt", project=project, storage_path="x"
    )
    job = IngestionJob.objects.create(
        raw_file=raw, parser_name="runtime_test", parser_version="1", project=project
    )
    monkeypatch.setattr(ingest.storage, "absolute", lambda _: tmp_file)
    tmp_file = Path(settings.DATA_DIR) / "lost-lease.rtt"
    tmp_file.write_bytes(b"#lims-runtime-test\nsleep 0\n")

    def taken_meanwhile(*, job, data):  # the sweep gave the job to another attempt
        IngestionJob.objects.filter(pk=job.pk).update(leased_by="elsewhere:7:next")
        return data

    handler = registry.get_handler("runtime_test")
    monkeypatch.setitem(
        registry._HANDLERS,
        "runtime_test",
        registry.IngestHandler("runtime_test", taken_meanwhile, handler.persist),
    )

    assert ingest.job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == "running" and job.leased_by == "elsewhere:7:next"
    assert not OutboxEvent.objects.filter(topic__startswith="lims.job.f").exists()


@pytest.mark.django_db(transaction=True)
def test_a_job_locked_by_another_transaction_is_waited_for_not_dropped(
    project, settings, monkeypatch
):
    """The message is the job's only ride: a claim that meets the row locked (a companion
    log's handler checking whether to queue its data log again) must wait, not ack and leave
    the job pending for ever (seen as a data log stuck pending after three companions)."""
    import threading

    from django.db import connection, transaction

    from lims.ingestion import services as ingest
    from tests.runtime_parsers import install

    install()
    raw = RawFile.objects.create(
        sha256="d" * 64, size=1, original_name="x.rtt", project=project, storage_path="x"
    )
    job = IngestionJob.objects.create(
        raw_file=raw, parser_name="runtime_test", parser_version="1", project=project
    )
    tmp_file = Path(settings.DATA_DIR) / "locked-claim.rtt"
    tmp_file.write_bytes(b"#lims-runtime-test\nsleep 0\n")
    monkeypatch.setattr(ingest.storage, "absolute", lambda _: tmp_file)
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        try:
            with transaction.atomic():
                IngestionJob.objects.select_for_update().get(pk=job.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    assert locked.wait(10)
    threading.Timer(0.3, release.set).start()
    try:
        ran = ingest.job_run(job_id=job.pk)
    finally:
        release.set()
        holder.join(10)
    assert ran is not None
    job.refresh_from_db()
    assert job.status == "succeeded", job.error
