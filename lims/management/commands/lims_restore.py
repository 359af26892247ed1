"""``manage.py lims_restore DIR``: into an empty database and store, then verified."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from lims.backup import BackupError, restore


class Command(BaseCommand):
    help = "Restore a lims_backup folder into an empty database and store; verify every hash."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", type=Path)

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            report = restore(source=opts["source"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(report, indent=1))
        if report["problems"]:
            raise CommandError(f"{len(report['problems'])} problems: see the report")
