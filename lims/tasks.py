"""Beat-scheduled maintenance tasks."""

from __future__ import annotations

from lims import services
from lims.taskbase import lims_task


@lims_task("lims.sweep_stuck", context="ingest")
def sweep_stuck() -> dict[str, int]:
    return services.sweep_stuck()


@lims_task("lims.raw_files_verify", context="ingest", soft_time_limit=6 * 3600)
def raw_files_verify() -> dict[str, int]:
    report = services.raw_files_verify()
    return {"checked": report["checked"], "problems": len(report["problems"])}


@lims_task("lims.heartbeat", context="ingest")
def heartbeat() -> None:
    services.worker_heartbeat()
