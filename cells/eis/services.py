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

from cells.eis import conductivity as cond
from cells.eis.spectrum import EisData, hf_intercept
from cells.models import Cell, EisFit, EisSpectrum
from lims.changelog import json_roundtrip
from lims.events.services import event_emit
from lims.ingestion import storage
from lims.ingestion.registry import IngestOutcome
from lims.ingestion.services import TEMPERATURE_RANGE_C
from lims.models import IngestionJob

TEMPERATURE_DISAGREE_C = 2.0


# The circuit a spectrum is fitted with at ingestion, by what it was measured on (fit.CIRCUITS).
CIRCUIT_FOR_OWNER = {"cell": "cell_interfaces", "sample": "blocking_pellet", "": "cell_interfaces"}
FIT_CIRCUITS = ("blocking_pellet", "bulk_grain_boundary", "cell_interfaces")


@dataclass(frozen=True)
class PreparedSpectrum:
    data: EisData
    series_relpath: str
    hf_intercept_ohm: float | None
    hf_provenance: dict[str, Any]
    series_s: float
    kk_passed: bool | None = None
    kramers_kronig: dict[str, Any] | None = None
    fit: dict[str, Any] | None = None
    fit_s: float = 0.0


def eis_spectrum_prepare(*, job: IngestionJob, data: EisData) -> PreparedSpectrum:
    """Phase 1, outside any transaction: Parquet, model-free intercept, Lin-KK and the fit.

    A fit or KK failure is recorded, never raised: the spectrum is worth keeping without it.
    """
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
    series_s = time.monotonic() - started
    fit_started = time.monotonic()
    kk_passed, kk = kk_compute(data.points)
    circuit, why = choose_circuit(job.params or {})
    fitted = fit_compute(data.points, circuit=circuit)
    fitted["warnings"] = [why, *fitted["warnings"]]
    return PreparedSpectrum(
        data,
        rel,
        value,
        provenance,
        series_s,
        kk_passed=kk_passed,
        kramers_kronig=kk,
        fit=fitted,
        fit_s=time.monotonic() - fit_started,
    )


def choose_circuit(params: dict[str, Any]) -> tuple[str, str]:
    """``metadata.circuit`` when the upload names one, else by what was measured (a note why)."""
    metadata = params.get("metadata") or {}
    named = str(metadata.get("circuit") or "").strip()
    if named:
        return named, f"circuit {named!r} named in the upload's metadata.circuit"
    owner = "cell" if params.get("cell") else "sample" if params.get("sample") else ""
    circuit = CIRCUIT_FOR_OWNER[owner]
    what = f"a spectrum of a {owner}" if owner else "no cell or sample named: fitted as a cell"
    return circuit, f"circuit {circuit!r}: {what}"


def _first_sweep(points: pl.DataFrame) -> tuple[Any, Any, int]:
    """f and complex Z of the first sweep (the fit and KK work on one sweep: no repeated f)."""

    sweep = int(points["sweep"][0]) if points.height else 0
    one = points.filter(pl.col("sweep") == sweep)
    f = one["f_hz"].to_numpy().astype(float)
    z = one["z_real_ohm"].to_numpy().astype(float) + 1j * one["z_imag_ohm"].to_numpy().astype(float)
    return f, z, sweep


def kk_compute(points: pl.DataFrame) -> tuple[bool | None, dict[str, Any]]:
    """Lin-KK verdict of the first sweep; (None, {error}) when it cannot be tested."""
    from cells.eis.fit import kramers_kronig  # impedance.py: ~1 s to import, only when fitting

    f, z, sweep = _first_sweep(points)
    try:
        result = kramers_kronig(f, z)
    except Exception as exc:  # noqa: BLE001 - the verdict is optional; the reason is stored
        return None, {"error": f"{type(exc).__name__}: {exc}", "sweep": sweep}
    return result.passed, {**result.as_dict(), "sweep": sweep}


