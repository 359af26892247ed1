"""Leases with real processes: a killed worker's job comes back, a poison file ends once.

The worker here runs on its own queue with a 3 s lease renewed every 0.5 s, an embedded beat
sweeping every second, a 768 MiB per-child memory cap and the test-only parser of
``tests/runtime_parsers.py`` (its files say how long to sleep, or to die, or to allocate).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from lims.celery import app
from lims.ingestion import services
from lims.models import IngestionJob
from tests.conftest import ROOT, wait_for
from tests.runtime_parsers import MAGIC, install

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

QUEUE = "lims-lease-test"
LEASE_S = 3.0
ENV = {
    "LIMS_TASK_QUEUE": QUEUE,
    "LIMS_JOB_LEASE_S": str(LEASE_S),
    "LIMS_JOB_LEASE_RENEW_S": "0.5",
    "LIMS_SWEEP_EVERY_S": "1",
    "LIMS_JOB_MAX_LOST": "3",
    "LIMS_WORKER_MEMORY_LIMIT_MB": "768",
}


class Worker:
    """One worker process group (pool children and embedded beat) that a test may kill."""

    def __init__(self, name: str) -> None:
        db = settings.DATABASES["default"]
        env = {
            **os.environ,
            **ENV,
            "DJANGO_SETTINGS_MODULE": "lims.settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "LIMS_DATA_DIR": str(settings.DATA_DIR),
        }
        self.log = open(Path(settings.DATA_DIR) / f"{name}.log", "ab")  # noqa: SIM115
        celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
        self.hostname = f"{name}@%h"
        self.proc = subprocess.Popen(
            [
                celery,
                "-A",
                "tests.runtime_worker",
                "worker",
                "--beat",
                f"--schedule={Path(settings.DATA_DIR) / (name + '-beat')}",
                "--concurrency=1",
                "--max-memory-per-child=1500000",
                f"--queues={QUEUE}",
                "--loglevel=INFO",
                f"--hostname={self.hostname}",
                "--without-mingle",
                "--without-gossip",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() takes the whole worker
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited: see {self.log.name}")
            if app.control.ping(timeout=0.5):
                return
        self.stop()
        raise RuntimeError("worker did not answer a ping within 60 s")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def lease_env(settings) -> Iterator[None]:
    """This process dispatches to the test worker's queue and reads leases as it does."""
    install()
    settings.LIMS_JOB_LEASE_S = LEASE_S
    settings.LIMS_JOB_MAX_LOST = 3
    import redis

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(QUEUE)
    default_queue, app.conf.task_default_queue = app.conf.task_default_queue, QUEUE
    yield
    app.conf.task_default_queue = default_queue


@pytest.fixture
def worker(lease_env) -> Iterator[Worker]:
    w = Worker("lease-worker")
    yield w
    w.stop()


def _submit(project, command: str) -> IngestionJob:
    content = MAGIC + b"\n" + command.encode() + b"\n" + os.urandom(8).hex().encode()
    job, created = services.ingest_submit(
        stream=io.BytesIO(content), filename="runtime.rtt", project=project
    )
    assert created and job.parser_name == "runtime_test"
    return job


def _holder_pid(job: IngestionJob) -> int:
    def leased():
        job.refresh_from_db()
        return job.leased_by if job.status == "running" else None

    return int(wait_for(leased, timeout=30, interval=0.05).split(":")[1])


def _final(job: IngestionJob, timeout: float = 60) -> IngestionJob:
    def done():
        job.refresh_from_db()
        return job.status not in ("pending", "running")

    wait_for(done, timeout=timeout)
    return job


def test_killed_pool_child_gives_its_job_back_and_the_next_attempt_finishes(worker, project):
    job = _submit(project, "sleep 3")
    pid = _holder_pid(job)
    first_lease = job.lease_expires_at
    time.sleep(1.2)  # the heartbeat thread renews the lease while the parser sleeps
    job.refresh_from_db()
    assert job.status == "running" and job.lease_expires_at > first_lease

    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    job = _final(job)

    assert job.status == "succeeded", job.error
    assert job.attempts == 2 and job.lost_attempts == 1
    assert job.result["pid"] != pid
    assert job.leased_by == "" and job.lease_expires_at is None
    # the message came back at once (reject on worker lost) and the dead holder was seen
    # without waiting for the lease: one new attempt of 3 s, plus a child's start
    assert time.monotonic() - killed < 3 + LEASE_S + 5


def test_whole_worker_killed_the_sweep_puts_the_job_back_and_a_new_worker_finishes(worker, project):
    job = _submit(project, "sleep 2")
    _holder_pid(job)
    worker.kill()  # main process, pool child and beat at once: nothing is redelivered
    time.sleep(LEASE_S + 0.5)
    job.refresh_from_db()
    assert job.status == "running"  # nobody is left to notice ...

    fresh = Worker("lease-worker-2")  # ... until a worker's beat sweeps the expired lease
    try:
        job = _final(job, timeout=30)
    finally:
        fresh.stop()
    assert job.status == "succeeded", job.error
    assert job.attempts == 2 and job.lost_attempts == 1


def test_a_poison_file_kills_its_worker_three_times_then_fails_for_good(worker, project):
    job = _submit(project, "die")
    job = _final(job, timeout=90)

    assert job.status == "failed"
    assert job.error == (
        "runtime.rtt: the worker died while reading this file (3 attempts); not retried"
    )
    assert job.attempts == 3 and job.lost_attempts == 3
    time.sleep(2)  # several sweeps later it is still failed, not queued again
    job.refresh_from_db()
    assert job.status == "failed" and job.attempts == 3
    # and the worker is still there for the next file
    ok = _final(_submit(project, "sleep 0"))
    assert ok.status == "succeeded", ok.error


def test_an_allocation_past_the_child_cap_fails_the_job_with_a_clear_cause(worker, project):
    job = _final(_submit(project, "alloc 2048"))

    assert job.status == "failed"
    assert job.error == (
        "runtime.rtt: ran out of memory reading this file (limit 768 MiB per worker process)"
    )
    assert job.lost_attempts == 0 and job.attempts == 1
    # polars and numpy still work under the cap (2 M rows, about 32 MB of columns)
    frame = _final(_submit(project, "polars 2000000"))
    assert frame.status == "succeeded", frame.error
    assert frame.result["rows"] == 2_000_000


def test_rerun_reclaims_a_running_job_whose_worker_died(worker, project):
    job = _submit(project, "sleep 3")
    _holder_pid(job)
    with pytest.raises(ValidationError, match="its worker holds it until"):
        services.job_rerun(job=job)  # a live worker holds it: refused, with the reason
    worker.kill()
    services.job_rerun(job=job)  # its holder is gone: queued again at once, no waiting
    job.refresh_from_db()
    assert job.status == "pending" and job.leased_by == ""

    fresh = Worker("lease-worker-3")
    try:
        job = _final(job, timeout=30)
    finally:
        fresh.stop()
    assert job.status == "succeeded", job.error
    assert job.attempts == 2
