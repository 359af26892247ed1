"""Task interface to the ingestion services."""

from __future__ import annotations

from django.conf import settings

from lims import selectors
from lims.changelog import change_actor
from lims.events.services import relay_pending_now
from lims.ingestion import services
from lims.taskbase import lims_task


@lims_task(
    "lims.ingest_job_run",
    soft_time_limit=settings.LIMS_INGEST_SOFT_TIME_LIMIT_S,
    time_limit=settings.LIMS_INGEST_HARD_TIME_LIMIT_S,
)
def ingest_job_run(job_id: int) -> None:
    # the upload's ``lims.job.created`` queued no relay of its own (``event_emit(relay=False)``)
    relay_pending_now()
    user, instrument = selectors.job_actor(job_id=job_id)
    with change_actor(user=user, instrument=instrument):
        services.job_run(job_id=job_id)
