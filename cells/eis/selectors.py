"""Reads for impedance spectra: scoped to the user's projects."""

from __future__ import annotations

import math
from typing import Any

from django.db.models import QuerySet

from cells.eis.services import spectrum_points
from cells.models import Cell, EisSpectrum
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


def cell_spectra(*, cell: Cell) -> list[EisSpectrum]:
    return list(cell.spectra.select_related("raw_file").order_by("started_at", "created_at"))


def spectrum_series(spectrum: EisSpectrum) -> dict[str, list[float | int | None]]:
    """The stored points as columns (JSON-safe: NaN becomes null)."""
    frame = spectrum_points(spectrum)

    def clean(value: Any) -> Any:
        return None if isinstance(value, float) and not math.isfinite(value) else value

    return {name: [clean(v) for v in frame[name].to_list()] for name in frame.columns}
