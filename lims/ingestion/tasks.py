"""Task interface to the ingestion services."""

from __future__ import annotations

from lims.ingestion import services
from lims.taskbase import lims_task


@lims_task("lims.ingest_job_run")
def ingest_job_run(job_id: int) -> None:
    services.job_run(job_id=job_id)
