from __future__ import annotations

from django.contrib import admin

from samples.models import (
    ExposureEvent,
    Material,
    MaterialLot,
    Operation,
    OperationInput,
    OperationOutput,
    Sample,
)


@admin.register(Material)
class MaterialAdmin(admin.ModelAdmin):
    list_display = ["name", "formula", "material_class", "default_supplier"]
    list_filter = ["material_class"]
    search_fields = ["name", "formula"]


@admin.register(MaterialLot)
class MaterialLotAdmin(admin.ModelAdmin):
    list_display = [
        "material",
        "lot_number",
        "supplier",
        "quantity_received",
        "unit",
        "received_on",
    ]
    list_filter = ["material__material_class", "project"]
    search_fields = ["lot_number", "catalog_number", "material__name", "supplier"]


class ExposureInline(admin.TabularInline):
    model = ExposureEvent
    extra = 0


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ["code", "kind", "material", "quantity", "remaining", "unit", "state", "project"]
    list_filter = ["kind", "state", "project"]
    search_fields = ["code", "notes", "location"]
    readonly_fields = ["remaining"]
    inlines = [ExposureInline]


class InputInline(admin.TabularInline):
    model = OperationInput
    extra = 0
    readonly_fields = ["sample", "quantity", "mass_fraction"]
    can_delete = False


class OutputInline(admin.TabularInline):
    model = OperationOutput
    extra = 0
    readonly_fields = ["sample", "quantity"]
    can_delete = False


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    """Read-only: lineage is written by services that also debit the inputs."""

    list_display = ["id", "kind", "label", "performed_at", "project"]
    list_filter = ["kind", "project"]
    search_fields = ["label", "notes", "inputs__sample__code", "outputs__sample__code"]
    readonly_fields = [f.name for f in Operation._meta.fields]
    inlines = [InputInline, OutputInline]

    def has_add_permission(self, request: object) -> bool:
        return False
