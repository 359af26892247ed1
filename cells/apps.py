from typing import Any

from celery.signals import worker_init
from django.apps import AppConfig


def _preload_fitting(**_: Any) -> None:
    """The worker's parent imports impedance.py (~1.1 s) once, before it forks its pool: no
    spectrum waits for it (the first fit on a fresh worker took 1.9 s end to end)."""
    import cells.eis.fit  # noqa: F401


class CellsConfig(AppConfig):
    name = "cells"

    def ready(self) -> None:
        from cells import services, subscribers  # noqa: F401  (event consumers)
        from cells.eis import parsers as eis_parsers
        from cells.eis import services as eis_services
        from cells.parsers import PARSERS
        from lims.ingestion import registry

        registry.register_parsers(PARSERS)
        registry.register_parsers(eis_parsers.PARSERS)
        registry.register_handler(
            "eis",
            prepare=eis_services.eis_spectrum_prepare,
            persist=eis_services.eis_spectrum_persist,
        )
        registry.register_handler(
            "cycler", prepare=services.cycling_test_prepare, persist=services.cycling_test_persist
        )
        worker_init.connect(_preload_fitting, weak=False)
