"""One decorator for every task (Sentry's habit): queue, time limits and the retry policy.

Tasks take JSON-safe ids, call one service, and let transient infrastructure errors
(database, broker, storage) retry with backoff. Everything else is terminal and is the
service's job to record (a failed ingestion job, a failed delivery).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import resource
import uuid
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, TypeVar

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from lims.changelog import change_context
from lims.ingestion.storage import StorageUnavailable

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    StorageUnavailable,  # a read-only or full store: never the data's fault
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger(__name__)
_IN_TASK: contextvars.ContextVar[bool] = contextvars.ContextVar("lims_in_task", default=False)


def in_task() -> bool:
    """True while a ``lims_task`` runs in this thread (a worker, or a task called eagerly),
    or inside ``as_task()``."""
    return _IN_TASK.get()


@contextlib.contextmanager
def as_task() -> Iterator[None]:
    """Run a batch job (a management command) as a task does: events relayed in-process
    after each commit instead of one queued relay per transaction."""
    marker = _IN_TASK.set(True)
    try:
        yield
    finally:
        _IN_TASK.reset(marker)


def enqueue(task: Any, *args: Any, **options: Any) -> bool:
    """Send a task; a broker fault is logged and swallowed (False), never raised.

    Every caller runs after its data committed (``on_commit``, the sweep): the job, event or
    delivery is already safe in the database, and the beat sweep re-sends what is still
    pending (``LIMS_STUCK_AFTER_S``). Raising here turned committed uploads into 500s and made
    one failed hook skip the hooks after it.
    """
    try:
        if options:
            task.apply_async(args, **options)
        else:
            task.delay(*args)
    except Exception:  # kombu/redis raise many types for "broker away"
        log.warning("could not send %s%r; the sweep sends it again", task.name, args, exc_info=True)
        return False
    return True


def cap_child_memory(**_: Any) -> None:
    """Cap a pool child's data memory (``worker_process_init``): an allocation past the cap
    raises MemoryError in that child (a failed job) before the machine's OOM killer acts.
    ``--max-memory-per-child`` only recycles a child after its task ends."""
    limit_mb = settings.LIMS_WORKER_MEMORY_LIMIT_MB
    if limit_mb <= 0:
        return
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    limit = limit_mb * 1024 * 1024
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    log.info("worker child memory capped at %s MiB (RLIMIT_DATA)", limit // 1024 // 1024)


def lims_task(
    name: str,
    *,
    max_retries: int = 5,
    soft_time_limit: int = 1800,
    time_limit: int | None = None,
    context: str = "ingest",
) -> Callable[[F], Any]:
    def decorator(func: F) -> Any:
        @wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with as_task(), change_context(context, request_id=f"task-{uuid.uuid4().hex[:16]}"):
                return func(*args, **kwargs)

        return shared_task(
            name=name,
            autoretry_for=TRANSIENT_ERRORS,
            retry_backoff=2,
            retry_backoff_max=300,
            retry_jitter=True,
            max_retries=max_retries,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit or soft_time_limit + 60,
            acks_late=True,
            # a child killed mid-task (OOM killer, SIGKILL) returns its message to the queue;
            # the job's lease and its count of lost attempts stop a poison file
            reject_on_worker_lost=True,
        )(run)

    return decorator
