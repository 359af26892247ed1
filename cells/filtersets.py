"""One FilterSet per model, shared by list pages, the API and selectors (NetBox habit)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from cells.choices import CellFormat, CellType
from cells.models import Cell, CyclingTest


class CellFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    format = django_filters.MultipleChoiceFilter(choices=CellFormat.choices)
    cell_type = django_filters.MultipleChoiceFilter(choices=CellType.choices)
    project = django_filters.CharFilter(field_name="project__slug", label="Project (slug)")
    has_tests = django_filters.BooleanFilter(method="filter_has_tests", label="Has tests")

    class Meta:
        model = Cell
        fields = ["q", "project", "format", "cell_type", "cathode_active_material", "se_material"]

    def search(self, qs: QuerySet[Cell], name: str, value: str) -> QuerySet[Cell]:
        return qs.filter(
            Q(code__icontains=value)
            | Q(cathode_active_material__icontains=value)
            | Q(se_material__icontains=value)
            | Q(notes__icontains=value)
        )

    def filter_has_tests(self, qs: QuerySet[Cell], name: str, value: bool | None) -> QuerySet[Cell]:
        if value is None:
            return qs
        return qs.filter(tests__isnull=not value).distinct()


class CyclingTestFilterSet(django_filters.FilterSet):
    cell = django_filters.CharFilter(field_name="cell__code")
    project = django_filters.CharFilter(field_name="project__slug")
    unlinked = django_filters.BooleanFilter(field_name="cell", lookup_expr="isnull")

    class Meta:
        model = CyclingTest
        fields = ["cell", "project", "vendor", "parser_name", "unlinked"]
