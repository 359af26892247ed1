"""Project package. The Celery app (``lims.celery``) is loaded by ``LimsConfig.ready()`` and
found by ``celery -A lims``; importing ``lims`` itself loads nothing, so the pure parts
(``lims.ingestion.parsing``, ``registry``, ``text``) stay free of Django and Celery."""
