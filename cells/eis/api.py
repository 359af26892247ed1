"""REST endpoints for impedance spectra: a list, and a detail with the points."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from cells.eis import selectors, services
from cells.models import Cell, EisFit, EisSpectrum
from lims.api.fields import ModelSerializer as ScopedModelSerializer
from lims.api.schema import error_answer

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
    "kk_passed",
    "created_at",
]

FIT_FIELDS = [
    "id",
    "spectrum",
    "circuit_name",
    "circuit",
    "status",
    "error",
    "parameters",
    "chi_square",
    "rms_relative",
    "f_min_hz",
    "f_max_hz",
    "f_range_requested",
    "n_points",
    "weighting",
    "initial_guess",
    "guess_source",
    "warnings",
    "versions",
    "raw_sha256",
    "parser_name",
    "parser_version",
    "sweep",
    "fit_seconds",
    "sigma_s_cm",
    "sigma_stderr_s_cm",
    "conductivity",
    "reason",
    "created_by",
    "created_at",
]


class EisFitSerializer(ScopedModelSerializer):
    """A fit with its provenance; parameters are [{name, value, stderr, unit}]."""

    created_by: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="null: fitted on ingest"
    )

    class Meta:
        model = EisFit
        fields = FIT_FIELDS
        read_only_fields = FIT_FIELDS


class RefitSerializer(serializers.Serializer):
    circuit = serializers.ChoiceField(choices=services.FIT_CIRCUITS)
    f_min = serializers.FloatField(required=False, allow_null=True, min_value=0)
    f_max = serializers.FloatField(required=False, allow_null=True, min_value=0)


class SpectrumLinkSerializer(serializers.Serializer):
    """A cell or a sample (exactly one) of the spectrum's project, by code."""

    cell = serializers.CharField(required=False, allow_blank=True, max_length=64)
    sample = serializers.CharField(required=False, allow_blank=True, max_length=64)


class ArrheniusPointSerializer(serializers.Serializer):
    spectrum = serializers.IntegerField()
    fit = serializers.IntegerField()
    name = serializers.CharField()
    circuit = serializers.CharField()
    temperature_c = serializers.FloatField()
    temperature_k = serializers.FloatField()
    inverse_t_1000_k = serializers.FloatField()
    sigma_s_cm = serializers.FloatField()
    sigma_stderr_s_cm = serializers.FloatField(allow_null=True)
    ln_sigma_t = serializers.FloatField()


class ArrheniusSerializer(serializers.Serializer):
    """ln(sigma T) vs 1/T of one specimen; ``fit`` is null with ``none_reason`` below 2 points."""

    cell = serializers.CharField(allow_null=True)
    sample = serializers.CharField(allow_null=True)
    points = ArrheniusPointSerializer(many=True)
    skipped = serializers.ListField(child=serializers.DictField())
    fit = serializers.DictField(allow_null=True)
    none_reason = serializers.CharField(allow_blank=True)


class EisSpectrumSerializer(ScopedModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="api:eis-spectrum-detail")
    # a spectrum belongs to a cell or a sample (or to neither until it is linked)
    cell: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True
    )
    sample: serializers.SlugRelatedField = serializers.SlugRelatedField(
        slug_field="code", read_only=True, allow_null=True
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
        fields = [*SPECTRUM_FIELDS, "kramers_kronig", "metadata", "series", "fits"]

    fits = EisFitSerializer(many=True, read_only=True)

    @extend_schema_field(SpectrumPointsSerializer)
    def get_series(self, spectrum: EisSpectrum) -> dict[str, Any]:
        return selectors.spectrum_series(spectrum)


class SpectrumLinkedSerializer(serializers.Serializer):
    spectrum = EisSpectrumSerializer()
    refit = EisFitSerializer(allow_null=True, help_text="The queued refit; null: no change")


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

    @extend_schema(
        request=RefitSerializer,
        responses={200: EisFitSerializer(many=True), 201: EisFitSerializer},
        description="GET: every fit of the spectrum, newest first. POST: refit (kept beside "
        "the earlier fits; a failed fit is stored with its error and returned with 201).",
    )
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def fits(self, request: Request, pk: str | None = None) -> Response:
        spectrum = self.get_object()
        if request.method == "GET":
            return Response(EisFitSerializer(selectors.spectrum_fits(spectrum), many=True).data)
        form = RefitSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            fit = services.eis_fit_run(spectrum=spectrum, user=request.user, **form.validated_data)
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from exc
        return Response(EisFitSerializer(fit).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        # the list's ?cell= / ?sample= filters are not this action's: it takes them in the body
        parameters=[
            OpenApiParameter("cell", exclude=True),
            OpenApiParameter("sample", exclude=True),
        ],
        request=SpectrumLinkSerializer,
        responses={
            202: SpectrumLinkedSerializer,
            200: OpenApiResponse(SpectrumLinkedSerializer, description="Linked there already"),
        },
        description="Link a spectrum to a cell or a sample of its project, or move it. A new "
        "owner queues a refit with its default circuit (a sample: blocking_pellet, a cell: "
        "cell_interfaces; the upload's metadata.circuit wins), kept beside the earlier fits; "
        "poll the spectrum's fits until it is no longer queued.",
    )
    @action(detail=True, methods=["post"])
    def link(self, request: Request, pk: str | None = None) -> Response:
        spectrum = self.get_object()
        form = SpectrumLinkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            target = selectors.link_target(spectrum, **form.validated_data)
            linked = services.eis_spectrum_link(spectrum=spectrum, user=request.user, **target)
        except DjangoValidationError as exc:
            detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
            raise ValidationError(detail) from exc
        return Response(
            SpectrumLinkedSerializer(linked, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED if linked.refit else status.HTTP_200_OK,
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("cell", str, description="Cell code"),
            OpenApiParameter("sample", str, description="Sample code"),
        ],
        responses={
            200: ArrheniusSerializer,
            404: error_answer(404, "No such cell or sample in your projects"),
        },
    )
    @action(detail=False, methods=["get"])
    def arrhenius(self, request: Request) -> Response:
        """Conductivity vs temperature of a cell or a sample and its Arrhenius fit."""
        from lims.selectors import scope_to_user
        from samples.models import Sample

        cell_code = request.query_params.get("cell")
        sample_code = request.query_params.get("sample")
        if bool(cell_code) == bool(sample_code):
            raise ValidationError({"detail": "give ?cell= or ?sample= (exactly one)"})
        cell = sample = None
        if cell_code:
            cell = scope_to_user(Cell.objects.all(), user=request.user).filter(code=cell_code)
            cell = cell.first()
            if cell is None:
                raise NotFound(f"no cell {cell_code!r} in your projects")
        else:
            sample = scope_to_user(Sample.objects.all(), user=request.user)
            sample = sample.filter(code=sample_code).first()
            if sample is None:
                raise NotFound(f"no sample {sample_code!r} in your projects")
        return Response(selectors.arrhenius_series(cell=cell, sample=sample))
