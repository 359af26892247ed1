"""Sending past events again: a failed delivery resent, a time range replayed to a webhook.

A receiver that was down longer than the retry schedule, a new webhook that wants history, a
mended endpoint: each gets the events again from the outbox, which keeps them all. A replay
reuses the (event, webhook) delivery row when there is one (its attempt log keeps the earlier
tries) and counts its attempts from zero. Every resend or replay is itself an event
(``lims.delivery.resent``, ``lims.webhook.replayed``) naming who asked and why.
"""

from __future__ import annotations

from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from lims.events.services import event_emit
from lims.models import EventDelivery, OutboxEvent, Webhook

MAX_REPLAY = 10_000


def _send_on_commit(ids: list[int]) -> None:
    def send() -> None:
        from lims.events.tasks import webhook_deliver

        for pk in ids:
            webhook_deliver.delay(pk)

    transaction.on_commit(send)


def _reset(delivery: EventDelivery) -> None:
    delivery.status = EventDelivery.Status.PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = None
    delivery.save(update_fields=["status", "attempts", "next_attempt_at", "updated_at"])


@transaction.atomic
def delivery_resend(
    *, delivery: EventDelivery, actor: Any = None, reason: str = ""
) -> EventDelivery:
    """Send one delivery again (typically a failed one), whatever its state."""
    delivery = EventDelivery.objects.select_for_update().get(pk=delivery.pk)
    _reset(delivery)
    _send_on_commit([delivery.pk])
    event_emit(
        topic="lims.delivery.resent",
        payload={
            "delivery": delivery.pk,
            "event": str(delivery.event_id),
            "webhook": delivery.webhook.name,
            "by": getattr(actor, "username", None),
            "reason": reason[:300],
        },
    )
    return delivery


@transaction.atomic
def webhook_replay(
    *,
    webhook: Webhook,
    since: datetime,
    until: datetime,
    topic_pattern: str = "*",
    actor: Any = None,
    reason: str = "",
) -> list[int]:
    """Every event created in [since, until) whose topic matches ``topic_pattern`` is sent to
    ``webhook`` (again); the ids of the deliveries queued, oldest event first."""
    if until <= since:
        raise ValidationError({"until": "the range ends before it starts"})
    events = list(
        OutboxEvent.objects.filter(created_at__gte=since, created_at__lt=until)
        .order_by("created_at", "id")
        .values_list("id", "topic")[: MAX_REPLAY + 1]
    )
    if len(events) > MAX_REPLAY:
        raise ValidationError(f"more than {MAX_REPLAY} events in that range: replay a shorter one")
    wanted = [pk for pk, topic in events if fnmatchcase(topic, topic_pattern or "*")]
    existing = {
        d.event_id: d
        for d in EventDelivery.objects.select_for_update().filter(
            webhook=webhook, event_id__in=wanted
        )
    }
    ids = []
    for event_id in wanted:
        delivery = existing.get(event_id)
        if delivery is None:
            delivery = EventDelivery.objects.create(event_id=event_id, webhook=webhook)
        else:
            _reset(delivery)
        ids.append(delivery.pk)
    _send_on_commit(ids)
    event_emit(
        topic="lims.webhook.replayed",
        payload={
            "webhook": webhook.name,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "topic_pattern": topic_pattern,
            "deliveries": len(ids),
            "by": getattr(actor, "username", None),
            "reason": reason[:300],
        },
    )
    return ids
