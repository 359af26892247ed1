"""Sample pages: list (+CSV), detail with the lineage picture, create, split, import."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render

from lims.export import csv_response
from lims.labels import label_sheet
from samples import imports, selectors, services
from samples.filtersets import SampleFilterSet
from samples.forms import ImportForm, SampleForm, SplitForm
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
        return selectors.sample_get(user=request.user, code=code)
    except Sample.DoesNotExist:
        raise Http404("no such sample") from None


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
    }
    return render(request, "samples/sample_detail.html", context)


@login_required
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
