from django.apps import AppConfig


class LimsConfig(AppConfig):
    name = "lims"
    verbose_name = "LIMS core"

    def ready(self) -> None:
        from lims import celery, changelog  # noqa: F401  (the Celery app every task uses)

        changelog.connect_signals()
