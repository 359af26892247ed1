"""REST for materials, lots and samples; lineage operations go through the services."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from lims import access
from lims.api.parsers import CappedFormParser, CappedJSONParser, CappedMultiPartParser
from lims.export import eln_download
from lims.fields import CODE_LOOKUP_REGEX
from lims.models import Project
from lims.selectors import projects_for_user, scope_to_user
from samples import imports, selectors, services
from samples.api.serializers import (
    ExposureSerializer,
    HistorySerializer,
    LineageSerializer,
    MaterialLotSerializer,
    MaterialSerializer,
    MixSerializer,
    SampleSerializer,
    SplitSerializer,
)
from samples.eln import sample_crate
from samples.filtersets import MaterialLotFilterSet, SampleFilterSet
from samples.models import Material, MaterialLot, Sample


def _drf(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


def _own_project(user: Any, project: Project) -> Project:
    """A write names its project in the payload: the user must be an editor there."""
    try:
        access.require_role(user=user, project_id=project.pk, role=access.EDITOR)
    except DjangoPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    return project


class MaterialViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """The shared material catalogue: staff write (every project's samples point at it)."""

    write_role = access.STAFF  # lims.api.permissions.ProjectRoles

    serializer_class = MaterialSerializer
    queryset = Material.objects.all()
    filterset_fields = ["material_class"]
    search_fields = ["name", "formula"]

    def perform_create(self, serializer: serializers.BaseSerializer[Material]) -> None:
        try:
            serializer.instance = services.material_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc


class MaterialLotViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = MaterialLotSerializer
    filterset_class = MaterialLotFilterSet

    def get_queryset(self) -> QuerySet[MaterialLot]:
        qs = MaterialLot.objects.select_related("material", "project")
        return scope_to_user(qs, user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[MaterialLot]) -> None:
        data = dict(serializer.validated_data)
        project = _own_project(self.request.user, data.pop("project"))
        try:
            lot, _ = services.lot_receive(
                project=project,
                material=data.pop("material"),
                lot_number=data.pop("lot_number"),
                quantity=data.pop("quantity_received"),
                sample_code=data.pop("sample_code", None),
                **data,
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = lot


class SampleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = SampleSerializer
    filterset_class = SampleFilterSet
    lookup_field = "code"
    lookup_value_regex = CODE_LOOKUP_REGEX
    ordering_fields = ["code", "created_at"]

    def get_queryset(self) -> QuerySet[Sample]:
        return selectors.sample_list(user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[Sample]) -> None:
        data = dict(serializer.validated_data)
        project = _own_project(self.request.user, data.pop("project"))
        data.pop("remaining", None)
        try:
            serializer.instance = services.sample_create(project=project, **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    @extend_schema(responses=LineageSerializer)
    @action(detail=True, methods=["get"])
    def lineage(self, request: Request, code: str | None = None) -> Response:
        graph = selectors.lineage(sample=self.get_object())
        return Response(graph.as_dict())

    @extend_schema(
        responses={(200, "application/vnd.eln+zip"): OpenApiTypes.BINARY},
        summary="The sample as an .eln (RO-Crate): metadata, lineage, spectra, provenance",
    )
    @action(detail=True, methods=["get"])
    def eln(self, request: Request, code: str | None = None) -> StreamingHttpResponse:
        return eln_download(
            sample_crate(base_url=request.build_absolute_uri("/"), sample=self.get_object())
        )

    # the sample list's filters and pagination do not apply to one sample's rows
    @extend_schema(responses=HistorySerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def history(self, request: Request, code: str | None = None) -> Response:
        entries = selectors.sample_history(sample=self.get_object())
        return Response(HistorySerializer(entries, many=True).data)

    @extend_schema(request=SplitSerializer, responses={201: LineageSerializer})
    @action(detail=True, methods=["post"])
    def split(self, request: Request, code: str | None = None) -> Response:
        sample = self.get_object()
        form = SplitSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        kwargs: dict[str, Any] = {"taken": data.get("taken")}
        if data.get("tolerance") is not None:
            kwargs["tolerance"] = data["tolerance"]
        try:
            services.sample_split(
                sample=sample,
                aliquots=[services.OutputSpec(**a) for a in data["aliquots"]],
                # an instrument token is not a person (and may not split: InstrumentScope)
                operator=request.user if isinstance(request.user, AbstractBaseUser) else None,
                **kwargs,
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        sample.refresh_from_db()
        return Response(selectors.lineage(sample=sample).as_dict(), status=status.HTTP_201_CREATED)

    @extend_schema(request=MixSerializer, responses={201: SampleSerializer})
    @action(detail=False, methods=["post"])
    def mix(self, request: Request) -> Response:
        form = MixSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        project = projects_for_user(user=request.user).filter(slug=data["project"]).first()
        if project is None:
            raise PermissionDenied("you are not a member of that project")
        _own_project(request.user, project)
        visible = self.get_queryset()
        inputs = []
        for item in data["inputs"]:
            found = visible.filter(code=item["sample"]).first()
            if found is None:
                raise ValidationError({"inputs": f"no sample {item['sample']!r}"})
            inputs.append((found, item["quantity"]))
        try:
            op = services.sample_mix(
                project=project, inputs=inputs, output=services.OutputSpec(**data["output"])
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        made = op.outputs.select_related("sample").get().sample
        return Response(SampleSerializer(made).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ExposureSerializer, responses=ExposureSerializer(many=True))
    @action(detail=True, methods=["get", "post"], filter_backends=[], pagination_class=None)
    def exposures(self, request: Request, code: str | None = None) -> Response:
        sample = self.get_object()
        if request.method == "POST":
            form = ExposureSerializer(data=request.data)
            form.is_valid(raise_exception=True)
            try:
                services.exposure_add(sample=sample, **form.validated_data)
            except DjangoValidationError as exc:
                raise _drf(exc) from exc
        return Response(ExposureSerializer(sample.exposures.all(), many=True).data)

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "project": {"type": "string"},
                    "dry_run": {"type": "boolean"},
                },
            }
        },
        responses={200: dict},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[CappedMultiPartParser, CappedFormParser, CappedJSONParser],
    )
    def import_rows(self, request: Request) -> Response:
        """CSV/XLSX import; ``dry_run`` (default true) reports every bad row and writes nothing."""
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": "a CSV or XLSX file is required"})
        project = (
            projects_for_user(user=request.user)
            .filter(slug=request.data.get("project", ""))
            .first()
        )
        if project is None:
            raise PermissionDenied("say which of your projects the samples belong to")
        _own_project(request.user, project)
        dry_run = str(request.data.get("dry_run", "true")).lower() not in ("false", "0", "no")
        try:
            rows = imports.read_table(upload, upload.name or "upload")
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        report = imports.samples_import(project=project, rows=rows, dry_run=dry_run)
        code = status.HTTP_200_OK if report.ok else status.HTTP_400_BAD_REQUEST
        return Response(imports.report_as_dict(report), status=code)
