"""Exponential backoff with jitter, for the wait before the next try at an unreachable server."""

from __future__ import annotations

import random
from collections.abc import Callable

from lims_harvester.config import Backoff


def delay(
    attempt: int,
    policy: Backoff,
    *,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after the ``attempt``-th failure in a row (1 = the first).

    ``initial * factor**(attempt-1)``, capped at ``max``, of which the upper half is random
    ("equal jitter": harvesters on many instrument PCs do not all come back at the same
    second after an outage). A server's Retry-After is a floor, still capped at ``max``.
    """
    attempt = max(1, attempt)
    base = min(policy.max_seconds, policy.initial_seconds * policy.factor ** min(attempt - 1, 64))
    wait = base / 2 + rand() * base / 2
    if retry_after is not None:
        wait = max(wait, min(retry_after, policy.max_seconds))
    return wait
