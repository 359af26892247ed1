from django.apps import AppConfig


class DepositionsConfig(AppConfig):
    """ALD/MLD tools, precursor bottles, recipes, runs, film measurements and anneals."""

    name = "depositions"

    def ready(self) -> None:
        from depositions import catalogue  # noqa: F401  (catalogue pages)
