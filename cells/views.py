"""Cell pages: list (filterable), detail with plots and provenance, create/edit forms."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from cells import selectors, services
from cells.choices import CellType
from cells.eis.views import cell_spectra_context
from cells.filtersets import CellFilterSet
from cells.forms import CellForm
from cells.models import Cell, CyclingTest
from lims import access
from lims.export import csv_response
from lims.labels import label_sheet


@login_required
def cell_list(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    filterset = CellFilterSet(request.GET or None, queryset=Cell.objects.none())
    cells = selectors.cell_list(user=request.user, filters=request.GET.dict())
    if request.GET.get("export") == "csv":
        return csv_response(
            "cells.csv",
            [
                ("code", lambda c: c.code),
                ("project", lambda c: c.project.slug),
                ("format", lambda c: c.format),
                ("type", lambda c: c.cell_type),
                ("cathode", lambda c: c.cathode_active_material),
                ("cathode_sample", lambda c: c.cathode_sample.code if c.cathode_sample else ""),
                ("active_mass_mg", lambda c: c.active_mass_mg),
                ("se_material", lambda c: c.se_material),
                ("tests", lambda c: c.test_count),
                ("assembled_at", lambda c: c.assembled_at),
            ],
            cells.iterator(chunk_size=500),
        )
    if request.GET.get("export") == "labels":
        rows = [(c.code, c.get_cell_type_display()) for c in cells[:400]]
        response = HttpResponse(label_sheet(rows), content_type="application/pdf")
        response["Content-Disposition"] = 'inline; filename="cell-labels.pdf"'
        return response
    page = Paginator(cells, 50).get_page(request.GET.get("page"))
    return render(request, "cells/cell_list.html", {"page": page, "filter": filterset})


def _get_cell(request: HttpRequest, code: str) -> Cell:
    try:
        cell = selectors.cell_get(user=request.user, code=code)
    except Cell.DoesNotExist:
        raise Http404("no such cell") from None
    access.check_request(request, cell.project_id)
    return cell


def _cycles(text: str | None) -> list[int]:
    """Cycle numbers from a comma-separated query parameter (at most 12)."""
    return [int(c) for c in (text or "").replace(" ", "").split(",") if c.isdigit()][:12]


def _analytics(cell: Cell, test: CyclingTest, chosen: list[int]) -> dict[str, Any]:
    """Symmetric-cell analysis for a Li-symmetric cell; dQ/dV and rate capability otherwise."""
    if not test.series_path:
        return {}
    if cell.cell_type == CellType.LI_SYMMETRIC:
        return {"symmetric": selectors.symmetric_of_test(test=test)}
    return {
        "dqdv": selectors.dqdv_of_test(test=test, cycle_indices=chosen),
        "rate": selectors.rate_capability_of_test(test=test),
    }


@login_required
def cell_detail(request: HttpRequest, code: str) -> HttpResponse:
    cell = _get_cell(request, code)
    tests = selectors.cell_tests(cell=cell)
    chosen = _cycles(request.GET.get("cycles")) or [1, 2, 5, 10]
    plots: list[dict[str, Any]] = []
    for test in tests:
        cycles = list(test.cycles.all())
        plots.append(
            {
                "test": test,
                "cycles": cycles,
                "series": {
                    "cycle": [c.cycle_index for c in cycles],
                    "charge": [c.charge_mah_g or c.charge_mah for c in cycles],
                    "discharge": [c.discharge_mah_g or c.discharge_mah for c in cycles],
                    "ce": [
                        c.coulombic_efficiency * 100 if c.coulombic_efficiency else None
                        for c in cycles
                    ],
                    "per_gram": any(c.discharge_mah_g is not None for c in cycles),
                },
                "curves": selectors.voltage_curves(test=test, cycle_indices=chosen),
                **_analytics(cell, test, chosen),
            }
        )
    linked = [x for x in (cell.cathode_sample, cell.se_sample, cell.anode_sample) if x]
    plot_data = [{"id": p["test"].pk, "series": p["series"], "curves": p["curves"]} for p in plots]
    analytics_data = [
        {"id": p["test"].pk, **{k: p[k] for k in ("dqdv", "rate", "symmetric") if k in p}}
        for p in plots
    ]
    return render(
        request,
        "cells/cell_detail.html",
        {
            "cell": cell,
            "cell_samples": linked,
            "figure": selectors.cell_lineage_figure(cell=cell),
            "process": selectors.cell_process_summary(user=request.user, cell=cell),
            "plots": plots,
            "plot_data": plot_data,
            "analytics_data": analytics_data,
            "chosen": chosen,
            "chain": selectors.cell_chain(cell=cell),
            "stitched": getattr(cell, "stitched", None),
            "stitched_versions": selectors.stitched_versions(cell=cell),
            "stitched_views": selectors.stitched_views(
                cell=cell, cycle_indices=_cycles(request.GET.get("scycles"))
            ),
            **cell_spectra_context(cell),
        },
    )


@login_required
@access.write_required()
def cycling_test_chain(request: HttpRequest, code: str, pk: int, action: str) -> HttpResponse:
    """Detach a test from the cell's stitched test, or attach it back (POST from the page)."""
    cell = _get_cell(request, code)
    if request.method != "POST" or action not in ("detach", "attach"):
        raise Http404("POST detach or attach")
    test = cell.tests.filter(pk=pk).first()
    if test is None:
        raise Http404("no such test on this cell")
    change = services.cycling_test_detach if action == "detach" else services.cycling_test_attach
    change(test=test, reason=f"{action}ed on the cell page by {request.user}")
    return redirect(cell.get_absolute_url() + "#stitched")


@login_required
@access.write_required()
def cell_create(request: HttpRequest) -> HttpResponse:
    form = CellForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.note_reason(request)
        data = dict(form.cleaned_data)
        project, code = data.pop("project"), data.pop("code")
        try:
            cell = services.cell_create(project=project, code=code, **data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(cell)
    return render(request, "cells/cell_form.html", {"form": form})


@login_required
@access.write_required()
def cell_edit(request: HttpRequest, code: str) -> HttpResponse:
    cell = _get_cell(request, code)
    form = CellForm(request.POST or None, instance=cell, user=request.user)
    if request.method == "POST" and form.is_valid():
        reason = form.note_reason(request)
        data = {k: v for k, v in form.cleaned_data.items() if k not in ("code", "project")}
        try:
            cell = services.cell_update(cell=cell, reason=reason or "edited in the browser", **data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(cell)
    return render(request, "cells/cell_form.html", {"form": form, "cell": cell})


@login_required
def cells_from_lot(request: HttpRequest, lot_id: int) -> HttpResponse:
    """All cells built from a powder lot, with their records, by coating recipe and anneal."""
    from lims.selectors import scope_to_user
    from samples.models import MaterialLot

    lot = (
        scope_to_user(MaterialLot.objects.select_related("material"), user=request.user)
        .filter(pk=lot_id)
        .first()
    )
    if lot is None:
        raise Http404("no such lot")
    groups = selectors.cells_from_lot(user=request.user, lot=lot)
    return render(request, "cells/cells_from_lot.html", {"lot": lot, "groups": groups})
