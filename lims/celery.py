"""The Celery app; tasks live in ``<app>/tasks.py`` and are autodiscovered."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lims.settings.base")

app = Celery("lims")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["lims.ingestion", "lims.events", "lims", "cells"])


@worker_process_init.connect
def _cap_child_memory(**kwargs: object) -> None:
    from lims.taskbase import cap_child_memory

    cap_child_memory(**kwargs)
