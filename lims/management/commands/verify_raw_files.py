"""Re-hash every stored raw file now; exit non-zero naming each one that is missing or altered."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lims import services


class Command(BaseCommand):
    help = (
        "Re-hash every stored raw file against its sha256 (beat runs the same check every "
        "LIMS_RAW_VERIFY_EVERY_S) and name the ones that are missing or no longer match."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = services.raw_files_verify()
        for problem in report["problems"]:
            self.stderr.write(
                f"{problem['problem']}: {problem['path']} (held by {', '.join(problem['held_by'])})"
            )
        if report["problems"]:
            raise CommandError(
                f"{len(report['problems'])} of {report['checked']} raw files missing or altered"
            )
        self.stdout.write(
            f"{report['checked']} raw files ({report['bytes']} bytes) match their sha256"
        )
