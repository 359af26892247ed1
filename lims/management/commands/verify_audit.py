"""Walk the change log's hash chain; exit non-zero naming the first entry that does not hold."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from lims.changelog import chain_verify


class Command(BaseCommand):
    help = (
        "Verify the change log's hash chain and name the first entry that was edited, deleted "
        "or reordered. Prints the head (seq and hash): keep it elsewhere to detect a cut tail."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        report = chain_verify()
        if report.first_break is not None:
            raise CommandError(
                f"change log chain broken after {report.entries - 1} good entries: "
                f"{report.first_break}"
            )
        self.stdout.write(
            f"change log chain intact: {report.entries} entries, head seq {report.head_seq} "
            f"hash {report.head_hash}"
        )
