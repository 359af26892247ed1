"""Idempotent demo data: a project, a login, a cycler with a token, two cells."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from lims import demo, services
from lims.changelog import change_context
from lims.demo import DEMO_CELL
from lims.models import InstrumentToken, Membership
from lims.taskbase import as_task

DEMO_USER, DEMO_PASSWORD = "demo", "demo-lims-2026"
DEMO_FILE = (
    "tests/fixtures/cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
)


class Command(BaseCommand):
    help = "Create (once) the demo project, login, instrument token and cells; print them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", default="8000")

    def handle(self, *args: Any, **opts: Any) -> None:
        # events relayed here as they commit: ~150 transactions would otherwise queue ~150
        # relay tasks ahead of the first upload (bench/embedded.py)
        with change_context("shell", reason="demo data"), as_task():
            self._load(opts["port"])

    def _load(self, port: str) -> None:
        project = services.project_get_or_create(
            name="Demo ASSB", slug="demo", description="Demo data for a first look"
        )
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_USER).first()
        if user is None:
            user = user_model.objects.create_superuser(DEMO_USER, "", DEMO_PASSWORD)
        Membership.objects.update_or_create(
            project=project, user=user, defaults={"role": Membership.Role.MANAGER}
        )
        token = (
            InstrumentToken.objects.filter(instrument__name="cycler-01", revoked=False)
            .order_by("created_at")
            .first()
        )
        if token is None:
            token = services.instrument_token_create(
                instrument_name="cycler-01", project=project, kind="cycler"
            )
        demo.process_chain(project=project, user=user)
        demo.explorer_matrix(project=project, user=user)
        ald_token = (
            InstrumentToken.objects.filter(instrument__name=demo.QCM_TOOL, revoked=False)
            .order_by("created_at")
            .first()
        ) or services.instrument_token_create(
            instrument_name=demo.QCM_TOOL, project=project, kind="ald_tool"
        )
        demo_file = settings.BASE_DIR / DEMO_FILE
        ald_files = settings.BASE_DIR / demo.QCM_FILES
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"  Web:        http://127.0.0.1:{port}/   login {DEMO_USER} / {DEMO_PASSWORD}",
                    f"  Instrument: cycler-01, token {token.key}",
                    "  Push a real BioLogic file for the demo cell:",
                    f"    curl -H 'Authorization: Token {token.key}' -F cell={DEMO_CELL} "
                    f"-F file=@{demo_file} http://127.0.0.1:{port}/api/v1/ingest/",
                    f"  Push the four files of a real LabVIEW ALD run for {demo.QCM_RUN}:",
                    f"    for f in {ald_files}/*.txt; do curl -H 'Authorization: Token "
                    f"{ald_token.key}' -F kind=ald_log -F run={demo.QCM_RUN} -F file=@$f "
                    f"http://127.0.0.1:{port}/api/v1/ingest/; echo; done",
                    "",
                ]
            )
        )
