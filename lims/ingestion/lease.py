"""The lease a running job holds: who holds it, until when, and the thread that renews it.

A worker that dies (killed pool child, OOM killer, lost host) stops renewing; once the lease
has expired anyone may take the job back (the sweep, a redelivered message, a re-run). A
holder on this host whose process is gone is dead at once, without waiting for the expiry.
The holder's token is unique per attempt, so a worker that lost its lease (a database outage
longer than the lease) cannot write over the attempt that took the job from it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from lims.models import IngestionJob

log = logging.getLogger(__name__)

# tokens of the attempts this process is working on now
_ACTIVE: set[str] = set()


def new_token() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def expiry(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.LIMS_JOB_LEASE_S)


def _holder(token: str) -> tuple[str, int]:
    host, _, rest = token.partition(":")
    pid_text = rest.partition(":")[0]
    return host, int(pid_text) if pid_text.isdigit() else -1


def ended_here(token: str) -> bool:
    """The attempt ran in this very process and is over (it gave the job back, or a database
    error kept it from doing so): not a death, so it does not count as a lost attempt."""
    return _holder(token) == (socket.gethostname(), os.getpid()) and token not in _ACTIVE


def holder_is_dead(token: str) -> bool:
    """True when the token names a process on this host that no longer exists."""
    host, pid = _holder(token)
    if host != socket.gethostname() or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


def is_stale(job: IngestionJob, now: datetime | None = None) -> bool:
    """A running job nobody works on: its lease expired, or its holder is dead."""
    if job.status != IngestionJob.Status.RUNNING:
        return False
    now = now or timezone.now()
    if job.lease_expires_at is None:  # running before leases existed
        started = job.started_at or job.queued_at
        return started + timedelta(seconds=settings.LIMS_JOB_LEASE_S) < now
    return job.lease_expires_at < now or holder_is_dead(job.leased_by) or ended_here(job.leased_by)


class LeaseKeeper(threading.Thread):
    """Renews a job's lease every ``LIMS_JOB_LEASE_RENEW_S`` on its own connection.

    Parsing may hold the main thread for minutes in one call (a 10 M-row file), so renewal at
    progress points is not enough. ``lost`` is set when the lease was taken from us.
    """

    def __init__(self, job_id: int, token: str) -> None:
        super().__init__(name=f"lease-job-{job_id}", daemon=True)
        self.job_id, self.token = job_id, token
        self.lost = threading.Event()
        self._done = threading.Event()

    def run(self) -> None:
        try:
            while not self._done.wait(settings.LIMS_JOB_LEASE_RENEW_S):
                try:
                    held = IngestionJob.objects.filter(
                        pk=self.job_id, status=IngestionJob.Status.RUNNING, leased_by=self.token
                    ).update(lease_expires_at=expiry())
                except Exception:  # database away: try again, the lease covers a few misses
                    log.warning("job %s: could not renew its lease", self.job_id, exc_info=True)
                    connection.close()
                    continue
                if not held:
                    self.lost.set()
                    return
        finally:
            connection.close()

    def start(self) -> None:
        _ACTIVE.add(self.token)
        super().start()

    def stop(self) -> None:
        self._done.set()
        _ACTIVE.discard(self.token)
        self.join(timeout=10)
