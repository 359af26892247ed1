from django.apps import AppConfig


class DepositionsConfig(AppConfig):
    """ALD/MLD tools, precursor bottles, recipes, runs, film measurements and anneals."""

    name = "depositions"

    def ready(self) -> None:
        from depositions import catalogue  # noqa: F401  (catalogue pages)
        from depositions.furnace.parser import FurnaceCsvParser
        from lims.ingestion.base import all_parsers, register

        if not any(p.name == FurnaceCsvParser.name for p in all_parsers()):
            register(FurnaceCsvParser)
