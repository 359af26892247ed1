"""Events: the outbox write, the relay to rules and subscribers, signed webhook delivery."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from lims.changelog import current
from lims.events.targets import webhook_target_check
from lims.models import DeliveryAttempt, EventDelivery, EventRule, OutboxEvent
from lims.taskbase import enqueue, in_task

log = logging.getLogger(__name__)

# In-process consumers: topic pattern -> callable(event_id) that enqueues a task.
_subscribers: list[tuple[str, Callable[[str], None]]] = []


def subscribe(pattern: str) -> Callable[[Callable[[str], None]], Callable[[str], None]]:
    """Register an internal consumer of events whose topic matches ``pattern``."""

    def decorator(func: Callable[[str], None]) -> Callable[[str], None]:
        _subscribers.append((pattern, func))
        return func

    return decorator


def event_emit(*, topic: str, payload: dict[str, Any], relay: bool = True) -> OutboxEvent:
    """Write the event in the caller's transaction; relay it once that commits.

    One relay task per transaction, not per event: it relays every pending event
    (``event_relay_pending``), so a transaction emitting a hundred events (the demo data, a
    bulk import) queues one task, and the embedded mode's broker is not the pace setter.

    ``relay=False``: the caller queues a task after the commit that relays first thing
    (``relay_pending_now``; an upload's job task does), so no relay task of its own is
    queued. It would sit in the same queue just ahead of that task: the same delay, one
    task and one broker message fewer per upload. If neither runs, the sweep relays it.
    """
    event = OutboxEvent.objects.create(
        topic=topic, payload=payload, request_id=current().request_id
    )
    if not relay:
        return event
    # every event adds a hook, but only the first to run after a commit relays (it clears
    # the connection's flag): one relay for all events the transaction wrote
    transaction.get_connection().lims_relay_due = True
    transaction.on_commit(_relay_once)
    return event


def _relay_once() -> None:
    connection = transaction.get_connection()
    if getattr(connection, "lims_relay_due", False):
        connection.lims_relay_due = False
        _relay_soon()


def _relay_soon() -> None:
    """In a worker's task the relay runs right here, after the commit (a few queries when no
    webhook matches): a queued relay task per finished job cost the embedded mode's
    filesystem broker a poll each. Elsewhere (a web request) one task is queued. Either way
    a fault is logged, never raised: the sweep relays what is still pending."""
    from lims.events.tasks import event_relay_pending

    if not in_task():
        enqueue(event_relay_pending)
        return
    relay_pending_now()


def relay_pending_now() -> None:
    """Relay the pending events here and now (in a task); a fault is logged and a relay task
    queued instead, never raised: the task's own work goes on."""
    from lims.events.tasks import event_relay_pending

    try:
        event_relay_pending()
    except Exception:
        log.warning("relaying events in a task failed; queued instead", exc_info=True)
        enqueue(event_relay_pending)


RELAY_BATCH = 200


def event_relay_pending() -> int:
    """Relay every pending event, oldest first, a batch per transaction; the number relayed.

    A batch is taken with ``FOR UPDATE SKIP LOCKED``, so relays running at once (each worker
    child relays after its task, the web queues one per transaction) share the work instead
    of waiting on one another. Events seen once in this call are not taken again (one whose
    subscriber could not be queued is pending again, for the sweep).

    One transaction per batch, not per event: relaying an event cost five statements and a
    commit, and under load the relay was a third of a worker's time.
    """
    seen: set[str] = set()
    relayed = 0
    while True:
        pending = OutboxEvent.objects.filter(status=OutboxEvent.Status.PENDING).exclude(pk__in=seen)
        if not pending.exists():  # a plain read: no write lock (SQLite) when there is no work
            return relayed
        batch = _relay_batch(exclude=seen)
        if not batch:
            return relayed
        seen.update(batch)
        relayed += len(batch)


@transaction.atomic
def _relay_batch(*, exclude: set[str]) -> list[str]:
    events = list(
        OutboxEvent.objects.select_for_update(skip_locked=True)
        .filter(status=OutboxEvent.Status.PENDING)
        .exclude(pk__in=exclude)
        .order_by("created_at")[:RELAY_BATCH]
    )
    if events:
        _fan_out(events)
    return [str(event.pk) for event in events]


@transaction.atomic
def event_relay_run(*, event_id: str, skip_locked: bool = False) -> list[int]:
    """Fan one event out to matching rules (deliveries) and internal subscribers, once.

    ``skip_locked``: an event another relay holds is that relay's (nothing to do here).
    """
    event = (
        OutboxEvent.objects.select_for_update(skip_locked=skip_locked).filter(pk=event_id).first()
    )
    if event is None or event.status == OutboxEvent.Status.DISPATCHED:
        return []
    return _fan_out([event])


