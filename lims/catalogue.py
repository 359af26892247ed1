"""List, detail, create and edit pages for the catalogue-like models, in one place.

Each entry names the model, its scoped queryset, the columns people scan, the fields they
search, a ModelForm for validation and the services that write. The views are generic so that
every model gets the same list (search, sort, paginate), detail and forms without a copy per
model; anything with a workflow (samples, runs, recipes, anneals, cells) keeps its own pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse

from lims import access
from lims.forms import CorrectionReasonForm


@dataclass
class Entry:
    slug: str
    title: str
    queryset: Callable[[Any], QuerySet[Any]]  # user -> scoped queryset
    columns: list[tuple[str, Callable[[Any], Any]]]
    search: list[str]
    form: type[forms.ModelForm] | None = None
    create: Callable[..., Model] | None = None  # service(user=..., **cleaned_data)
    update: Callable[..., Model] | None = None  # service(obj, user=..., **cleaned_data)
    sort: list[str] = field(default_factory=list)
    staff_only_writes: bool = False
    # foreign-key field -> user -> the choices that user may pick (their projects' rows);
    # a form field not named here keeps its model's full queryset (shared catalogues)
    choices: dict[str, Callable[[Any], QuerySet[Any]]] = field(default_factory=dict)


REGISTRY: dict[str, Entry] = {}


def register(entry: Entry) -> Entry:
    REGISTRY[entry.slug] = entry
    return entry


def _entry(slug: str) -> Entry:
    try:
        return REGISTRY[slug]
    except KeyError:
        raise Http404("no such list") from None


def _may_write(request: HttpRequest, entry: Entry, obj: Model | None = None) -> bool:
    """Staff write shared catalogues; editors their projects' entries (``lims.access``)."""
    role = access.STAFF if entry.staff_only_writes else access.EDITOR
    if obj is not None and role != access.STAFF:
        return access.has_role(user=request.user, project_id=access.project_id_of(obj), role=role)
    return access.holds_anywhere(user=request.user, role=role)


@login_required
def entry_list(request: HttpRequest, slug: str) -> HttpResponse:
    entry = _entry(slug)
    qs = entry.queryset(request.user)
    query = request.GET.get("q", "").strip()
    if query and entry.search:
        condition = Q()
        for name in entry.search:
            condition |= Q(**{f"{name}__icontains": query})
        qs = qs.filter(condition)
    order = request.GET.get("o", "")
    if order.lstrip("-") in entry.sort:
        qs = qs.order_by(order, "pk")
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    rows = [(obj, [get(obj) for _, get in entry.columns]) for obj in page]
    context = {
        "entry": entry,
        "page": page,
        "rows": rows,
        "headers": [name for name, _ in entry.columns],
        "can_create": entry.create is not None and _may_write(request, entry),
    }
    return render(request, "catalogue/list.html", context)


def _object(request: HttpRequest, entry: Entry, pk: int) -> Model:
    obj = entry.queryset(request.user).filter(pk=pk).first()
    if obj is None:
        raise Http404("not found")
    return obj


@login_required
def entry_detail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    entry = _entry(slug)
    obj = _object(request, entry, pk)
    facts = [
        (
            f.verbose_name,
            getattr(obj, f"get_{f.name}_display")() if f.choices else getattr(obj, f.name),
        )
        for f in obj._meta.fields
    ]
    context = {
        "entry": entry,
        "obj": obj,
        "facts": facts,
        "can_edit": entry.update is not None and _may_write(request, entry, obj),
    }
    return render(request, "catalogue/detail.html", context)


def _form_view(request: HttpRequest, entry: Entry, obj: Model | None) -> HttpResponse:
    assert entry.form is not None
    form = entry.form(request.POST or None, instance=obj)
    for name, scoped in entry.choices.items():
        if name in form.fields:
            form.fields[name].queryset = scoped(request.user)  # type: ignore[attr-defined]
    if request.method == "POST" and form.is_valid():
        if isinstance(form, CorrectionReasonForm):
            form.note_reason(request)
        try:
            if obj is None:
                assert entry.create is not None
                saved = entry.create(user=request.user, **form.cleaned_data)
            else:
                assert entry.update is not None
                saved = entry.update(obj, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect(reverse("catalogue-detail", args=[entry.slug, saved.pk]))
    return render(request, "catalogue/form.html", {"entry": entry, "form": form, "obj": obj})


@login_required
def entry_create(request: HttpRequest, slug: str) -> HttpResponse:
    entry = _entry(slug)
    if entry.create is None:
        raise Http404("not editable here")
    if not _may_write(request, entry):
        raise PermissionDenied("you may not add to this list")
    return _form_view(request, entry, None)


@login_required
def entry_edit(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    entry = _entry(slug)
    if entry.update is None:
        raise Http404("not editable here")
    obj = _object(request, entry, pk)
    if not _may_write(request, entry, obj):
        raise PermissionDenied("you may not edit this entry")
    return _form_view(request, entry, obj)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    entries = sorted(REGISTRY.values(), key=lambda e: e.title)
    return render(request, "catalogue/index.html", {"entries": entries})


urlpatterns = [
    path("", index, name="catalogue-index"),
    path("<slug:slug>/", entry_list, name="catalogue-list"),
    path("<slug:slug>/new/", entry_create, name="catalogue-create"),
    path("<slug:slug>/<int:pk>/", entry_detail, name="catalogue-detail"),
    path("<slug:slug>/<int:pk>/edit/", entry_edit, name="catalogue-edit"),
]
