"""FilterSets shared by sample list pages, the API and selectors."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from samples.choices import SampleKind, SampleState
from samples.models import MaterialLot, Sample


class SampleFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    kind = django_filters.MultipleChoiceFilter(choices=SampleKind.choices)
    state = django_filters.MultipleChoiceFilter(choices=SampleState.choices)
    project = django_filters.CharFilter(field_name="project__slug")
    material = django_filters.CharFilter(field_name="material__name", lookup_expr="iexact")
    lot = django_filters.CharFilter(field_name="lot__lot_number")

    class Meta:
        model = Sample
        fields = ["q", "kind", "state", "project", "material", "lot"]

    def search(self, qs: QuerySet[Sample], name: str, value: str) -> QuerySet[Sample]:
        return qs.filter(
            Q(code__icontains=value) | Q(notes__icontains=value) | Q(location__icontains=value)
        )


class MaterialLotFilterSet(django_filters.FilterSet):
    material = django_filters.CharFilter(field_name="material__name", lookup_expr="iexact")
    project = django_filters.CharFilter(field_name="project__slug")

    class Meta:
        model = MaterialLot
        fields = ["material", "project", "supplier", "lot_number"]
