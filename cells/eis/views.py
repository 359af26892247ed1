"""Pages for impedance spectra: the detail page with fits, the refit form, the plot data."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from cells.eis import selectors, services
from cells.models import Cell, EisSpectrum
from lims import access


class RefitForm(forms.Form):
    circuit = forms.ChoiceField(choices=[(c, c) for c in services.FIT_CIRCUITS])
    f_min = forms.FloatField(required=False, min_value=0, label="f min (Hz)")
    f_max = forms.FloatField(required=False, min_value=0, label="f max (Hz)")


class LinkForm(forms.Form):
    """One cell or sample of the spectrum's project, from one grouped list ("cell:<code>");
    codes resolve as the API's do (``selectors.link_target``), the service decides the rest."""

    owner = forms.ChoiceField(label="Link to")

    def __init__(self, *args: Any, spectrum: EisSpectrum, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spectrum = spectrum
        cells, samples = selectors.link_targets(spectrum)
        field: Any = self.fields["owner"]
        field.choices = [
            ("", "choose a cell or a sample"),
            ("Cells", [(f"cell:{c}", c) for c in cells.values_list("code", flat=True)]),
            ("Samples", [(f"sample:{c}", c) for c in samples.values_list("code", flat=True)]),
        ]
        if spectrum.cell is not None:
            self.initial.setdefault("owner", f"cell:{spectrum.cell.code}")
        elif spectrum.sample is not None:
            self.initial.setdefault("owner", f"sample:{spectrum.sample.code}")

    def clean_owner(self) -> dict[str, Any]:
        kind, code = self.cleaned_data["owner"].split(":", 1)
        try:
            return selectors.link_target(self.spectrum, **{kind: code})
        except ValidationError as exc:  # {field: message}: this field's error here
            raise ValidationError(exc.messages) from exc


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
    context: dict[str, Any] = {"spectra": spectra, "eis_data": spectra_plot_data(spectra)}
    if spectra:
        context["arrhenius"] = selectors.arrhenius_series(cell=cell)
    return context


def sample_spectra_context(sample: Any) -> dict[str, Any]:
    """The impedance section of a sample (pellet) page: its spectra and their Arrhenius plot."""
    spectra = list(
        sample.eis_spectra.select_related("raw_file").order_by("temperature_c", "created_at")
    )
    context: dict[str, Any] = {"spectra": spectra, "eis_data": spectra_plot_data(spectra)}
    if spectra:
        context["arrhenius"] = selectors.arrhenius_series(sample=sample)
    return context


def _spectrum(request: HttpRequest, pk: int) -> EisSpectrum:
    spectrum = selectors.eis_spectrum_list(user=request.user).filter(pk=pk).first()
    if spectrum is None:
        raise Http404("no such spectrum")
    access.check_request(request, spectrum.project_id)
    return spectrum


@login_required
def spectrum_detail(request: HttpRequest, pk: int) -> HttpResponse:
    spectrum = _spectrum(request, pk)
    fits = selectors.spectrum_fits(spectrum)
    chosen = selectors.chosen_fit(spectrum, request.GET.get("fit"))
    data = spectra_plot_data([spectrum])
    if chosen is not None:
        data[0]["fit"] = {
            "id": chosen.pk,
            "label": f"fit {chosen.pk}: {chosen.circuit}",
            "curve": selectors.fit_curve(chosen),
        }
    kk = spectrum.kramers_kronig or {}
    if "residuals_real" in kk:
        data[0]["kk"] = {
            "f_hz": kk["frequencies"],
            "real": kk["residuals_real"],
            "imag": kk["residuals_imag"],
            "threshold": kk["threshold"],
        }
    rows = []
    if chosen is not None:
        guesses = list(chosen.initial_guess) + [None] * len(chosen.parameters)
        rows = [{**p, "guess": g} for p, g in zip(chosen.parameters, guesses, strict=False)]
    initial = {"circuit": chosen.circuit_name if chosen else services.FIT_CIRCUITS[0]}
    return render(
        request,
        "cells/spectrum_detail.html",
        {
            "spectrum": spectrum,
            "eis_data": data,
            "fits": fits,
            "chosen": chosen,
            "parameter_rows": rows,
            "kk": kk,
            "form": RefitForm(initial=initial),
            "link_form": LinkForm(spectrum=spectrum),
            "queued": [f for f in fits if f.status == f.Status.QUEUED],
        },
    )


@login_required
@access.write_required()
@require_POST
def spectrum_refit(request: HttpRequest, pk: int) -> HttpResponse:
    spectrum = _spectrum(request, pk)
    form = RefitForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"refit not started: {form.errors.as_text()}")
        return redirect(spectrum.get_absolute_url())
    try:
        fit = services.eis_fit_run(spectrum=spectrum, user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, f"refit not started: {'; '.join(exc.messages)}")
        return redirect(spectrum.get_absolute_url())
    if fit.status == fit.Status.OK:
        messages.success(request, f"fit {fit.pk} ({fit.circuit_name}) stored")
    else:
        messages.error(request, f"fit {fit.pk} failed: {fit.error}")
    return redirect(f"{spectrum.get_absolute_url()}?fit={fit.pk}")


@login_required
@access.write_required()
@require_POST
def spectrum_link(request: HttpRequest, pk: int) -> HttpResponse:
    """Link (or move) a spectrum by hand; its refit is queued (``services.eis_spectrum_link``)."""
    spectrum = _spectrum(request, pk)
    form = LinkForm(request.POST, spectrum=spectrum)
    if not form.is_valid():
        messages.error(request, f"not linked: {form.errors.as_text()}")
        return redirect(spectrum.get_absolute_url())
    try:
        linked = services.eis_spectrum_link(
            spectrum=spectrum, user=request.user, **form.cleaned_data["owner"]
        )
    except ValidationError as exc:
        messages.error(request, f"not linked: {'; '.join(exc.messages)}")
        return redirect(spectrum.get_absolute_url())
    owner = services.owner_text(linked.spectrum.cell, linked.spectrum.sample)
    if linked.refit is None:
        messages.info(request, f"already linked to {owner}: nothing changed")
    else:
        messages.success(
            request,
            f"linked to {owner}; refit {linked.refit.pk} with {linked.refit.circuit_name} queued",
        )
    return redirect(spectrum.get_absolute_url())
