"""Beat-scheduled maintenance tasks."""

from __future__ import annotations

from lims import services
from lims.taskbase import lims_task


@lims_task("lims.sweep_stuck", context="ingest")
def sweep_stuck() -> dict[str, int]:
    return services.sweep_stuck()


@lims_task("lims.heartbeat", context="ingest")
def heartbeat() -> None:
    services.worker_heartbeat()
