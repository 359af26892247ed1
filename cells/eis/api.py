"""REST endpoints for impedance spectra: a list, and a detail with the points."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, viewsets

from cells.eis import selectors
from cells.models import EisSpectrum

SPECTRUM_FIELDS = [
    "id",
    "url",
    "project",
    "cell",
    "sample",
    "raw_sha256",
    "raw_name",
    "job",
    "parser_name",
    "parser_version",
    "vendor",
    "technique",
    "temperature_c",
    "temperature_source",
    "started_at",
    "points",
    "sweeps",
    "f_min_hz",
    "f_max_hz",
    "hf_intercept_ohm",
    "hf_intercept",
    "conventions",
    "warnings",
    "created_at",
]


class EisSpectrumSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:eis-spectrum-detail")
    cell: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    sample: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True
    )
    raw_sha256 = serializers.CharField(source="raw_file.sha256", read_only=True)
    raw_name = serializers.CharField(source="raw_file.original_name", read_only=True)

    class Meta:
        model = EisSpectrum
        fields = SPECTRUM_FIELDS


class SpectrumPointsSerializer(serializers.Serializer):
    """Columns of equal length, in file order. Z'' negative for capacitive behaviour."""

    f_hz = serializers.ListField(child=serializers.FloatField())
    z_real_ohm = serializers.ListField(child=serializers.FloatField())
    z_imag_ohm = serializers.ListField(child=serializers.FloatField())
    z_mod_ohm = serializers.ListField(child=serializers.FloatField())
    phase_deg = serializers.ListField(child=serializers.FloatField())
    time_s = serializers.ListField(child=serializers.FloatField(allow_null=True))
    sweep = serializers.ListField(child=serializers.IntegerField())


class EisSpectrumDetailSerializer(EisSpectrumSerializer):
    series = serializers.SerializerMethodField()

    class Meta:
        model = EisSpectrum
        fields = [*SPECTRUM_FIELDS, "metadata", "series"]

    @extend_schema_field(SpectrumPointsSerializer)
    def get_series(self, spectrum: EisSpectrum) -> dict[str, Any]:
        return selectors.spectrum_series(spectrum)


@extend_schema(
    parameters=[
        OpenApiParameter("cell", str, description="Cell code"),
        OpenApiParameter("sample", str, description="Sample code"),
    ]
)
class EisSpectrumViewSet(viewsets.ReadOnlyModelViewSet):
    """Impedance spectra of the caller's projects; the detail carries the points."""

    def get_queryset(self) -> QuerySet[EisSpectrum]:
        params = self.request.query_params
        return selectors.eis_spectrum_list(
            user=self.request.user, filters={k: params.get(k) for k in ("cell", "sample")}
        )

    def get_serializer_class(self) -> type[serializers.BaseSerializer[EisSpectrum]]:
        if self.action == "retrieve":
            return EisSpectrumDetailSerializer
        return EisSpectrumSerializer
