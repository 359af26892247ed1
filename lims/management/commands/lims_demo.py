"""Idempotent demo data: a project, a login, a cycler with a token, two cells."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from cells import services as cell_services
from cells.choices import AnodeKind, CellFormat, CellType
from cells.models import Cell
from lims import services
from lims.changelog import change_context
from lims.models import InstrumentToken, Membership

DEMO_USER, DEMO_PASSWORD = "demo", "demo-lims-2026"
DEMO_CELL = "DEMO-NMC811-001"
DEMO_FILE = (
    "tests/fixtures/cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
)


class Command(BaseCommand):
    help = "Create (once) the demo project, login, instrument token and cells; print them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", default="8000")

    def handle(self, *args: Any, **opts: Any) -> None:
        with change_context("shell", reason="demo data"):
            self._load(opts["port"])

    def _load(self, port: str) -> None:
        project = services.project_get_or_create(
            name="Demo ASSB", slug="demo", description="Demo data for a first look"
        )
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_USER).first()
        if user is None:
            user = user_model.objects.create_superuser(DEMO_USER, "", DEMO_PASSWORD)
        Membership.objects.get_or_create(project=project, user=user)
        token = (
            InstrumentToken.objects.filter(instrument__name="cycler-01", revoked=False)
            .order_by("created_at")
            .first()
        )
        if token is None:
            token = services.instrument_token_create(
                instrument_name="cycler-01", project=project, kind="cycler"
            )
        if not Cell.objects.filter(code=DEMO_CELL).exists():
            cell_services.cell_create(
                project=project,
                code=DEMO_CELL,
                format=CellFormat.BULK_PELLET,
                cell_type=CellType.CATHODE_HALF,
                cathode_active_material="LiNbOx-coated NMC811",
                ratio_active=Decimal("70"),
                ratio_se=Decimal("30"),
                ratio_carbon=Decimal("0"),
                cathode_mass_mg=Decimal("12.0"),
                se_material="Li6PS5Cl",
                se_mass_mg=Decimal("80"),
                anode_kind=AnodeKind.LI_IN,
                pellet_diameter_mm=Decimal("10"),
                fabrication_pressure_mpa=Decimal("375"),
                stack_pressure_mpa=Decimal("50"),
                temperature_c=Decimal("25"),
                operator=user,
            )
        if not Cell.objects.filter(code="DEMO-LCO-002").exists():
            cell_services.cell_create(
                project=project,
                code="DEMO-LCO-002",
                format=CellFormat.BULK_PELLET,
                cell_type=CellType.FULL,
                cathode_active_material="Al2O3-coated LiCoO2",
                ratio_active=Decimal("65"),
                ratio_se=Decimal("30"),
                ratio_carbon=Decimal("5"),
                cathode_mass_mg=Decimal("15.0"),
                se_material="Li6PS5Cl",
                anode_kind=AnodeKind.LI_FOIL,
                li_foil_thickness_um=Decimal("50"),
                pellet_diameter_mm=Decimal("10"),
                operator=user,
            )
        demo_file = settings.BASE_DIR / DEMO_FILE
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"  Web:        http://127.0.0.1:{port}/   login {DEMO_USER} / {DEMO_PASSWORD}",
                    f"  Instrument: cycler-01, token {token.key}",
                    "  Push a real BioLogic file for the demo cell:",
                    f"    curl -H 'Authorization: Token {token.key}' -F cell={DEMO_CELL} "
                    f"-F file=@{demo_file} http://127.0.0.1:{port}/api/v1/ingest/",
                    "",
                ]
            )
        )
