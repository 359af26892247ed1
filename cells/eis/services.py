"""Impedance spectra through the one ingestion path: the two phases of the ``eis`` handler."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from django.core.exceptions import ValidationError
from django.db import transaction

from cells.eis.spectrum import EisData, hf_intercept
from cells.models import Cell, EisSpectrum
from lims.events.services import event_emit
from lims.ingestion import storage
from lims.ingestion.registry import IngestOutcome
from lims.models import IngestionJob

# A temperature outside this range is a typo or a placeholder (Gamry writes -327.67 °C
# when no probe is connected), not a measurement.
TEMPERATURE_RANGE_C = (-273.15, 2000.0)
TEMPERATURE_DISAGREE_C = 2.0


@dataclass(frozen=True)
class PreparedSpectrum:
    data: EisData
    series_relpath: str
    hf_intercept_ohm: float | None
    hf_provenance: dict[str, Any]
    series_s: float


def eis_spectrum_prepare(*, job: IngestionJob, data: EisData) -> PreparedSpectrum:
    """Phase 1, outside any transaction: the points to Parquet and the model-free intercept."""
    started = time.monotonic()
    raw = job.raw_file
    rel = storage.series_relpath(
        raw.sha256, job.parser_name, job.parser_version, project_id=raw.project_id
    )
    path = storage.absolute(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    data.points.write_parquet(tmp, compression="zstd")
    os.replace(tmp, path)
    value, provenance = hf_intercept(data.points)
    return PreparedSpectrum(data, rel, value, provenance, time.monotonic() - started)


def _number(value: Any, what: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} {value!r} is not a number") from None
    low, high = TEMPERATURE_RANGE_C
    if not math.isfinite(number) or not low <= number <= high:
        raise ValidationError(f"{what} {value!r} is outside {low}..{high} °C")
    return number


def spectrum_temperature(
    *, params: dict[str, Any], from_file: float | None, notes: list[str]
) -> tuple[float | None, str]:
    """The upload field, else ``metadata.temperature_c``, else the file's own reading.

    A person's stated temperature wins (files often carry no probe or a placeholder); when
    the file measured one that disagrees by more than TEMPERATURE_DISAGREE_C, a warning says so.
    """
    metadata = params.get("metadata") or {}
    candidates = (
        (_number(params.get("temperature_c"), "temperature_c"), "upload field temperature_c"),
        (
            _number(metadata.get("temperature_c"), "metadata temperature_c"),
            "metadata.temperature_c",
        ),
    )
    low, high = TEMPERATURE_RANGE_C
    measured = from_file if from_file is not None and low <= from_file <= high else None
    for value, source in candidates:
        if value is not None:
            if measured is not None and abs(measured - value) > TEMPERATURE_DISAGREE_C:
                notes.append(
                    f"{source} says {value:g} °C, the file measured {measured:.4g} °C; "
                    f"{value:g} °C is used"
                )
            return value, source
    if measured is not None:
        return measured, "the file (mean of its temperature column)"
    return None, ""


def _owner(job: IngestionJob) -> tuple[Cell | None, Any, str]:
    """The cell or sample named at upload (codes in the job's project), and a note if not found."""
    from samples.models import Sample

    params = job.params or {}
    cell_code = str(params.get("cell") or "").strip()
    sample_code = str(params.get("sample") or "").strip()
    if cell_code and sample_code:
        raise ValidationError("a spectrum belongs to a cell or to a sample, not both")
    if cell_code:
        cell = Cell.objects.filter(project=job.project, code=cell_code).first()
        if cell is None:
            return (
                None,
                None,
                f"cell {cell_code!r} not found in project {job.project}; link by hand",
            )
        return cell, None, ""
    if sample_code:
        sample = Sample.objects.filter(project=job.project, code=sample_code).first()
        if sample is None:
            return (
                None,
                None,
                f"sample {sample_code!r} not found in project {job.project}; link by hand",
            )
        return None, sample, ""
    return None, None, "no cell or sample named at upload; link the spectrum by hand"


def eis_spectrum_persist(*, job: IngestionJob, prepared: PreparedSpectrum) -> IngestOutcome:
    """Phase 2, inside the job's transaction: the spectrum row and its event."""
    data = prepared.data
    notes = list(data.warnings)
    cell, sample, note = _owner(job)
    temperature, temperature_source = spectrum_temperature(
        params=job.params or {}, from_file=data.temperature_c, notes=notes
    )
    points = data.points
    spectrum, _ = EisSpectrum.objects.update_or_create(
        raw_file=job.raw_file,
        defaults={
            "project": job.project,
            "job": job,
            "instrument": job.instrument,
            "cell": cell,
            "sample": sample,
            "parser_name": job.parser_name,
            "parser_version": job.parser_version,
            "vendor": data.vendor,
            "technique": data.technique,
            "temperature_c": temperature,
            "temperature_source": temperature_source,
            "started_at": _start_time(data.metadata),
            "points": points.height,
            "sweeps": points["sweep"].n_unique(),
            "f_min_hz": float(points["f_hz"].min()),  # type: ignore[arg-type]
            "f_max_hz": float(points["f_hz"].max()),  # type: ignore[arg-type]
            "series_path": prepared.series_relpath,
            "hf_intercept_ohm": prepared.hf_intercept_ohm,
            "hf_intercept": prepared.hf_provenance,
            "conventions": data.conventions,
            "metadata": data.metadata,
            "warnings": notes,
        },
    )
    event_emit(
        topic="cells.eis_spectrum.imported",
        payload={
            "spectrum": spectrum.pk,
            "cell": cell.code if cell else None,
            "sample": sample.code if sample else None,
            "job": job.pk,
        },
    )
    result: dict[str, Any] = {
        "eis_spectrum": spectrum.pk,
        "cell": cell.code if cell else None,
        "sample": sample.code if sample else None,
        "points": spectrum.points,
        "f_min_hz": spectrum.f_min_hz,
        "f_max_hz": spectrum.f_max_hz,
        "hf_intercept_ohm": spectrum.hf_intercept_ohm,
        "timings_s": {"series": round(prepared.series_s, 3)},
    }
    if note:
        result["note"] = note
    if notes:
        result["warnings"] = notes
    linked = cell is not None or sample is not None
    status = IngestionJob.Status.SUCCEEDED if linked else IngestionJob.Status.NEEDS_LINKING
    return IngestOutcome(status=status, result=result)


@transaction.atomic
def eis_spectrum_link(
    *, spectrum: EisSpectrum, cell: Cell | None = None, sample: Any = None
) -> EisSpectrum:
    """Attach an unlinked spectrum to a cell or a sample of its project."""
    if (cell is None) == (sample is None):
        raise ValidationError("link a spectrum to a cell or to a sample (exactly one)")
    owner = cell or sample
    if owner.project_id != spectrum.project_id:
        raise ValidationError("that cell or sample belongs to another project than the spectrum")
    spectrum.cell, spectrum.sample = cell, sample
    spectrum.save(update_fields=["cell", "sample"])
    if spectrum.job_id is not None:
        IngestionJob.objects.filter(
            pk=spectrum.job_id, status=IngestionJob.Status.NEEDS_LINKING
        ).update(status=IngestionJob.Status.SUCCEEDED)
    return spectrum


def spectrum_points(spectrum: EisSpectrum) -> pl.DataFrame:
    """The stored points of a spectrum (file order)."""
    return pl.read_parquet(storage.absolute(spectrum.series_path))


def _start_time(metadata: dict[str, Any]) -> datetime | None:
    text = metadata.get("start_time")
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
