"""The Celery app; tasks live in ``<app>/tasks.py`` and are autodiscovered."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "lims.settings.base")

app = Celery("lims")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["lims.ingestion", "lims.events", "lims", "cells"])