def fit_compute(
    points: pl.DataFrame, *, circuit: str, f_range: tuple[float, float] | None = None
) -> dict[str, Any]:
    """EisFit fields of one fit (pure of the database); a failure gives a row with its error."""
    from cells.eis.fit import fit_circuit, library_versions

    f, z, sweep = _first_sweep(points)
    base: dict[str, Any] = {
        "circuit_name": circuit,
        "sweep": sweep,
        # JSON has no infinity: an open end is stored as null
        "f_range_requested": [v if math.isfinite(v) else None for v in f_range] if f_range else [],
        "warnings": [],
        "versions": library_versions(),
    }
    if points["sweep"].n_unique() > 1:
        base["warnings"].append(f"the spectrum has several sweeps: sweep {sweep} is fitted")
    started = time.monotonic()
    if circuit not in FIT_CIRCUITS:
        return {
            **base,
            "status": EisFit.Status.FAILED,
            "error": f"circuit {circuit!r} is not one of {', '.join(FIT_CIRCUITS)}",
        }
    try:
        result = fit_circuit(f, z, circuit, f_range=f_range)
    except Exception as exc:  # noqa: BLE001 - numerics failures are recorded on the fit row
        return {
            **base,
            "status": EisFit.Status.FAILED,
            "error": f"{type(exc).__name__}: {exc}",
            "fit_seconds": time.monotonic() - started,
        }
    data = result.as_dict()
    return {
        **base,
        "status": EisFit.Status.OK,
        "circuit": result.circuit,
        "parameters": data["parameters"],
        "chi_square": result.chi_square,
        "rms_relative": result.rms_relative,
        "f_min_hz": result.f_range[0],
        "f_max_hz": result.f_range[1],
        "n_points": result.n_points,
        "weighting": result.weighting,
        "initial_guess": data["initial_guess"],
        "guess_source": result.guess_source,
        "warnings": base["warnings"] + data["warnings"],
        "versions": data["versions"],
        "fit_seconds": time.monotonic() - started,
    }


def _resistance(fitted: dict[str, Any], name: str) -> tuple[float, float | None]:
    for p in fitted.get("parameters") or []:
        if p["name"] == name:
            return float(p["value"]), p["stderr"]
    raise KeyError(name)


def specimen_geometry(spectrum: EisSpectrum) -> dict[str, Any]:
    """Thickness (mm) and area (cm2) with their sources: the upload's metadata, else the specimen.

    A sample gives ``thickness_um`` and ``area_cm2`` (or ``diameter_mm``); a cell its
    ``se_thickness_um`` (the separator pellet) and its area (override, else pellet diameter).
    """
    out: dict[str, Any] = {"thickness_mm": None, "area_cm2": None}
    if spectrum.thickness_mm is not None:
        out["thickness_mm"], out["thickness_source"] = spectrum.thickness_mm, "upload metadata"
        out["thickness_stderr_mm"] = spectrum.thickness_stderr_mm
    if spectrum.area_cm2 is not None:
        out["area_cm2"], out["area_source"] = spectrum.area_cm2, "upload metadata"
        out["area_stderr_cm2"] = spectrum.area_stderr_cm2
    sample, cell = spectrum.sample, spectrum.cell
    if out["thickness_mm"] is None:
        if sample is not None and sample.thickness_um is not None:
            out["thickness_mm"] = float(sample.thickness_um) / 1000
            out["thickness_source"] = f"sample {sample.code} thickness_um"
        elif cell is not None and cell.se_thickness_um is not None:
            out["thickness_mm"] = float(cell.se_thickness_um) / 1000
            out["thickness_source"] = f"cell {cell.code} se_thickness_um"
    if out["area_cm2"] is None:
        if sample is not None and sample.area_cm2 is not None:
            out["area_cm2"] = float(sample.area_cm2)
            out["area_source"] = f"sample {sample.code} area_cm2"
        elif sample is not None and sample.diameter_mm is not None:
            radius_cm = float(sample.diameter_mm) / 20
            out["area_cm2"] = math.pi * radius_cm**2
            out["area_source"] = f"sample {sample.code} diameter_mm (pi d^2 / 4)"
        elif cell is not None and cell.area_cm2 is not None:
            out["area_cm2"] = float(cell.area_cm2)
            out["area_source"] = f"cell {cell.code} area (override, else pellet diameter)"
    return out


