from __future__ import annotations

from django.contrib import admin

from cells.models import Cell, CycleRecord, CyclerSidecar, CyclingTest, PerformanceRecord


@admin.register(Cell)
class CellAdmin(admin.ModelAdmin):
    list_display = [
        "code",
        "project",
        "format",
        "cell_type",
        "cathode_active_material",
        "assembled_at",
    ]
    list_filter = ["project", "format", "cell_type", "anode_kind"]
    search_fields = ["code", "cathode_active_material", "se_material", "notes"]


class PerformanceInline(admin.StackedInline):
    model = PerformanceRecord
    extra = 0
    can_delete = False
    readonly_fields = [f.name for f in PerformanceRecord._meta.fields]


@admin.register(CyclingTest)
class CyclingTestAdmin(admin.ModelAdmin):
    list_display = ["id", "cell", "vendor", "parser_name", "row_count", "created_at"]
    list_filter = ["vendor", "parser_name", "project"]
    search_fields = ["cell__code", "raw_file__original_name", "raw_file__sha256"]
    readonly_fields = [f.name for f in CyclingTest._meta.fields if f.name != "cell"]
    inlines = [PerformanceInline]


@admin.register(CycleRecord)
class CycleRecordAdmin(admin.ModelAdmin):
    list_display = ["test", "cycle_index", "charge_mah", "discharge_mah", "coulombic_efficiency"]
    list_filter = ["test__vendor"]
    search_fields = ["test__cell__code"]
    readonly_fields = [f.name for f in CycleRecord._meta.fields]


@admin.register(PerformanceRecord)
class PerformanceRecordAdmin(admin.ModelAdmin):
    list_display = ["test", "first_discharge_mah", "initial_ce", "retention_pct", "computed_at"]
    search_fields = ["test__cell__code", "raw_sha256"]
    readonly_fields = [f.name for f in PerformanceRecord._meta.fields]


@admin.register(CyclerSidecar)
class CyclerSidecarAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "raw_file", "key", "project", "created_at"]
    list_filter = ["kind", "project"]
    search_fields = ["key", "alt_key", "raw_file__original_name", "raw_file__sha256"]
    readonly_fields = [f.name for f in CyclerSidecar._meta.fields]
    filter_horizontal = ["tests"]
