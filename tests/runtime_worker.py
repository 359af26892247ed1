"""Celery app for the lease tests' worker: the test worker's app plus the test-only parser."""

from celery.signals import worker_process_init

from tests.celery_worker import app
from tests.runtime_parsers import install

__all__ = ["app"]


@worker_process_init.connect
def _install_test_parser(**_: object) -> None:
    install()
