from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from cells.models import Cell, CycleRecord, CyclingTest, PerformanceRecord, StitchedRecord
from lims.api.fields import ModelSerializer as ScopedModelSerializer
from lims.models import Project
from samples.models import Sample

CELL_FIELDS = [
    "format",
    "cathode_sample",
    "se_sample",
    "anode_sample",
    "cell_type",
    "cathode_active_material",
    "ratio_active",
    "ratio_se",
    "ratio_carbon",
    "cathode_mass_mg",
    "active_mass_override_mg",
    "se_material",
    "se_mass_mg",
    "se_thickness_um",
    "anode_kind",
    "anode_description",
    "li_foil_thickness_um",
    "pellet_diameter_mm",
    "area_override_cm2",
    "fabrication_pressure_mpa",
    "stack_pressure_mpa",
    "temperature_c",
    "nominal_capacity_mah",
    "assembled_at",
    "notes",
]


class CellSerializer(ScopedModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", queryset=Project.objects.all())
    cathode_sample = serializers.SlugRelatedField(
        slug_field="code", queryset=Sample.objects.all(), required=False, allow_null=True
    )
    se_sample = serializers.SlugRelatedField(
        slug_field="code", queryset=Sample.objects.all(), required=False, allow_null=True
    )
    anode_sample = serializers.SlugRelatedField(
        slug_field="code", queryset=Sample.objects.all(), required=False, allow_null=True
    )
    # null when neither an override nor the composite mass and active fraction are known
    active_mass_mg = serializers.DecimalField(
        max_digits=12, decimal_places=4, read_only=True, allow_null=True
    )
    active_mass_source = serializers.CharField(read_only=True)
    area_cm2 = serializers.DecimalField(
        max_digits=10, decimal_places=4, read_only=True, allow_null=True
    )

    class Meta:
        model = Cell
        fields = [
            "id",
            "code",
            "project",
            *CELL_FIELDS,
            "active_mass_mg",
            "active_mass_source",
            "area_cm2",
            "created_at",
            "updated_at",
        ]


class CycleRecordSerializer(ScopedModelSerializer):
    class Meta:
        model = CycleRecord
        exclude = ["id", "test"]


class PerformanceRecordSerializer(ScopedModelSerializer):
    class Meta:
        model = PerformanceRecord
        exclude = ["id"]


class CyclingTestSerializer(ScopedModelSerializer):
    cell: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    raw_sha256 = serializers.CharField(source="raw_file.sha256", read_only=True)
    raw_name = serializers.CharField(source="raw_file.original_name", read_only=True)
    raw_download = serializers.SerializerMethodField()
    performance = PerformanceRecordSerializer(read_only=True)

    def get_raw_download(self, obj: CyclingTest) -> str:
        return reverse("api:raw-file-download", args=[obj.raw_file_id])

    class Meta:
        model = CyclingTest
        fields = [
            "id",
            "cell",
            "project",
            "instrument",
            "channel",
            "raw_file",
            "raw_sha256",
            "raw_name",
            "raw_download",
            "job",
            "parser_name",
            "parser_version",
            "vendor",
            "protocol",
            "started_at",
            "row_count",
            "conventions",
            "metadata",
            "warnings",
            "performance",
            "created_at",
            "chain_role",
            "chain_detached",
            "chain_position",
            "chain_cycle_offset",
            "chain_time_offset_s",
            "chain_notes",
            "duplicate_of",
            "series_first_s",
            "series_last_s",
        ]


class DetachSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300)


class StitchedCycleSerializer(ScopedModelSerializer):
    test = serializers.IntegerField(source="test_id", read_only=True)
    stitched_start_s = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = CycleRecord
        exclude = ["id"]


class StitchedRecordSerializer(ScopedModelSerializer):
    class Meta:
        model = StitchedRecord
        exclude = ["id", "cell"]


class ChainMemberSerializer(ScopedModelSerializer):
    raw_sha256 = serializers.CharField(source="raw_file.sha256", read_only=True)
    raw_name = serializers.CharField(source="raw_file.original_name", read_only=True)

    class Meta:
        model = CyclingTest
        fields = [
            "id",
            "raw_name",
            "raw_sha256",
            "parser_name",
            "parser_version",
            "started_at",
            "series_first_s",
            "series_last_s",
            "chain_role",
            "chain_detached",
            "chain_position",
            "chain_cycle_offset",
            "chain_time_offset_s",
            "chain_notes",
            "duplicate_of",
        ]


class ChainSerializer(serializers.Serializer):
    """The cell's stitched test: its tests in chain order, the record and the cycle table."""

    tests = ChainMemberSerializer(many=True)
    record = StitchedRecordSerializer(allow_null=True)
    cycles = StitchedCycleSerializer(many=True)


class LinkSerializer(serializers.Serializer):
    cell = serializers.CharField(help_text="Cell code")


class LotCellSerializer(ScopedModelSerializer):
    cathode_sample: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    performance = serializers.SerializerMethodField()

    class Meta:
        model = Cell
        fields = ["code", "cathode_sample", "performance"]

    @extend_schema_field(PerformanceRecordSerializer(many=True))
    def get_performance(self, cell: Cell) -> list[dict[str, object]]:
        return [
            PerformanceRecordSerializer(t.performance).data
            for t in cell.tests.all()
            if hasattr(t, "performance")
        ]


class LotCellGroupSerializer(serializers.Serializer):
    recipe = serializers.CharField()
    anneal = serializers.CharField()
    cells = LotCellSerializer(many=True)
