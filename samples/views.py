"""Sample pages: list (+CSV), detail with the lineage picture, create, split, import."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from lims import access
from lims.export import csv_response
from lims.labels import label_sheet
from samples import imports, selectors, services
from samples.filtersets import SampleFilterSet
from samples.forms import (
    ExposureForm,
    ImportForm,
    LotForm,
    MaterialForm,
    MixForm,
    SampleForm,
    SplitForm,
)
from samples.models import Sample


@login_required
def sample_list(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    samples = selectors.sample_list(user=request.user, filters=request.GET.dict())
    if request.GET.get("export") == "labels":
        rows = [
            (s.code, f"{s.get_kind_display()} {s.material or ''}".strip()) for s in samples[:400]
        ]
        response = HttpResponse(label_sheet(rows), content_type="application/pdf")
        response["Content-Disposition"] = 'inline; filename="sample-labels.pdf"'
        return response
    if request.GET.get("export") == "csv":
        return csv_response(
            "samples.csv",
            [
                ("code", lambda s: s.code),
                ("kind", lambda s: s.kind),
                ("material", lambda s: s.material.name if s.material else ""),
                ("lot", lambda s: s.lot.lot_number if s.lot else ""),
                ("quantity", lambda s: s.quantity),
                ("remaining", lambda s: s.remaining),
                ("unit", lambda s: s.unit),
                ("state", lambda s: s.state),
                ("location", lambda s: s.location),
                ("project", lambda s: s.project.slug),
            ],
            samples.iterator(chunk_size=500),
        )
    filterset = SampleFilterSet(request.GET or None, queryset=Sample.objects.none())
    page = Paginator(samples, 50).get_page(request.GET.get("page"))
    return render(request, "samples/sample_list.html", {"page": page, "filter": filterset})


def _get(request: HttpRequest, code: str) -> Sample:
    try:
        sample = selectors.sample_get(user=request.user, code=code)
    except Sample.DoesNotExist:
        raise Http404("no such sample") from None
    access.check_request(request, sample.project_id)
    return sample


@login_required
def sample_detail(request: HttpRequest, code: str) -> HttpResponse:
    sample = _get(request, code)
    graph = selectors.lineage(sample=sample)
    context = {
        "sample": sample,
        "graph": graph.as_dict(),
        "figure": selectors.lineage_figure(graph),
        "exposure": selectors.exposure_totals(sample=sample),
        "exposures": sample.exposures.all(),
        "history": selectors.sample_history(sample=sample),
        "split_form": SplitForm(),
        "exposure_form": ExposureForm(),
    }
    from cells.eis.views import sample_spectra_context  # the pellet's impedance section

    context.update(sample_spectra_context(sample))
    return render(request, "samples/sample_detail.html", context)


@login_required
@access.write_required()
def sample_create(request: HttpRequest) -> HttpResponse:
    form = SampleForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            sample = services.sample_create(
                project=data.pop("project"),
                code=data.pop("code"),
                kind=data.pop("kind"),
                quantity=data.pop("quantity"),
                **data,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(sample)
    return render(request, "samples/sample_form.html", {"form": form})


@login_required
@access.write_required()
def sample_split(request: HttpRequest, code: str) -> HttpResponse:
    sample = _get(request, code)
    form = SplitForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            aliquots = [
                services.OutputSpec(code=c, kind=form.cleaned_data["kind"], quantity=Decimal(q))
                for c, q in form.cleaned_data["aliquots"]
            ]
            services.sample_split(
                sample=sample,
                aliquots=aliquots,
                taken=form.cleaned_data["taken"],
                operator=request.user,
            )
        except InvalidOperation:
            messages.error(request, "a quantity is not a number")
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, f"Split {sample.code} into {len(aliquots)} aliquots.")
    elif request.method == "POST":
        messages.error(request, "; ".join(str(e) for e in form.errors.get("aliquots", [])))
    return redirect(sample)


@login_required
@access.write_required()
def sample_import(request: HttpRequest) -> HttpResponse:
    form = ImportForm(request.POST or None, request.FILES or None, user=request.user)
    report = None
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            rows = imports.read_table(upload, upload.name)
        except ValidationError as exc:
            form.add_error("file", exc)
        else:
            report = imports.samples_import(
                project=form.cleaned_data["project"],
                rows=rows,
                dry_run=form.cleaned_data["dry_run"],
            )
    return render(request, "samples/sample_import.html", {"form": form, "report": report})


@login_required
@access.write_required()
def sample_mix(request: HttpRequest) -> HttpResponse:
    form = MixForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            visible = selectors.sample_list(user=request.user)
            inputs = []
            for code, qty in data["inputs"]:
                found = visible.filter(code=code).first()
                if found is None:
                    raise ValidationError(f"no sample {code!r} in your projects")
                inputs.append((found, Decimal(qty)))
            total = sum((q for _, q in inputs), Decimal(0))
            services.sample_mix(
                project=data["project"],
                inputs=inputs,
                output=services.OutputSpec(data["code"], data["kind"], data["quantity"] or total),
                operator=request.user,
            )
        except InvalidOperation:
            form.add_error("inputs", "a quantity is not a number")
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("samples:sample-detail", code=data["code"])
    return render(request, "samples/simple_form.html", {"form": form, "title": "Mix a composite"})


@login_required
@access.write_required()
def lot_list(request: HttpRequest) -> HttpResponse:
    lots = selectors.lot_list(user=request.user, filters=request.GET.dict())
    form = LotForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            services.lot_receive(
                project=data.pop("project"),
                material=data.pop("material"),
                lot_number=data.pop("lot_number"),
                quantity=data.pop("quantity_received"),
                sample_code=data.pop("sample_code") or None,
                **data,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("samples:lot-list")
    page = Paginator(lots, 50).get_page(request.GET.get("page"))
    return render(request, "samples/lot_list.html", {"page": page, "form": form})


@login_required
@access.write_required(access.STAFF)
def material_list(request: HttpRequest) -> HttpResponse:
    form = MaterialForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.material_create(**form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("samples:material-list")
    materials = Paginator(selectors.material_list(filters=request.GET.dict()), 100).get_page(
        request.GET.get("page")
    )
    return render(request, "samples/material_list.html", {"page": materials, "form": form})


@login_required
@access.write_required()
def exposure_add(request: HttpRequest, code: str) -> HttpResponse:
    sample = _get(request, code)
    form = ExposureForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.exposure_add(sample=sample, **form.cleaned_data)
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
    elif request.method == "POST":
        messages.error(request, form.errors.as_text())
    return redirect(sample)