def conductivity_compute(
    spectrum: EisSpectrum, fitted: dict[str, Any]
) -> tuple[float | None, float | None, dict[str, Any]]:
    """sigma = L / (R A) from the fit's bulk resistance, or None with the reason.

    R is R1 of 'blocking_pellet' and 'bulk_grain_boundary' (the high-frequency arc: the bulk);
    for 'bulk_grain_boundary' the total conductivity from R1 + R2 is given beside it. A cell's
    arcs ('cell_interfaces') are interfaces, not a material's bulk: no conductivity.
    """
    geometry = specimen_geometry(spectrum)
    info: dict[str, Any] = {"geometry": geometry}
    if fitted.get("status") != EisFit.Status.OK:
        return None, None, {**info, "none_reason": "the fit failed"}
    if fitted["circuit_name"] not in ("blocking_pellet", "bulk_grain_boundary"):
        reason = f"circuit {fitted['circuit_name']!r} has no bulk resistance"
        return None, None, {**info, "none_reason": reason}
    if geometry["thickness_mm"] is None or geometry["area_cm2"] is None:
        missing = [k for k in ("thickness_mm", "area_cm2") if geometry[k] is None]
        reason = (
            f"no {' or '.join(missing)}: give it in the upload's metadata or on the sample/cell"
        )
        return None, None, {**info, "none_reason": reason}
    r1, u1 = _resistance(fitted, "R1")
    kwargs = {
        "area_cm2": geometry["area_cm2"],
        "thickness_mm": geometry["thickness_mm"],
        "thickness_stderr_mm": geometry.get("thickness_stderr_mm"),
        "area_stderr_cm2": geometry.get("area_stderr_cm2"),
    }
    try:
        bulk = cond.conductivity(r1, resistance_stderr=u1, **kwargs)
    except cond.ConductivityError as exc:
        return None, None, {**info, "none_reason": str(exc)}
    info.update(
        resistance="R1 (bulk arc)",
        resistance_ohm=r1,
        resistance_stderr_ohm=u1,
        formula=bulk.formula,
    )
    if fitted["circuit_name"] == "bulk_grain_boundary":
        r2, u2 = _resistance(fitted, "R2")
        u_total = math.hypot(u1, u2) if u1 is not None and u2 is not None else None
        total = cond.conductivity(r1 + r2, resistance_stderr=u_total, **kwargs)
        info["total"] = {
            "resistance": "R1 + R2 (bulk + grain boundary)",
            "resistance_ohm": r1 + r2,
            "sigma_s_cm": total.sigma_s_cm,
            "sigma_stderr_s_cm": total.stderr_s_cm,
        }
    return bulk.sigma_s_cm, bulk.stderr_s_cm, info


def _fit_provenance(spectrum: EisSpectrum) -> dict[str, Any]:
    return {
        "raw_sha256": spectrum.raw_file.sha256,
        "parser_name": spectrum.parser_name,
        "parser_version": spectrum.parser_version,
    }


def _fit_results(spectrum: EisSpectrum, fitted: dict[str, Any]) -> dict[str, Any]:
    """The fit's fields with the conductivity from the spectrum's current owner's geometry."""
    sigma, sigma_se, info = conductivity_compute(spectrum, fitted)
    return {**fitted, "sigma_s_cm": sigma, "sigma_stderr_s_cm": sigma_se, "conductivity": info}


def _fit_row(
    spectrum: EisSpectrum, fitted: dict[str, Any], *, reason: str, user: Any = None
) -> EisFit:
    return EisFit.objects.create(
        spectrum=spectrum,
        reason=reason,
        created_by=user if user is not None and user.is_authenticated else None,
        **_fit_provenance(spectrum),
        **_fit_results(spectrum, fitted),
    )


def eis_fit_run(
    *,
    spectrum: EisSpectrum,
    circuit: str,
    f_min: float | None = None,
    f_max: float | None = None,
    user: Any = None,
) -> EisFit:
    """Refit a stored spectrum (synchronous: ~0.1 s for 60 points); earlier fits are kept.

    The fit runs before the transaction; a failed fit is stored with its error and returned.
    """
    if circuit not in FIT_CIRCUITS:
        raise ValidationError(f"circuit must be one of {', '.join(FIT_CIRCUITS)}, not {circuit!r}")
    f_range = None
    if f_min is not None or f_max is not None:
        lo = f_min if f_min is not None else 0.0
        hi = f_max if f_max is not None else math.inf
        if not (lo >= 0 and hi > lo):
            raise ValidationError(f"f_min {f_min} Hz must be below f_max {f_max} Hz")
        f_range = (lo, hi)
    fitted = fit_compute(spectrum_points(spectrum), circuit=circuit, f_range=f_range)
    with transaction.atomic():
        fit = _fit_row(spectrum, fitted, reason=EisFit.Reason.REFIT, user=user)
        if spectrum.cell is not None:
            cell_interface_recompute(cell=spectrum.cell)
        event_emit(
            topic="cells.eis_fit.created",
            payload={"spectrum": spectrum.pk, "fit": fit.pk, "status": fit.status},
        )
    return fit


