"""One decorator for every task (Sentry's habit): queue, time limits and the retry policy.

Tasks take JSON-safe ids, call one service, and let transient infrastructure errors
(database, broker, storage) retry with backoff. Everything else is terminal and is the
service's job to record (a failed ingestion job, a failed delivery).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from celery import shared_task
from django.db import InterfaceError, OperationalError

from lims.changelog import change_context

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    TimeoutError,
)

F = TypeVar("F", bound=Callable[..., Any])


def lims_task(
    name: str, *, max_retries: int = 5, soft_time_limit: int = 1800, context: str = "ingest"
) -> Callable[[F], Any]:
    def decorator(func: F) -> Any:
        @wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with change_context(context, request_id=f"task-{uuid.uuid4().hex[:16]}"):
                return func(*args, **kwargs)

        return shared_task(
            name=name,
            autoretry_for=TRANSIENT_ERRORS,
            retry_backoff=2,
            retry_backoff_max=300,
            retry_jitter=True,
            max_retries=max_retries,
            soft_time_limit=soft_time_limit,
            time_limit=soft_time_limit + 60,
            acks_late=True,
        )(run)

    return decorator
