"""Thin task wrappers around the event services."""

from __future__ import annotations

from lims.events import services
from lims.taskbase import lims_task


@lims_task("lims.event_relay", context="ingest")
def event_relay(event_id: str) -> None:
    services.event_relay_run(event_id=event_id)


@lims_task("lims.webhook_deliver", context="ingest")
def webhook_deliver(delivery_id: int) -> None:
    delay = services.webhook_deliver_attempt(delivery_id=delivery_id)
    if delay is not None:
        webhook_deliver.apply_async((delivery_id,), countdown=delay)
