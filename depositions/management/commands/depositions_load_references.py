"""Re-read the shipped reference processes (new rows; ``--update`` also overwrites edits)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from depositions import services


class Command(BaseCommand):
    help = "Load depositions/data/process_references.csv into ProcessReference (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--update",
            action="store_true",
            help="overwrite rows that already exist (staff edits are lost)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        created, updated = services.process_references_load(update=options["update"])
        self.stdout.write(f"process references: {created} created, {updated} updated")
