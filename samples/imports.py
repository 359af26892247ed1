"""Bulk sample import from CSV/XLSX: every bad row reported before anything is written."""

from __future__ import annotations

import io
import zipfile
import zlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import IO, Any

import polars as pl
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from lims.events.services import event_emit
from lims.fields import find_nul
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
# An answer lists this many bad rows at most (error_count says how many there were).
MAX_ERRORS_SHOWN = 100


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

    @property
    def errors_shown(self) -> list[RowReport]:
        """The first MAX_ERRORS_SHOWN bad rows: what a page or an API answer lists."""
        return [r for r in self.rows if r.errors][:MAX_ERRORS_SHOWN]


def _limits() -> tuple[int, int, int]:
    return (
        settings.LIMS_IMPORT_MAX_BYTES,
        settings.LIMS_IMPORT_MAX_ROWS,
        settings.LIMS_IMPORT_MAX_INFLATED_BYTES,
    )


def _check_inflated(data: bytes, filename: str, limit: int) -> None:
    """An XLSX is a zip: inflate it once, counting, and stop at ``limit`` bytes. A 1.9 MB
    sheet that inflates to gigabytes of XML drove the web process to 5.6 GB before this;
    the sizes the zip declares are not trusted (they can lie), the bytes are counted."""
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.infolist():
                with archive.open(member) as part:
                    while chunk := part.read(1024 * 1024):
                        total += len(chunk)
                        if total > limit:
                            raise ValidationError(
                                f"{filename}: the workbook inflates to more than {limit} bytes "
                                "(LIMS_IMPORT_MAX_INFLATED_BYTES); split it or send a CSV"
                            )
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ValidationError(f"{filename}: not a readable XLSX workbook ({exc})") from exc


def read_table(stream: IO[bytes], filename: str) -> list[dict[str, str]]:
    """Rows as strings, whatever the format; header names normalised to lower case.

    Bounded before anything big is built: the upload's bytes (LIMS_IMPORT_MAX_BYTES), an
    XLSX's inflated size and the number of data rows (LIMS_IMPORT_MAX_ROWS, read one past
    the limit and no further), so a size bomb is a clear 400, not a 500 or a dead worker."""
    max_bytes, max_rows, max_inflated = _limits()
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValidationError(
            f"{filename}: larger than {max_bytes} bytes (LIMS_IMPORT_MAX_BYTES); "
            f"import at most {max_rows} rows per file"
        )
    is_excel = filename.lower().endswith((".xlsx", ".xlsm"))
    if is_excel:
        _check_inflated(data, filename, max_inflated)
    try:
        if is_excel:
            frame = pl.read_excel(
                io.BytesIO(data), infer_schema_length=0, read_options={"n_rows": max_rows + 1}
            )
        else:
            text = data.decode("utf-8-sig") if _is_utf8(data) else data.decode("latin-1")
            frame = pl.read_csv(io.StringIO(text), infer_schema_length=0, n_rows=max_rows + 1)
    except Exception as exc:
        raise ValidationError(f"{filename}: not a readable CSV/XLSX table ({_short(exc)})") from exc
    if frame.height > max_rows:
        raise ValidationError(
            f"{filename}: more than {max_rows} data rows (LIMS_IMPORT_MAX_ROWS); split the file"
        )
    frame = frame.rename({c: c.strip().lower() for c in frame.columns})
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{filename}: missing columns {', '.join(_short(m) for m in missing)}"
        )
    rows = [{k: (v or "").strip() for k, v in row.items()} for row in frame.iter_rows(named=True)]
    for number, row in enumerate(rows, start=2):
        place = find_nul(row)
        if place is not None:
            # PostgreSQL cannot store or even compare it: refused before any query
            raise ValidationError(
                f"{filename}: row {number}, column {_short(place)}: contains a NUL "
                "character (\\x00), not allowed"
            )
    return rows


def _short(value: object, limit: int = 80) -> str:
    """A value quoted in an error message, cut: a 1 MB cell must not make a 1 MB answer."""
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


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
        errors.append(f"{name}: {_short(repr(value))} is not a number")
        return None


def samples_import(*, project: Project, rows: list[dict[str, str]], dry_run: bool) -> ImportReport:
    """Validate every row; write all of them only when none is bad and ``dry_run`` is off."""
    materials = {m.name.lower(): m for m in Material.objects.all()}
    lots: dict[tuple[int | None, str], MaterialLot] = {
        (lot.material_id, lot.lot_number): lot
        for lot in MaterialLot.objects.filter(project=project)
    }
    codes = [r.get("code", "") for r in rows]
    existing: set[str] = set()
    for start in range(0, len(codes), 1000):  # bounded query parameters per statement
        existing.update(
            Sample.objects.filter(code__in=codes[start : start + 1000]).values_list(
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
            errors.append(f"code {_short(repr(code))} already exists")
        if code in seen:
            errors.append(f"code {_short(repr(code))} appears twice in the file")
        seen.add(code)
        material = None
        if row.get("material"):
            material = materials.get(row["material"].lower())
            if material is None:
                errors.append(f"material {_short(repr(row['material']))} is not in the catalogue")
        lot = None
        if row.get("lot"):
            lot = lots.get((material.pk if material else None, row["lot"]))
            if lot is None:
                errors.append(
                    f"lot {_short(repr(row['lot']))} of that material is not known in this project"
                )
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
        "error_count": report.error_count,
        "errors": [
            {"row": r.row, "code": _short(r.code), "errors": r.errors} for r in report.errors_shown
        ],
    }