def _geometry_params(params: dict[str, Any]) -> dict[str, float | None]:
    """thickness_mm, area_cm2 (and their standard errors) from the upload's metadata."""
    metadata: dict[str, Any] = params.get("metadata") or {}
    out: dict[str, float | None] = {}
    for key in ("thickness_mm", "thickness_stderr_mm", "area_cm2", "area_stderr_cm2"):
        value: Any = metadata.get(key)
        if value in (None, ""):
            out[key] = None
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValidationError(f"metadata {key} {value!r} is not a number") from None
        if not math.isfinite(number) or number < 0 or (number == 0 and "stderr" not in key):
            raise ValidationError(f"metadata {key} {value!r} must be a positive number")
        out[key] = number
    return out


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
            "kk_passed": prepared.kk_passed,
            "kramers_kronig": prepared.kramers_kronig or {},
            **_geometry_params(job.params or {}),
        },
    )
    fit = None
    if prepared.fit is not None:
        fit = _fit_row(spectrum, prepared.fit, reason=EisFit.Reason.INGESTED)
    if cell is not None:
        cell_interface_recompute(cell=cell)
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
        "kk_passed": spectrum.kk_passed,
        "timings_s": {"series": round(prepared.series_s, 3), "fit": round(prepared.fit_s, 3)},
    }
    if fit is not None:
        result["fit"] = {
            "id": fit.pk,
            "circuit": fit.circuit_name,
            "status": fit.status,
            "error": fit.error,
            "sigma_s_cm": fit.sigma_s_cm,
        }
    if note:
        result["note"] = note
    if notes:
        result["warnings"] = notes
    linked = cell is not None or sample is not None
    status = IngestionJob.Status.SUCCEEDED if linked else IngestionJob.Status.NEEDS_LINKING
    return IngestOutcome(status=status, result=result)


@dataclass(frozen=True)
class SpectrumLinked:
    spectrum: EisSpectrum
    refit: EisFit | None  # queued; None when the owner did not change


def owner_text(cell: Cell | None, sample: Any) -> str:
    """'cell C-001', 'sample P-1' or 'nothing' (messages and fit warnings)."""
    return f"cell {cell.code}" if cell else f"sample {sample.code}" if sample else "nothing"


@transaction.atomic
def eis_spectrum_link(
    *, spectrum: EisSpectrum, cell: Cell | None = None, sample: Any = None, user: Any = None
) -> SpectrumLinked:
    """Attach a spectrum to a cell or a sample of its project, or move it (a wrong code at
    upload, a cell's spectrum that was a pellet's), and queue its refit.

    The owner says what was measured, so it chooses the circuit (``choose_circuit``: a sample
    is a blocking pellet, a cell has interfaces) and the geometry of the conductivity: a new
    owner gets a new fit with its default circuit (``metadata.circuit`` named at upload still
    wins), always, even when the circuit stays (the conductivity's geometry may not). Earlier
    fits are kept; the latest successful one is what Arrhenius and R_interface use.

    Decision: the refit runs in a worker (``cells.eis_fit_for_event``, fed by the
    ``cells.eis_spectrum.linked`` event), not in this request. A fit takes 0.1-0.5 s and its
    first one in a process imports impedance.py (~1 s); a script linking a batch of spectra
    would pay that per call and hold a web worker meanwhile. The queued fit is a row now
    (status ``queued``, circuit chosen), so the page and the API show it at once; the outbox
    event survives a lost message (the beat sweep re-relays it) and the task is idempotent.
    A person's refit from the page stays synchronous (``eis_fit_run``): they wait to see it.

    The spectrum leaves its previous cell's R_interface series here; its new cell's series is
    recomputed by the task once the refit is stored. Linking to the owner it has changes
    nothing and queues nothing.
    """
    if (cell is None) == (sample is None):
        raise ValidationError("link a spectrum to a cell or to a sample (exactly one)")
    owner = cell or sample
    if owner.project_id != spectrum.project_id:
        raise ValidationError("that cell or sample belongs to another project than the spectrum")
    locked = (
        EisSpectrum.objects.select_for_update(of=("self",))
        .select_related("cell", "sample", "raw_file", "job")
        .get(pk=spectrum.pk)
    )
    before_cell, before_sample = locked.cell, locked.sample
    if (locked.cell_id, locked.sample_id) == (
        cell.pk if cell else None,
        sample.pk if sample else None,
    ):
        return SpectrumLinked(locked, None)
    locked.cell, locked.sample = cell, sample
    locked.save(update_fields=["cell", "sample"])
    if before_cell is not None and before_cell != cell:
        cell_interface_recompute(cell=before_cell)  # the spectrum leaves that cell's series
    if locked.job_id is not None:
        IngestionJob.objects.filter(
            pk=locked.job_id, status=IngestionJob.Status.NEEDS_LINKING
        ).update(status=IngestionJob.Status.SUCCEEDED)
    params = locked.job.params if locked.job is not None else {}
    circuit, why = choose_circuit(
        {
            "metadata": (params or {}).get("metadata"),
            "cell": cell.code if cell else "",
            "sample": sample.code if sample else "",
        }
    )
    moved = f"linked to {owner_text(cell, sample)} (was {owner_text(before_cell, before_sample)})"
    refit = EisFit.objects.create(
        spectrum=locked,
        circuit_name=circuit,
        status=EisFit.Status.QUEUED,
        reason=EisFit.Reason.LINKED,
        created_by=user if user is not None and user.is_authenticated else None,
        warnings=[f"{moved}: refit", why],
        **_fit_provenance(locked),
    )
    event_emit(
        topic="cells.eis_spectrum.linked",
        payload={
            "spectrum": locked.pk,
            "cell": cell.code if cell else None,
            "sample": sample.code if sample else None,
            "previous_cell": before_cell.code if before_cell else None,
            "previous_sample": before_sample.code if before_sample else None,
            "fit": refit.pk,
            "circuit": circuit,
        },
    )
    return SpectrumLinked(locked, refit)


