"""The Celery app; tasks live in ``<app>/tasks.py`` and are autodiscovered."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lims.settings.base")

app = Celery("lims")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["lims.ingestion", "lims.events", "lims", "cells"])


@worker_process_init.connect
def _cap_child_memory(**kwargs: object) -> None:
    from lims.taskbase import cap_child_memory

    cap_child_memory(**kwargs)


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(**kwargs: object) -> None:
    """A task's database connections live as a request's do: reused for ``CONN_MAX_AGE``,
    checked before use (``CONN_HEALTH_CHECKS``), dropped when broken or left mid-transaction.

    Celery's Django fix-up closes them before and after every task unless
    ``CELERY_DB_REUSE_MAX`` is set (it is, see settings): a new PostgreSQL backend per task
    was a third of the database's CPU per ingested file under load (docs/scaling.md).
    """
    if getattr(getattr(kwargs.get("task"), "request", None), "is_eager", False):
        return  # called in-process (tests, eager mode): the caller's connection, not ours
    from django.db import close_old_connections

    close_old_connections()
