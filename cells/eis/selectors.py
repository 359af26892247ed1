"""Reads for impedance spectra: scoped to the user's projects."""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from cells.eis import conductivity as cond
from cells.eis.services import spectrum_points
from cells.models import Cell, EisFit, EisSpectrum
from lims.selectors import scope_to_user


def eis_spectrum_list(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[EisSpectrum]:
    qs = EisSpectrum.objects.select_related("cell", "sample", "raw_file", "project")
    qs = scope_to_user(qs, user=user)
    filters = filters or {}
    if filters.get("cell"):
        qs = qs.filter(cell__code=filters["cell"])
    if filters.get("sample"):
        qs = qs.filter(sample__code=filters["sample"])
    return qs.order_by("-created_at")


def link_targets(spectrum: EisSpectrum) -> tuple[QuerySet[Cell], QuerySet[Any]]:
    """The cells and the samples a spectrum may be linked to: those of its project."""
    from samples.models import Sample

    cells = Cell.objects.filter(project_id=spectrum.project_id).order_by("code")
    samples = Sample.objects.filter(project_id=spectrum.project_id).order_by("code")
    return cells, samples


def link_target(spectrum: EisSpectrum, *, cell: str = "", sample: str = "") -> dict[str, Any]:
    """``{"cell": Cell, "sample": Sample}`` (those named) for codes of the spectrum's project;
    a code that names nothing there is an error that says so."""
    cells, samples = link_targets(spectrum)
    found: dict[str, Any] = {}
    for key, code, qs in (("cell", cell, cells), ("sample", sample, samples)):
        code = (code or "").strip()
        if code:
            found[key] = qs.filter(code=code).first()
            if found[key] is None:
                raise ValidationError(
                    {key: f"no {key} {code!r} in project {spectrum.project.slug}"}
                )
    return found


def cell_spectra(*, cell: Cell) -> list[EisSpectrum]:
    return list(cell.spectra.select_related("raw_file").order_by("started_at", "created_at"))


def spectrum_series(spectrum: EisSpectrum) -> dict[str, list[float | int | None]]:
    """The stored points as columns (JSON-safe: NaN becomes null)."""
    frame = spectrum_points(spectrum)

    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    return {name: [clean(v) for v in frame[name].to_list()] for name in frame.columns}


def spectrum_fits(spectrum: EisSpectrum) -> list[EisFit]:
    return list(spectrum.fits.select_related("created_by").order_by("-created_at", "-pk"))


def chosen_fit(spectrum: EisSpectrum, fit_id: Any = None) -> EisFit | None:
    """The fit asked for (by id), else the latest one that succeeded."""
    fits = spectrum.fits.all()
    if fit_id not in (None, ""):
        try:
            return fits.filter(pk=int(fit_id)).first()
        except (TypeError, ValueError):
            return None
    return fits.filter(status=EisFit.Status.OK).order_by("-created_at", "-pk").first()


def fit_curve(fit: EisFit, *, points: int = 200) -> dict[str, list[float]] | None:
    """The fitted circuit's impedance over the fitted range, log-spaced (for the overlays)."""
    if fit.status != EisFit.Status.OK or not fit.f_min_hz or not fit.f_max_hz:
        return None
    import numpy as np

    from cells.eis.fit import circuit_impedance  # impedance.py: imported only when drawing a fit

    f = np.logspace(math.log10(fit.f_max_hz), math.log10(fit.f_min_hz), points)
    z = circuit_impedance(fit.circuit, [p["value"] for p in fit.parameters], f)
    return {
        "f_hz": f.tolist(),
        "z_real_ohm": z.real.tolist(),
        "z_imag_ohm": z.imag.tolist(),
        "z_mod_ohm": np.abs(z).tolist(),
        "phase_deg": np.degrees(np.angle(z)).tolist(),
    }


def _owner_filter(cell: Any, sample: Any) -> dict[str, Any]:
    if (cell is None) == (sample is None):
        raise ValidationError("name a cell or a sample (exactly one)")
    return {"cell": cell} if cell is not None else {"sample": sample}


def arrhenius_series(*, cell: Any = None, sample: Any = None) -> dict[str, Any]:
    """Conductivity vs temperature of one specimen, and its Arrhenius fit when it has one.

    Per spectrum the latest fit with a conductivity; spectra without a temperature or without
    such a fit are listed in ``skipped`` with the reason. The fit is weighted by the
    conductivities' standard errors when every one has a positive error, else unweighted.
    """
    spectra = EisSpectrum.objects.filter(**_owner_filter(cell, sample)).select_related("raw_file")
    points: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for spectrum in spectra.order_by("temperature_c", "created_at"):
        fit = (
            spectrum.fits.filter(status=EisFit.Status.OK, sigma_s_cm__isnull=False)
            .order_by("-created_at", "-pk")
            .first()
        )
        name = spectrum.raw_file.original_name
        if spectrum.temperature_c is None:
            skipped.append({"spectrum": spectrum.pk, "name": name, "reason": "no temperature"})
        elif fit is None:
            skipped.append(
                {"spectrum": spectrum.pk, "name": name, "reason": "no fit with a conductivity"}
            )
        else:
            t_k = spectrum.temperature_c + cond.ZERO_C_IN_K
            assert fit.sigma_s_cm is not None
            points.append(
                {
                    "spectrum": spectrum.pk,
                    "fit": fit.pk,
                    "name": name,
                    "circuit": fit.circuit_name,
                    "temperature_c": spectrum.temperature_c,
                    "temperature_k": t_k,
                    "inverse_t_1000_k": 1000 / t_k,
                    "sigma_s_cm": fit.sigma_s_cm,
                    "sigma_stderr_s_cm": fit.sigma_stderr_s_cm,
                    "ln_sigma_t": math.log(fit.sigma_s_cm * t_k),
                }
            )
    out: dict[str, Any] = {
        "cell": cell.code if cell is not None else None,
        "sample": sample.code if sample is not None else None,
        "points": points,
        "skipped": skipped,
        "fit": None,
        "none_reason": "",
    }
    errors = [p["sigma_stderr_s_cm"] for p in points]
    weighted = bool(points) and all(e is not None and e > 0 for e in errors)
    try:
        result = cond.arrhenius(
            [p["sigma_s_cm"] for p in points],
            temperatures_k=[p["temperature_k"] for p in points],
            sigma_stderrs_s_cm=errors if weighted else None,
        )
    except cond.ConductivityError as exc:
        out["none_reason"] = str(exc)
        return out
    out["fit"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in result.__dict__.items()}
    return out