def eis_fit_queued_run(*, fit_id: int) -> EisFit | None:
    """Make a queued fit (``eis_spectrum_link``): fit outside any transaction, then fill the
    row, recompute the owner cell's R_interface and emit ``cells.eis_fit.created`` in one.

    Idempotent: a fit no longer queued (a redelivered message, a second worker) is left as
    it is. The conductivity uses the owner the spectrum has when the fit is stored.
    """
    fit = EisFit.objects.select_related("spectrum").filter(pk=fit_id).first()
    if fit is None or fit.status != EisFit.Status.QUEUED:
        return fit
    try:
        points = spectrum_points(fit.spectrum)
    except (OSError, pl.exceptions.PolarsError) as exc:
        fitted: dict[str, Any] = {
            "status": EisFit.Status.FAILED,
            "error": f"the stored points could not be read: {type(exc).__name__}: {exc}",
            "warnings": [],
        }
    else:
        fitted = fit_compute(points, circuit=fit.circuit_name)
    with transaction.atomic():
        fit = EisFit.objects.select_for_update().get(pk=fit_id)
        if fit.status != EisFit.Status.QUEUED:
            return fit
        spectrum = EisSpectrum.objects.select_related("cell", "sample", "raw_file").get(
            pk=fit.spectrum_id
        )
        fitted["warnings"] = [*fit.warnings, *fitted["warnings"]]
        for name, value in _fit_results(spectrum, fitted).items():
            setattr(fit, name, value)
        fit.save()
        if spectrum.cell is not None:
            cell_interface_recompute(cell=spectrum.cell)
        event_emit(
            topic="cells.eis_fit.created",
            payload={"spectrum": spectrum.pk, "fit": fit.pk, "status": fit.status},
        )
    return fit


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


INTERFACE_METHOD = (
    "each spectrum of the cell follows the last stitched cycle that started at or before it "
    "(0: before the first cycle); R_interface = sum of the arc resistances of the spectrum's "
    "latest successful fit (cell_interfaces: R1 + R2; one arc: R1; R0 left out), stderr in "
    "quadrature. Spectrum time: the file's start time, else the upload's metadata.measured_at "
    "(ISO 8601; naive = UTC), else the upload time"
)


def spectrum_moment(spectrum: EisSpectrum) -> tuple[datetime, str]:
    """When a spectrum was measured, and where that came from (docs/eis.md)."""
    if spectrum.started_at is not None:
        return spectrum.started_at, "file start time"
    job = spectrum.job
    metadata = ((job.params or {}).get("metadata") if job is not None else None) or {}
    text = metadata.get("measured_at") if isinstance(metadata, dict) else None
    if isinstance(text, str):
        moment = _start_time({"start_time": text})
        if moment is not None:
            return moment, "upload metadata.measured_at"
    return spectrum.raw_file.received_at, "upload time (no acquisition time known)"


