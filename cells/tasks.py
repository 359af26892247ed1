"""Task interface to the cells services."""

from __future__ import annotations

from cells import services
from cells.eis import services as eis_services
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


@lims_task("cells.eis_fit_for_event")
def eis_fit_for_event(event_id: str) -> int | None:
    """The refit a link queued (``cells.eis_spectrum.linked``); see ``eis_spectrum_link``."""
    event = OutboxEvent.objects.get(pk=event_id)
    fit = eis_services.eis_fit_queued_run(fit_id=event.payload["fit"])
    return fit.pk if fit is not None else None
