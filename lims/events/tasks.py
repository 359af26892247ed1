"""Thin task wrappers around the event services."""

from __future__ import annotations

from lims.events import services
from lims.taskbase import enqueue, lims_task


@lims_task("lims.event_relay", context="ingest")
def event_relay(event_id: str) -> None:
    """One event (messages sent before the batch relay existed)."""
    services.event_relay_run(event_id=event_id)


@lims_task("lims.event_relay_pending", context="ingest")
def event_relay_pending() -> None:
    services.event_relay_pending()


@lims_task("lims.webhook_deliver", context="ingest")
def webhook_deliver(delivery_id: int) -> None:
    delay = services.webhook_deliver_attempt(delivery_id=delivery_id)
    if delay is not None:
        enqueue(webhook_deliver, delivery_id, countdown=delay)  # else the sweep resends it
