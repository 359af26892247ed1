from __future__ import annotations

from decimal import Decimal

from rest_framework import serializers

from lims.api.fields import ModelSerializer as ScopedModelSerializer
from lims.models import Project
from samples.choices import SampleKind, SampleState
from samples.models import ExposureEvent, Material, MaterialLot, Sample


def _quantity(required: bool = True) -> serializers.DecimalField:
    """A non-negative quantity in the sample's unit."""
    return serializers.DecimalField(
        max_digits=14, decimal_places=6, min_value=Decimal("0"), required=required
    )


class MaterialSerializer(ScopedModelSerializer):
    class Meta:
        model = Material
        fields = ["id", "name", "formula", "material_class", "default_supplier", "notes"]


class MaterialLotSerializer(ScopedModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", queryset=Project.objects.all())
    sample_code = serializers.CharField(
        write_only=True, required=False, help_text="Also create the as-received sample"
    )

    class Meta:
        model = MaterialLot
        fields = [
            "id",
            "material",
            "project",
            "supplier",
            "catalog_number",
            "lot_number",
            "received_on",
            "quantity_received",
            "unit",
            "storage_location",
            "notes",
            "sample_code",
        ]


class SampleSerializer(ScopedModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", queryset=Project.objects.all())
    material_name = serializers.CharField(
        source="material.name", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = Sample
        fields = [
            "id",
            "code",
            "project",
            "kind",
            "material",
            "material_name",
            "lot",
            "unit",
            "quantity",
            "remaining",
            "state",
            "form_factor",
            "diameter_mm",
            "thickness_um",
            "area_cm2",
            "bet_m2_g",
            "location",
            "notes",
            "created_at",
        ]
        read_only_fields = ["remaining"]


class OutputSpecSerializer(serializers.Serializer):
    code = serializers.CharField(max_length=64)
    kind = serializers.ChoiceField(choices=SampleKind.choices)
    quantity = _quantity()
    state = serializers.ChoiceField(choices=SampleState.choices, required=False)


class SplitSerializer(serializers.Serializer):
    aliquots = OutputSpecSerializer(many=True)
    taken = _quantity(required=False)
    tolerance = _quantity(required=False)


class MixInputSerializer(serializers.Serializer):
    sample = serializers.CharField(help_text="Sample code")
    quantity = _quantity()


class MixSerializer(serializers.Serializer):
    project = serializers.SlugField()
    inputs = MixInputSerializer(many=True)
    output = OutputSpecSerializer()


class ExposureSerializer(ScopedModelSerializer):
    class Meta:
        model = ExposureEvent
        fields = ["id", "atmosphere", "started_at", "ended_at", "h2o_ppm", "o2_ppm", "notes"]


class LineageSerializer(serializers.Serializer):
    """Shape of the lineage graph (see samples.selectors.Lineage.as_dict)."""

    sample = serializers.CharField(help_text="The sample the graph was drawn around")
    samples = serializers.ListField(child=serializers.DictField())
    operations = serializers.ListField(child=serializers.DictField())


class HistorySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    what = serializers.CharField()
    detail = serializers.CharField()
    who = serializers.CharField()
