from django.apps import AppConfig


class DepositionsConfig(AppConfig):
    """ALD/MLD tools, precursor bottles, recipes, runs, film measurements and anneals."""

    name = "depositions"

    def ready(self) -> None:
        from depositions import catalogue  # noqa: F401  (catalogue pages)
        from depositions.aldlogs import services as log_services
        from depositions.aldlogs.parsers import PARSERS
        from depositions.furnace import services as furnace
        from depositions.furnace.parser import FurnaceCsvParser
        from lims.ingestion import registry

        registry.register_parsers(PARSERS)
        registry.register_handler(
            "ald_log", prepare=log_services.ald_log_prepare, persist=log_services.ald_log_ingest
        )
        registry.register_mapping_resolver(log_services.tool_log_mapping)
        registry.register_parser(FurnaceCsvParser())
        registry.register_handler(
            "furnace_log", prepare=furnace.furnace_log_prepare, persist=furnace.furnace_log_persist
        )
