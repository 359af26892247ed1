from django.apps import AppConfig


class SamplesConfig(AppConfig):
    """Samples, material lots and lineage (models arrive with the samples issue)."""

    name = "samples"

    def ready(self) -> None:
        from samples import catalogue  # noqa: F401  (catalogue pages)
