from django.apps import AppConfig


class CellsConfig(AppConfig):
    name = "cells"

    def ready(self) -> None:
        from cells import subscribers  # noqa: F401  (event consumers)