def _fan_out(events: list[OutboxEvent]) -> list[int]:
    """Deliveries for the rules each event matches, the events marked dispatched, and after
    the commit the deliveries and subscribers queued; the delivery ids. The caller holds
    the events' rows locked."""
    rules = list(
        EventRule.objects.filter(enabled=True, webhook__enabled=True).select_related("webhook")
    )
    delivery_ids: list[int] = []
    for event in events:
        for rule in rules:
            if rule.matches(event.topic):
                delivery, _ = EventDelivery.objects.get_or_create(event=event, webhook=rule.webhook)
                delivery_ids.append(delivery.pk)
    now = timezone.now()
    OutboxEvent.objects.filter(pk__in=[event.pk for event in events]).update(
        status=OutboxEvent.Status.DISPATCHED, dispatched_at=now
    )
    for event in events:
        event.status, event.dispatched_at = OutboxEvent.Status.DISPATCHED, now
    consumers = [
        (event, consumer)
        for event in events
        for pattern, consumer in _subscribers
        if fnmatchcase(event.topic, pattern)
    ]

    def _enqueue() -> None:
        """Deliveries are rows the sweep resends; a subscriber's task is not, so when one
        cannot be sent its event goes back to pending and is relayed again (rules and
        subscribers are idempotent)."""
        from lims.events.tasks import webhook_deliver

        for pk in delivery_ids:
            enqueue(webhook_deliver, pk)
        unsent: set[Any] = set()
        for event, consumer in consumers:
            try:
                consumer(str(event.pk))
            except Exception:
                log.warning(
                    "event %s: subscriber %s could not be queued",
                    event.pk,
                    consumer.__name__,
                    exc_info=True,
                )
                unsent.add(event.pk)
        if unsent:
            with contextlib.suppress(Exception):
                OutboxEvent.objects.filter(pk__in=unsent).update(
                    status=OutboxEvent.Status.PENDING, dispatched_at=None
                )

    if delivery_ids or consumers:
        transaction.on_commit(_enqueue)
    return delivery_ids


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``: the timestamp is signed
    with the body, so a captured request cannot be replayed outside the receiver's window."""
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    body: bytes,
    header: str,
    *,
    tolerance_s: int | None = None,
    now: float | None = None,
) -> bool:
    """What a receiver does (docs/events.md): recompute, compare in constant time
    (``hmac.compare_digest``) and refuse a timestamp outside the window."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    window = settings.LIMS_WEBHOOK_TOLERANCE_S if tolerance_s is None else tolerance_s
    if abs((time.time() if now is None else now) - timestamp) > window:
        return False
    expected = sign(secret, body, timestamp).split(",v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


def event_body(event: OutboxEvent) -> bytes:
    doc = {
        "id": str(event.pk),
        "topic": event.topic,
        "created_at": event.created_at,
        "payload": event.payload,
    }
    return json.dumps(doc, cls=DjangoJSONEncoder, sort_keys=True).encode()


def retry_delay(attempt: int, created_at: datetime, now: datetime | None = None) -> float | None:
    """Seconds before retrying after failed attempt number ``attempt`` (1-based): exponential
    from ``LIMS_WEBHOOK_BACKOFF_S``, capped at ``LIMS_WEBHOOK_BACKOFF_MAX_S``; None once the
    retry would fall after ``LIMS_WEBHOOK_RETRY_FOR_S`` from the delivery's creation.

    A cap, not only a count: with attempts doubling without end, a receiver back after an hour
    would wait another hour for its events."""
    delay = min(
        settings.LIMS_WEBHOOK_BACKOFF_S * 2 ** min(attempt - 1, 30),
        settings.LIMS_WEBHOOK_BACKOFF_MAX_S,
    )
    elapsed = ((now or timezone.now()) - created_at).total_seconds()
    return delay if elapsed + delay <= settings.LIMS_WEBHOOK_RETRY_FOR_S else None


def webhook_deliver_attempt(*, delivery_id: int) -> float | None:
    """POST one delivery once; record the attempt. Returns seconds until a retry, or None."""
    with transaction.atomic():
        delivery = (
            EventDelivery.objects.select_for_update()
            .select_related("event", "webhook")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status in (
            EventDelivery.Status.SUCCEEDED,
            EventDelivery.Status.FAILED,
        ):
            return None
        delivery.attempts += 1
        number = delivery.attempts
        delivery.save(update_fields=["attempts", "updated_at"])
    webhook, event = delivery.webhook, delivery.event
    body = event_body(event)
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Lims-Event-Id": str(event.pk),
        "X-Lims-Topic": event.topic,
        "X-Lims-Delivery": str(delivery.pk),
        "X-Lims-Timestamp": str(timestamp),
        "X-Lims-Signature": sign(webhook.secret, body, timestamp),
    }
    started = time.monotonic()
    code: int | None = None
    error = ""
    excerpt = ""
    refused = False
    try:
        # again at each delivery: the name may resolve elsewhere since it was saved
        webhook_target_check(webhook.url)
    except ValidationError as exc:
        refused = True
        error = "refused target: " + "; ".join(exc.messages)
    if not refused:
        try:
            response = requests.post(
                webhook.url,
                data=body,
                headers=headers,
                timeout=min(webhook.timeout_s, settings.LIMS_WEBHOOK_TIMEOUT_S),
                allow_redirects=False,
            )
            code = response.status_code
            excerpt = response.text[:500]
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:2000]
    elapsed_ms = (time.monotonic() - started) * 1000

    retryable = not refused and (code is None or code >= 500)
    ok = code is not None and 200 <= code < 300
    with transaction.atomic():
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            status_code=code,
            error=error,
            duration_ms=elapsed_ms,
            response_excerpt=excerpt,
        )
        delivery.last_status_code = code
        delivery.last_error = error or ("" if ok else f"HTTP {code}: {excerpt[:200]}")
        delay: float | None = None
        if ok:
            delivery.status = EventDelivery.Status.SUCCEEDED
            delivery.next_attempt_at = None
        elif retryable and (delay := retry_delay(number, delivery.created_at)) is not None:
            delivery.status = EventDelivery.Status.RETRYING
            delivery.next_attempt_at = timezone.now() + timedelta(seconds=delay)
        else:
            delivery.status = EventDelivery.Status.FAILED
            delivery.next_attempt_at = None
        delivery.save(update_fields=["status", "last_status_code", "last_error", "next_attempt_at"])
    return delay
