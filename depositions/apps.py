from django.apps import AppConfig


class DepositionsConfig(AppConfig):
    """ALD/MLD tools, recipes and runs (models arrive with the process-side issue)."""

    name = "depositions"
