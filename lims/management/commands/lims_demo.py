"""Idempotent demo data: a project, a login, a cycler with a token, two cells."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from lims import demo, services
from lims.changelog import change_context
from lims.demo import DEMO_CELL
from lims.models import InstrumentToken, Membership, WorkerHeartbeat
from lims.taskbase import as_task, enqueue

DEMO_USER, DEMO_PASSWORD = "demo", "demo-lims-2026"
DEMO_FILE = (
    "tests/fixtures/cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
            return bool(response.status == 200)
    except OSError:
        return False


def _wait_until(ready: Callable[[], bool], what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            raise CommandError(f"{what} did not come up within {timeout_s:.0f} s")
        time.sleep(0.1)


class Command(BaseCommand):
    help = "Create (once) the demo project, login, instrument token and cells; print them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", default="8000")
        parser.add_argument(
            "--load-only",
            action="store_true",
            help="load the demo data and say the login and curl lines follow (make run)",
        )
        parser.add_argument(
            "--announce",
            action="store_true",
            help="wait until the web answers and a worker ran a task, print the login and curl "
            "lines, then stay (a Procfile process: the lines come when they work, after the "
            "stack's start-up logs instead of above them)",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["announce"]:
            self._announce(opts["port"])
            return
        # events relayed here as they commit: ~150 transactions would otherwise queue ~150
        # relay tasks ahead of the first upload (bench/embedded.py)
        with change_context("shell", reason="demo data"), as_task():
            text = self._load(opts["port"])
        if opts["load_only"]:
            self.stdout.write("Demo data ready; the login and curl lines follow once it is up.")
        else:
            self.stdout.write(text)

    def _announce(self, port: str) -> None:
        started = time.monotonic()
        _wait_until(lambda: _answers(f"http://127.0.0.1:{port}/login/"), "the web server")
        asked = timezone.now()
        from lims.tasks import heartbeat

        enqueue(heartbeat)  # through the broker: the worker is up when its heartbeat lands
        _wait_until(lambda: WorkerHeartbeat.objects.filter(seen_at__gte=asked).exists(), "a worker")
        with change_context("shell", reason="demo data"):
            text = self._load(port, data=False)
        self.stdout.write(f"{text}  (stack up after {time.monotonic() - started:.1f} s)\n")
        self.stdout.flush()
        while True:  # honcho stops every process when one exits: stay until it stops us
            time.sleep(3600)

    def _load(self, port: str, *, data: bool = True) -> str:
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
        if data:
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
        return "\n".join(
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
