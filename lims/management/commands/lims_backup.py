"""``manage.py lims_backup DIR``: database + file store + manifest (lims.backup)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lims.backup import BackupError, backup


class Command(BaseCommand):
    help = "Back up the database and the file store into a new folder, with a manifest."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("target", type=Path)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            manifest = backup(target=opts["target"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        summary = {k: manifest[k] for k in ("database", "counts", "copy_mismatches")}
        self.stdout.write(json.dumps(summary, indent=1))
        if manifest["copy_mismatches"]:
            raise CommandError(f"raw files copied with other bytes: {manifest['copy_mismatches']}")
