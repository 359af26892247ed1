"""In-process consumers of domain events (run as tasks via the event relay)."""

from __future__ import annotations

from lims.events.services import subscribe


@subscribe("cells.cell.active_mass_changed")
def _on_active_mass_changed(event_id: str) -> None:
    from cells.tasks import records_recompute_for_event

    records_recompute_for_event.delay(event_id)


@subscribe("cells.eis_spectrum.linked")
def _on_eis_spectrum_linked(event_id: str) -> None:
    from cells.tasks import eis_fit_for_event

    eis_fit_for_event.delay(event_id)
