from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from lims import services
from lims.models import Instrument, Project


class Command(BaseCommand):
    help = "Print a new API token for an instrument, creating the instrument when needed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("instrument")
        parser.add_argument("--project", help="Project slug (needed for a new instrument)")
        parser.add_argument("--kind", default="other", choices=Instrument.Kind.values)
        parser.add_argument(
            "--owner", help="Username of the person answerable for this instrument's uploads"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        existing = Instrument.objects.filter(name=opts["instrument"]).select_related("project")
        instrument = existing.first()
        if instrument is not None:
            project = instrument.project
        elif opts["project"]:
            found = Project.objects.filter(slug=opts["project"]).first()
            if found is None:
                raise CommandError(f"no project with slug {opts['project']!r}")
            project = found
        else:
            only = list(Project.objects.all()[:2])
            if len(only) != 1:
                raise CommandError("a new instrument needs --project <slug>")
            project = only[0]
        owner = None
        if opts["owner"]:
            owner = get_user_model().objects.filter(username=opts["owner"]).first()
            if owner is None:
                raise CommandError(f"no user named {opts['owner']!r}")
        token = services.instrument_token_create(
            instrument_name=opts["instrument"], project=project, kind=opts["kind"], owner=owner
        )
        self.stdout.write(token.key)
