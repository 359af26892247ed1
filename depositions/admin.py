"""Admin for every deposition model: searchable, filterable; snapshots and lineage read-only.

Frozen recipes (and their structure) cannot be changed here either: a run used them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from depositions.models import (
    AnnealSegment,
    Chemical,
    CompositionMeasurement,
    DepositionRun,
    FilmProperty,
    FurnaceLog,
    PostTreatment,
    PrecursorLot,
    ProcessReference,
    PulseEvent,
    Recipe,
    RunCheck,
    RunLoad,
    RunLogFile,
    RunLogSegment,
    RunPrecursor,
    SourceInstallation,
    Step,
    SubCycle,
    SupercycleBlock,
    ThicknessMeasurement,
    Tool,
    ToolSource,
)


def _recipe_of(obj: Any) -> Recipe | None:
    if isinstance(obj, Recipe):
        return obj
    if isinstance(obj, SubCycle | SupercycleBlock):
        return obj.recipe
    if isinstance(obj, Step):
        if obj.recipe is not None:
            return obj.recipe
        return obj.subcycle.recipe if obj.subcycle is not None else None
    return None


class FrozenRecipeGuard:
    """No change or delete once the recipe is frozen."""

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        recipe = _recipe_of(obj)
        if recipe is not None and recipe.frozen:
            return False
        return super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        recipe = _recipe_of(obj)
        if recipe is not None and recipe.frozen:
            return False
        return super().has_delete_permission(request, obj)  # type: ignore[misc]


class ToolSourceInline(admin.TabularInline):
    model = ToolSource
    extra = 0


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    list_display = ["instrument", "reactor_type", "chambers"]
    list_filter = ["reactor_type", "instrument__project"]
    search_fields = ["instrument__name", "notes"]
    inlines = [ToolSourceInline]


@admin.register(ToolSource)
class ToolSourceAdmin(admin.ModelAdmin):
    list_display = ["tool", "label", "reactant", "delivery", "log_channel", "dose_umol_per_pulse"]
    list_filter = ["delivery", "tool"]
    search_fields = ["label", "reactant", "log_channel", "tool__instrument__name"]


@admin.register(SourceInstallation)
class SourceInstallationAdmin(admin.ModelAdmin):
    list_display = ["tool_source", "precursor_lot", "installed_at", "removed_at", "installed_by"]
    list_filter = ["tool_source__tool", "removed_at"]
    search_fields = [
        "precursor_lot__bottle_label",
        "tool_source__label",
        "precursor_lot__chemical__name",
    ]
    date_hierarchy = "installed_at"


@admin.register(Chemical)
class ChemicalAdmin(admin.ModelAdmin):
    list_display = ["name", "formula", "cas_number", "state", "molar_mass_g_mol"]
    list_filter = ["state"]
    search_fields = ["name", "formula", "cas_number", "synonyms"]


@admin.register(PrecursorLot)
class PrecursorLotAdmin(admin.ModelAdmin):
    list_display = ["bottle_label", "chemical", "material_lot", "status", "fill_date", "opened_on"]
    list_filter = ["status", "chemical"]
    search_fields = [
        "bottle_label",
        "chemical__name",
        "chemical__synonyms",
        "material_lot__lot_number",
    ]


class SubCycleInline(FrozenRecipeGuard, admin.TabularInline):
    model = SubCycle
    extra = 0


class BlockInline(FrozenRecipeGuard, admin.TabularInline):
    model = SupercycleBlock
    extra = 0


class ExtraStepInline(FrozenRecipeGuard, admin.TabularInline):
    model = Step
    fk_name = "recipe"
    extra = 0
    verbose_name = "pre/post step"


@admin.register(Recipe)
class RecipeAdmin(FrozenRecipeGuard, admin.ModelAdmin):
    list_display = ["name", "version", "project", "mode", "supercycle_repeats", "frozen"]
    list_filter = ["mode", "frozen", "project"]
    search_fields = ["name", "target_material", "notes"]
    readonly_fields = ["frozen", "frozen_at", "created_at", "updated_at"]
    inlines = [SubCycleInline, BlockInline, ExtraStepInline]


@admin.register(SubCycle)
class SubCycleAdmin(FrozenRecipeGuard, admin.ModelAdmin):
    list_display = ["recipe", "name", "order", "gpc_angstrom", "target_material"]
    list_filter = ["recipe__project"]
    search_fields = ["name", "recipe__name", "target_material"]


@admin.register(Step)
class StepAdmin(FrozenRecipeGuard, admin.ModelAdmin):
    list_display = ["__str__", "subcycle", "recipe", "phase", "order", "kind", "source_label"]
    list_filter = ["kind", "phase"]
    search_fields = ["source_label", "subcycle__name", "subcycle__recipe__name", "recipe__name"]


@admin.register(SupercycleBlock)
class SupercycleBlockAdmin(FrozenRecipeGuard, admin.ModelAdmin):
    list_display = ["recipe", "order", "subcycle", "repeat"]
    list_filter = ["recipe__project"]
    search_fields = ["recipe__name", "subcycle__name"]


@admin.register(ProcessReference)
class ProcessReferenceAdmin(admin.ModelAdmin):
    """Staff keep the reference table current; every row must say its source."""

    list_display = [
        "material",
        "precursors",
        "co_reactant",
        "temperature_range",
        "gpc_min_angstrom",
        "gpc_max_angstrom",
        "ionic_conductivity_s_cm",
    ]
    list_filter = ["material"]
    search_fields = ["material", "precursors", "co_reactant", "application", "source", "key"]


class RunLoadInline(admin.TabularInline):
    model = RunLoad
    fk_name = "run"
    extra = 0
    readonly_fields = ["output_sample"]


class RunPrecursorInline(admin.TabularInline):
    model = RunPrecursor
    extra = 0


@admin.register(DepositionRun)
class DepositionRunAdmin(admin.ModelAdmin):
    list_display = ["code", "project", "tool", "recipe", "status", "started_at", "planned_cycles"]
    list_filter = ["status", "project", "tool"]
    search_fields = ["code", "recipe__name", "notes"]
    readonly_fields = ["recipe_snapshot", "operation", "planned_cycles", "created_at", "updated_at"]
    date_hierarchy = "created_at"
    inlines = [RunLoadInline, RunPrecursorInline]


@admin.register(RunLoad)
class RunLoadAdmin(admin.ModelAdmin):
    list_display = ["run", "sample", "role", "mass_g", "bet_m2_g", "quantity", "output_sample"]
    list_filter = ["role"]
    search_fields = ["run__code", "sample__code", "output_sample__code"]
    readonly_fields = ["output_sample"]


@admin.register(RunPrecursor)
class RunPrecursorAdmin(admin.ModelAdmin):
    list_display = ["run", "tool_source", "precursor_lot", "from_installation"]
    list_filter = ["from_installation"]
    search_fields = ["run__code", "precursor_lot__bottle_label", "precursor_lot__chemical__name"]


@admin.register(ThicknessMeasurement)
class ThicknessMeasurementAdmin(admin.ModelAdmin):
    list_display = ["sample", "method", "value_nm", "uncertainty_nm", "run", "measured_at"]
    list_filter = ["method"]
    search_fields = ["sample__code", "run__code", "location", "optical_model"]


@admin.register(CompositionMeasurement)
class CompositionMeasurementAdmin(admin.ModelAdmin):
    list_display = ["sample", "method", "li_to_metal_ratio", "run", "measured_at"]
    list_filter = ["method"]
    search_fields = ["sample__code", "run__code"]


@admin.register(FilmProperty)
class FilmPropertyAdmin(admin.ModelAdmin):
    list_display = [
        "sample",
        "density_g_cm3",
        "refractive_index",
        "roughness_nm",
        "ionic_conductivity_s_cm",
        "temperature_c",
    ]
    list_filter = ["method"]
    search_fields = ["sample__code", "run__code", "method"]


class SegmentInline(admin.TabularInline):
    model = AnnealSegment
    extra = 0


class FurnaceLogInline(admin.TabularInline):
    model = FurnaceLog
    extra = 0
    can_delete = False
    readonly_fields = ["raw_file", "overall", "tolerance_k", "points", "created_at"]
    fields = ["raw_file", "overall", "tolerance_k", "points", "created_at"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PostTreatment)
class PostTreatmentAdmin(admin.ModelAdmin):
    list_display = ["code", "project", "furnace", "atmosphere", "status", "started_at"]
    list_filter = ["status", "atmosphere", "project"]
    search_fields = ["code", "notes"]
    readonly_fields = ["operation", "created_at", "updated_at"]
    inlines = [SegmentInline, FurnaceLogInline]


@admin.register(FurnaceLog)
class FurnaceLogAdmin(admin.ModelAdmin):
    list_display = ["treatment", "overall", "points", "tolerance_k", "created_at"]
    list_filter = ["overall"]
    search_fields = ["treatment__code", "raw_file__sha256", "raw_file__original_name"]
    readonly_fields = [f.name for f in FurnaceLog._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(AnnealSegment)
class AnnealSegmentAdmin(admin.ModelAdmin):
    list_display = ["treatment", "order", "kind", "target_c", "rate_k_per_min", "duration_min"]
    list_filter = ["kind"]
    search_fields = ["treatment__code"]


@admin.register(RunLogFile)
class RunLogFileAdmin(admin.ModelAdmin):
    list_display = ["run", "parser_name", "row_count", "sample_period_s", "created_at"]
    list_filter = ["parser_name"]
    search_fields = ["run__code", "raw_file__original_name", "raw_file__sha256"]
    readonly_fields = [f.name for f in RunLogFile._meta.fields if f.name != "run"]


@admin.register(RunLogSegment)
class RunLogSegmentAdmin(admin.ModelAdmin):
    """Derived by the ingest handler: read-only (link a session on the run page or the API)."""

    list_display = ["log", "index", "run", "link", "started_at", "ended_at", "verdict"]
    list_filter = ["link", "verdict"]
    search_fields = ["run__code", "log__raw_file__original_name"]
    readonly_fields = [f.name for f in RunLogSegment._meta.fields]


@admin.register(PulseEvent)
class PulseEventAdmin(admin.ModelAdmin):
    list_display = ["run", "source", "index", "start_s", "width_s", "peak", "dead"]
    list_filter = ["dead", "source"]
    search_fields = ["run__code", "source"]
    readonly_fields = [f.name for f in PulseEvent._meta.fields]


@admin.register(RunCheck)
class RunCheckAdmin(admin.ModelAdmin):
    list_display = ["run", "name", "status", "value", "threshold", "checker_version"]
    list_filter = ["status", "name"]
    search_fields = ["run__code", "name", "details"]
    readonly_fields = [f.name for f in RunCheck._meta.fields]
