"""Pages for impedance spectra: the detail page, and the plot data the cell page draws."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from cells.eis import selectors
from cells.models import Cell, EisSpectrum


def spectra_plot_data(spectra: list[EisSpectrum]) -> list[dict[str, Any]]:
    """What static/js/eis_plots.js draws: per spectrum its points and its intercept."""
    return [
        {
            "id": s.pk,
            "label": f"{s.raw_file.original_name}"
            + (f" ({s.temperature_c:g} °C)" if s.temperature_c is not None else ""),
            "series": selectors.spectrum_series(s),
            "hf_intercept_ohm": s.hf_intercept_ohm,
        }
        for s in spectra
    ]


def cell_spectra_context(cell: Cell) -> dict[str, Any]:
    spectra = selectors.cell_spectra(cell=cell)
    return {"spectra": spectra, "eis_data": spectra_plot_data(spectra)}


@login_required
def spectrum_detail(request: HttpRequest, pk: int) -> HttpResponse:
    spectrum = selectors.eis_spectrum_list(user=request.user).filter(pk=pk).first()
    if spectrum is None:
        raise Http404("no such spectrum")
    return render(
        request,
        "cells/spectrum_detail.html",
        {"spectrum": spectrum, "eis_data": spectra_plot_data([spectrum])},
    )
