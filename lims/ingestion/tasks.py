"""Task interface to the ingestion services."""

from __future__ import annotations

from django.conf import settings

from lims.ingestion import services
from lims.taskbase import lims_task


@lims_task(
    "lims.ingest_job_run",
    soft_time_limit=settings.LIMS_INGEST_SOFT_TIME_LIMIT_S,
    time_limit=settings.LIMS_INGEST_HARD_TIME_LIMIT_S,
)
def ingest_job_run(job_id: int) -> None:
    services.job_run(job_id=job_id)