def _chain_zero(cell: Cell) -> float | None:
    """Epoch seconds of stitched time 0: started_at - chain_time_offset_s of a dated member."""
    from cells.models import CyclingTest

    for test in cell.tests.filter(chain_role=CyclingTest.ChainRole.MEMBER).order_by(
        "chain_position"
    ):
        if test.started_at is not None and test.chain_time_offset_s is not None:
            return test.started_at.timestamp() - test.chain_time_offset_s
    return None


def cell_interface_recompute(
    *, cell: Cell, reason: str | None = "R_interface recomputed from the cell's spectra"
) -> dict[str, Any] | None:
    """Store R_interface vs stitched cycle in the cell's StitchedRecord (no record: nothing
    to place the spectra on). Called when the cell re-stitches, a spectrum of it is fitted
    or linked to it. Runs inside the caller's transaction; locks the record. A changed series
    adds a version of the record with ``reason`` (None: the caller, a re-stitch, versions)."""
    from cells.eis.interface import CycleSpan, SpectrumAt, interface_resistance, place_spectra
    from cells.models import StitchedRecord
    from cells.selectors import stitched_cycle_table

    with transaction.atomic():
        record = StitchedRecord.objects.select_for_update().filter(cell=cell).first()
        if record is None:
            return None
        spectra = list(
            EisSpectrum.objects.filter(cell=cell).select_related("raw_file", "job").order_by("pk")
        )
        latest: dict[int, EisFit] = {}
        for done in EisFit.objects.filter(spectrum__in=spectra, status=EisFit.Status.OK).order_by(
            "created_at", "pk"
        ):
            latest[done.spectrum_id] = done
        placed_in: list[SpectrumAt] = []
        info: dict[int, dict[str, Any]] = {}
        skipped: list[dict[str, Any]] = []
        for s in spectra:
            moment, source = spectrum_moment(s)
            fit = latest.get(s.pk)
            r = interface_resistance(fit.parameters) if fit is not None else None
            base = {"spectrum": s.pk, "file": s.raw_file.original_name}
            if fit is None or r is None:
                why = "no successful fit" if fit is None else f"fit {fit.pk} has no arc"
                skipped.append({**base, "reason": why})
                continue
            placed_in.append(SpectrumAt(s.pk, moment.timestamp(), r[0], r[1]))
            info[s.pk] = {
                **base,
                "fit": fit.pk,
                "circuit": fit.circuit_name,
                "terms": r[2],
                "raw_sha256": s.raw_file.sha256,
                "measured_at": moment,
                "time_source": source,
            }
        # the stitched cycles are read only when there is a spectrum to place on them
        zero = _chain_zero(cell) if placed_in else None
        cycles = [
            CycleSpan(
                c.cycle_index,
                zero + c.stitched_start_s,  # type: ignore[attr-defined]
                zero + c.stitched_start_s + (c.duration_s or 0.0),  # type: ignore[attr-defined]
            )
            for c in (stitched_cycle_table(cell=cell) if zero is not None else [])
            if zero is not None and getattr(c, "stitched_start_s", None) is not None
        ]
        if not cycles and placed_in:
            why = (
                "the stitched test has no start time, so spectra cannot be placed on its cycles"
                if zero is None
                else "the stitched cycles have no start times"
            )
            skipped += [{**info[p.key], "reason": why} for p in placed_in]
            placed_in = []
        series = [
            {
                "cycle": p.cycle,
                "r_ohm": p.r_ohm,
                "r_stderr_ohm": p.r_stderr_ohm,
                **info[p.key],
                "note": p.note,
            }
            for p in place_spectra(cycles, placed_in)
        ]
        value = {"series": series, "skipped": skipped, "method": INTERFACE_METHOD}
        changed = record.interface_resistance != json_roundtrip(value)
        if changed:  # every re-stitch calls this; most have no spectrum and change nothing
            StitchedRecord.objects.filter(pk=record.pk).update(interface_resistance=value)
        if reason is not None and changed:
            from cells.services import stitched_version_add

            record.interface_resistance = value
            stitched_version_add(record=record, reason=reason)
    return value
