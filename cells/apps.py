from django.apps import AppConfig


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
        # impedance.py (and the pandas/matplotlib it imports) is loaded by the first fit, not
        # preloaded: a preload put ~300 MB into every pool child, cycler-only workers included
        # (10 M-row bench peak 949 -> 1252 MiB); the first spectrum on a fresh child pays ~1.1 s.
