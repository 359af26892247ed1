"""Task interface to the cells services."""

from __future__ import annotations

from cells import services
from lims.models import OutboxEvent
from lims.taskbase import lims_task


@lims_task("cells.records_recompute_for_event")
def records_recompute_for_event(event_id: str) -> int:
    event = OutboxEvent.objects.get(pk=event_id)
    payload = event.payload
    reason = (
        f"active mass changed {payload.get('old_mg')} -> {payload.get('new_mg')} mg: "
        f"{payload.get('reason', '')}"
    )
    return services.cell_records_recompute(cell_id=payload["id"], reason=reason)
