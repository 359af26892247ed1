from django.apps import AppConfig


class DepositionsConfig(AppConfig):
    """ALD/MLD tools, precursor bottles, recipes, runs, film measurements and anneals."""

    name = "depositions"
