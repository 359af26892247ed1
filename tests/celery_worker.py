"""Celery app for the test worker process.

Transactional tests flush the database, and Django re-creates the content types with new ids
afterwards; a long-lived worker would keep the old ids in its ContentType cache and write
change-log rows pointing at deleted types. Clearing that cache before each task keeps the
worker honest across tests without touching production code.
"""

from celery.signals import task_prerun

from lims.celery import app

__all__ = ["app"]


@task_prerun.connect
def _fresh_content_types(**_: object) -> None:
    from django.contrib.contenttypes.models import ContentType

    ContentType.objects.clear_cache()
