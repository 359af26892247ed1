"""One FilterSet per model, shared by the API and the selectors (NetBox habit)."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from depositions.choices import (
    QC_VERDICTS,
    AnnealAtmosphere,
    CompositionMethod,
    Delivery,
    LoadRole,
    LotStatus,
    ReactorType,
    RecipeMode,
    RunStatus,
    ThicknessMethod,
    TreatmentStatus,
)
from depositions.models import (
    Chemical,
    CompositionMeasurement,
    DepositionRun,
    FilmProperty,
    FurnaceLog,
    PostTreatment,
    PrecursorLot,
    ProcessReference,
    Recipe,
    RunLoad,
    RunLogFile,
    SourceInstallation,
    ThicknessMeasurement,
    Tool,
    ToolSource,
)
from lims.filters import IsoDateTimeFilter


def chemical_q(value: str, prefix: str = "") -> Q:
    """Match a chemical by name, formula, CAS or any synonym ('TMA' -> trimethylaluminum)."""
    return (
        Q(**{f"{prefix}name__icontains": value})
        | Q(**{f"{prefix}formula__icontains": value})
        | Q(**{f"{prefix}cas_number": value})
        | Q(**{f"{prefix}synonyms__icontains": value})
    )


class ToolFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    reactor_type = django_filters.MultipleChoiceFilter(choices=ReactorType.choices)
    project = django_filters.CharFilter(field_name="instrument__project__slug")

    class Meta:
        model = Tool
        fields = ["q", "reactor_type", "project"]

    def search(self, qs: QuerySet[Tool], name: str, value: str) -> QuerySet[Tool]:
        return qs.filter(Q(instrument__name__icontains=value) | Q(notes__icontains=value))


class ToolSourceFilterSet(django_filters.FilterSet):
    tool = django_filters.NumberFilter(field_name="tool_id")
    delivery = django_filters.MultipleChoiceFilter(choices=Delivery.choices)
    reactant = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = ToolSource
        fields = ["tool", "delivery", "reactant", "label"]


class SourceInstallationFilterSet(django_filters.FilterSet):
    tool = django_filters.NumberFilter(field_name="tool_source__tool_id")
    tool_source = django_filters.NumberFilter(field_name="tool_source_id")
    precursor_lot = django_filters.NumberFilter(field_name="precursor_lot_id")
    open = django_filters.BooleanFilter(field_name="removed_at", lookup_expr="isnull")

    class Meta:
        model = SourceInstallation
        fields = ["tool", "tool_source", "precursor_lot", "open"]


class ChemicalFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Name, formula, CAS or synonym")

    class Meta:
        model = Chemical
        fields = ["q", "state"]

    def search(self, qs: QuerySet[Chemical], name: str, value: str) -> QuerySet[Chemical]:
        return qs.filter(chemical_q(value))


class PrecursorLotFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    chemical = django_filters.CharFilter(method="filter_chemical", label="Chemical (any name)")
    status = django_filters.MultipleChoiceFilter(choices=LotStatus.choices)
    project = django_filters.CharFilter(field_name="material_lot__project__slug")

    class Meta:
        model = PrecursorLot
        fields = ["q", "chemical", "status", "project"]

    def search(self, qs: QuerySet[PrecursorLot], name: str, value: str) -> QuerySet[PrecursorLot]:
        return qs.filter(
            Q(bottle_label__icontains=value)
            | Q(material_lot__lot_number__icontains=value)
            | chemical_q(value, "chemical__")
        )

    def filter_chemical(
        self, qs: QuerySet[PrecursorLot], name: str, value: str
    ) -> QuerySet[PrecursorLot]:
        return qs.filter(chemical_q(value, "chemical__"))


class RecipeFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    mode = django_filters.MultipleChoiceFilter(choices=RecipeMode.choices)
    project = django_filters.CharFilter(field_name="project__slug")
    name = django_filters.CharFilter(lookup_expr="iexact")
    source = django_filters.CharFilter(method="filter_source", label="Uses source label")

    class Meta:
        model = Recipe
        fields = ["q", "mode", "project", "name", "version", "frozen", "source"]

    def search(self, qs: QuerySet[Recipe], name: str, value: str) -> QuerySet[Recipe]:
        return qs.filter(
            Q(name__icontains=value)
            | Q(target_material__icontains=value)
            | Q(notes__icontains=value)
        )

    def filter_source(self, qs: QuerySet[Recipe], name: str, value: str) -> QuerySet[Recipe]:
        return qs.filter(
            Q(subcycles__steps__source_label__iexact=value)
            | Q(extra_steps__source_label__iexact=value)
        ).distinct()


class ProcessReferenceFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    material = django_filters.CharFilter(lookup_expr="iexact")

    class Meta:
        model = ProcessReference
        fields = ["q", "material", "key"]

    def search(
        self, qs: QuerySet[ProcessReference], name: str, value: str
    ) -> QuerySet[ProcessReference]:
        return qs.filter(
            Q(material__icontains=value)
            | Q(precursors__icontains=value)
            | Q(co_reactant__icontains=value)
            | Q(application__icontains=value)
        )


class DepositionRunFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    project = django_filters.CharFilter(field_name="project__slug")
    tool = django_filters.NumberFilter(field_name="tool_id")
    recipe = django_filters.CharFilter(field_name="recipe__name", lookup_expr="iexact")
    sample = django_filters.CharFilter(method="filter_sample", label="Loaded or produced sample")
    precursor_lot = django_filters.NumberFilter(
        field_name="precursors__precursor_lot_id", distinct=True
    )
    started_after = IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")
    qc = django_filters.ChoiceFilter(
        field_name="qc_verdict",  # annotated by selectors.with_qc
        choices=[(v, v) for v in QC_VERDICTS],
        label="Tool-log QC verdict",
    )

    class Meta:
        model = DepositionRun
        fields = ["q", "status", "project", "tool", "recipe", "sample", "precursor_lot"]

    def search(self, qs: QuerySet[DepositionRun], name: str, value: str) -> QuerySet[DepositionRun]:
        return qs.filter(
            Q(code__icontains=value) | Q(recipe__name__icontains=value) | Q(notes__icontains=value)
        )

    def filter_sample(
        self, qs: QuerySet[DepositionRun], name: str, value: str
    ) -> QuerySet[DepositionRun]:
        return qs.filter(
            Q(loads__sample__code=value) | Q(loads__output_sample__code=value)
        ).distinct()


class RunLoadFilterSet(django_filters.FilterSet):
    role = django_filters.MultipleChoiceFilter(choices=LoadRole.choices)

    class Meta:
        model = RunLoad
        fields = ["run", "role"]


class ThicknessMeasurementFilterSet(django_filters.FilterSet):
    sample = django_filters.CharFilter(field_name="sample__code")
    run = django_filters.CharFilter(field_name="run__code")
    method = django_filters.MultipleChoiceFilter(choices=ThicknessMethod.choices)

    class Meta:
        model = ThicknessMeasurement
        fields = ["sample", "run", "method"]


class CompositionMeasurementFilterSet(django_filters.FilterSet):
    sample = django_filters.CharFilter(field_name="sample__code")
    run = django_filters.CharFilter(field_name="run__code")
    method = django_filters.MultipleChoiceFilter(choices=CompositionMethod.choices)

    class Meta:
        model = CompositionMeasurement
        fields = ["sample", "run", "method"]


class FilmPropertyFilterSet(django_filters.FilterSet):
    sample = django_filters.CharFilter(field_name="sample__code")
    run = django_filters.CharFilter(field_name="run__code")

    class Meta:
        model = FilmProperty
        fields = ["sample", "run"]


class PostTreatmentFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.MultipleChoiceFilter(choices=TreatmentStatus.choices)
    atmosphere = django_filters.MultipleChoiceFilter(choices=AnnealAtmosphere.choices)
    project = django_filters.CharFilter(field_name="project__slug")
    furnace = django_filters.NumberFilter(field_name="furnace_id")

    class Meta:
        model = PostTreatment
        fields = ["q", "status", "atmosphere", "project", "furnace"]

    def search(self, qs: QuerySet[PostTreatment], name: str, value: str) -> QuerySet[PostTreatment]:
        return qs.filter(Q(code__icontains=value) | Q(notes__icontains=value))


class FurnaceLogFilterSet(django_filters.FilterSet):
    treatment = django_filters.CharFilter(field_name="treatment__code")

    class Meta:
        model = FurnaceLog
        fields = ["treatment", "overall"]


class RunLogFileFilterSet(django_filters.FilterSet):
    run = django_filters.CharFilter(method="filter_run")
    project = django_filters.CharFilter(field_name="project__slug")
    unlinked = django_filters.BooleanFilter(method="filter_unlinked")
    parser = django_filters.CharFilter(field_name="parser_name")

    class Meta:
        model = RunLogFile
        fields = ["run", "project", "unlinked", "parser"]

    def filter_run(self, qs: QuerySet[RunLogFile], name: str, value: str) -> QuerySet[RunLogFile]:
        """Logs of a run: linked as a whole, or holding one of its sessions."""
        return qs.filter(Q(run__code=value) | Q(segments__run__code=value)).distinct()

    def filter_unlinked(
        self, qs: QuerySet[RunLogFile], name: str, value: bool | None
    ) -> QuerySet[RunLogFile]:
        """Logs no run has: neither linked as a whole nor through one of their sessions."""
        if value is None:
            return qs
        linked = Q(run__isnull=False) | Q(segments__run__isnull=False)
        return (qs.exclude(linked) if value else qs.filter(linked)).distinct()
