"""Bulk sample import from CSV/XLSX: every bad row reported before anything is written."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any

import polars as pl
from django.core.exceptions import ValidationError
from django.db import transaction

from lims.events.services import event_emit
from lims.models import Project
from samples.models import Material, MaterialLot, Sample

COLUMNS = (
    "code",
    "kind",
    "quantity",
    "unit",
    "material",
    "lot",
    "state",
    "location",
    "notes",
    "form_factor",
    "bet_m2_g",
    "area_cm2",
    "diameter_mm",
    "thickness_um",
)
REQUIRED = ("code", "kind", "quantity")


@dataclass
class RowReport:
    row: int  # 1-based data row number as a person counts it in the sheet (header = row 1)
    code: str
    errors: list[str] = field(default_factory=list)


@dataclass
class ImportReport:
    rows: list[RowReport]
    created: int = 0

    @property
    def ok(self) -> bool:
        return all(not r.errors for r in self.rows)

    @property
    def error_count(self) -> int:
        return sum(1 for r in self.rows if r.errors)


def read_table(stream: IO[bytes], filename: str) -> list[dict[str, str]]:
    """Rows as strings, whatever the format; header names normalised to lower case."""
    data = stream.read()
    try:
        if filename.lower().endswith((".xlsx", ".xlsm")):
            frame = pl.read_excel(io.BytesIO(data), infer_schema_length=0)
        else:
            text = data.decode("utf-8-sig") if _is_utf8(data) else data.decode("latin-1")
            frame = pl.read_csv(io.StringIO(text), infer_schema_length=0)
    except Exception as exc:
        raise ValidationError(f"{filename}: not a readable CSV/XLSX table ({exc})") from exc
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValidationError(f"{filename}: missing columns {', '.join(missing)}")
    return [{k: (v or "").strip() for k, v in row.items()} for row in frame.iter_rows(named=True)]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decimal(value: str, name: str, errors: list[str]) -> Decimal | None:
    if not value:
        return None
    try:
        return Decimal(value.replace(",", "."))
    except InvalidOperation:
        errors.append(f"{name}: {value!r} is not a number")
        return None


def samples_import(*, project: Project, rows: list[dict[str, str]], dry_run: bool) -> ImportReport:
    """Validate every row; write all of them only when none is bad and ``dry_run`` is off."""
    materials = {m.name.lower(): m for m in Material.objects.all()}
    lots: dict[tuple[int | None, str], MaterialLot] = {
        (lot.material_id, lot.lot_number): lot
        for lot in MaterialLot.objects.filter(project=project)
    }
    existing = set(
        Sample.objects.filter(code__in=[r.get("code", "") for r in rows]).values_list(
            "code", flat=True
        )
    )
    seen: set[str] = set()
    reports: list[RowReport] = []
    built: list[Sample] = []
    for number, row in enumerate(rows, start=2):
        report = RowReport(row=number, code=row.get("code", ""))
        errors = report.errors
        code = row.get("code", "")
        if code in existing:
            errors.append(f"code {code!r} already exists")
        if code in seen:
            errors.append(f"code {code!r} appears twice in the file")
        seen.add(code)
        material = None
        if row.get("material"):
            material = materials.get(row["material"].lower())
            if material is None:
                errors.append(f"material {row['material']!r} is not in the catalogue")
        lot = None
        if row.get("lot"):
            lot = lots.get((material.pk if material else None, row["lot"]))
            if lot is None:
                errors.append(f"lot {row['lot']!r} of that material is not known in this project")
        quantity = _decimal(row.get("quantity", ""), "quantity", errors) or Decimal(0)
        if not row.get("quantity"):
            errors.append("quantity: required")
        sample = Sample(
            project=project,
            code=code,
            kind=row.get("kind", ""),
            quantity=quantity,
            remaining=quantity,
            unit=row.get("unit") or "g",
            material=material,
            lot=lot,
            state=row.get("state") or "as_received",
            location=row.get("location", ""),
            notes=row.get("notes", ""),
            form_factor=row.get("form_factor", ""),
            bet_m2_g=_decimal(row.get("bet_m2_g", ""), "bet_m2_g", errors),
            area_cm2=_decimal(row.get("area_cm2", ""), "area_cm2", errors),
            diameter_mm=_decimal(row.get("diameter_mm", ""), "diameter_mm", errors),
            thickness_um=_decimal(row.get("thickness_um", ""), "thickness_um", errors),
        )
        try:
            sample.full_clean(validate_unique=False)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors.extend(f"{name}: {m}" for m in messages)
        reports.append(report)
        built.append(sample)
    result = ImportReport(rows=reports)
    if result.ok and not dry_run:
        with transaction.atomic():
            for sample in built:  # one save each: the change log records every sample
                sample.save()
            event_emit(
                topic="samples.sample.imported",
                payload={"project": project.pk, "codes": [s.code for s in built]},
            )
        result.created = len(built)
    return result


def report_as_dict(report: ImportReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "created": report.created,
        "rows": len(report.rows),
        "errors": [
            {"row": r.row, "code": r.code, "errors": r.errors} for r in report.rows if r.errors
        ],
    }
