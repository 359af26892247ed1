"""REST endpoints for depositions. Thin: selectors read, services write, errors become 400s."""

from __future__ import annotations

import itertools
from dataclasses import asdict
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from depositions import expansion, selectors, services
from depositions.aldlogs import services as log_services
from depositions.api import serializers as s
from depositions.eln import run_crate
from depositions.filtersets import (
    ChemicalFilterSet,
    CompositionMeasurementFilterSet,
    DepositionRunFilterSet,
    FilmPropertyFilterSet,
    PostTreatmentFilterSet,
    PrecursorLotFilterSet,
    ProcessReferenceFilterSet,
    RecipeFilterSet,
    RunLogFileFilterSet,
    SourceInstallationFilterSet,
    ThicknessMeasurementFilterSet,
    ToolFilterSet,
    ToolSourceFilterSet,
)
from depositions.models import (
    Chemical,
    CompositionMeasurement,
    DepositionRun,
    FilmProperty,
    PostTreatment,
    PrecursorLot,
    ProcessReference,
    Recipe,
    RunLogFile,
    SourceInstallation,
    ThicknessMeasurement,
    Tool,
    ToolSource,
)
from lims import access
from lims.export import eln_download
from lims.fields import CODE_LOOKUP_REGEX

CreateListRetrieveUpdate = (
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
)


def _drf(exc: DjangoValidationError) -> ValidationError:
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


def _check_project(user: Any, project_id: int | None) -> None:
    """A write names its project in the payload: the user must be an editor there."""
    try:
        access.require_role(user=user, project_id=project_id, role=access.EDITOR)
    except DjangoPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc


def _person(user: Any) -> Any:
    """The user to record as operator/author; instrument tokens are not people."""
    return user if isinstance(user, AbstractBaseUser) else None


def _data(serializer: serializers.BaseSerializer[Any]) -> dict[str, Any]:
    return dict(serializer.validated_data)


# --- tools and ports ---------------------------------------------------------------------------


class ToolViewSet(*CreateListRetrieveUpdate):  # type: ignore[misc]
    project_path = "instrument.project_id"  # lims.api.permissions.ProjectRoles
    serializer_class = s.ToolSerializer
    filterset_class = ToolFilterSet

    def get_queryset(self) -> QuerySet[Tool]:
        return selectors.tool_list(user=self.request.user)

    def _reload(self, tool: Tool) -> Tool:
        """Through the selector again: the answer carries its annotations (``source_count``)."""
        return selectors.tool_list(user=self.request.user).get(pk=tool.pk)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        try:
            tool = services.tool_create(user=self.request.user, **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = self._reload(tool)

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        data.pop("instrument", None)
        assert serializer.instance is not None
        try:
            tool = services.tool_update(tool=serializer.instance, **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = self._reload(tool)


class ToolSourceViewSet(*CreateListRetrieveUpdate):  # type: ignore[misc]
    project_path = "tool.instrument.project_id"
    serializer_class = s.ToolSourceSerializer
    filterset_class = ToolSourceFilterSet

    def get_queryset(self) -> QuerySet[ToolSource]:
        return selectors.tool_source_list(user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        try:
            serializer.instance = services.tool_source_create(user=self.request.user, **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        try:
            serializer.instance = services.tool_source_update(
                source=serializer.instance, **_data(serializer)
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    @extend_schema(
        parameters=[OpenApiParameter("at", str, description="ISO date-time")],
        responses=s.PrecursorLotSerializer,
    )
    @action(detail=True, methods=["get"], url_path="lot-at")
    def lot_at(self, request: Request, pk: Any = None) -> Response:
        """The bottle that was on this port at time ``at``."""
        port = self.get_object()  # first: "not yours" answers as "not found", whatever the query
        form = s.LotAtSerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        lot = selectors.lot_on_port_at(tool_source=port, at=form.validated_data["at"])
        if lot is None:
            return Response({"detail": "nothing was installed then"}, status=404)
        return Response(s.PrecursorLotSerializer(lot).data)


class SourceInstallationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Installation history; POST installs a bottle (closing the port's previous one)."""

    project_path = "tool_source.tool.instrument.project_id"
    serializer_class = s.SourceInstallationSerializer
    filterset_class = SourceInstallationFilterSet

    def get_queryset(self) -> QuerySet[SourceInstallation]:
        return selectors.installation_list(user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        _check_project(self.request.user, data["tool_source"].tool.instrument.project_id)
        _check_project(self.request.user, data["precursor_lot"].material_lot.project_id)
        try:
            serializer.instance = services.source_install(
                installed_by=_person(self.request.user), **data
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc


# --- chemicals and bottles ---------------------------------------------------------------------


class ChemicalViewSet(*CreateListRetrieveUpdate):  # type: ignore[misc]
    """Shared catalogue; ``?q=TMA`` searches names, formulas, CAS numbers and synonyms.

    Staff write: a molar mass feeds every project's dose checks.
    """

    write_role = access.STAFF  # lims.api.permissions.ProjectRoles

    serializer_class = s.ChemicalSerializer
    filterset_class = ChemicalFilterSet

    def get_queryset(self) -> QuerySet[Chemical]:
        return selectors.chemical_list()

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        try:
            serializer.instance = services.chemical_create(**_data(serializer))
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        try:
            serializer.instance = services.chemical_update(
                chemical=serializer.instance, **_data(serializer)
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc


class PrecursorLotViewSet(*CreateListRetrieveUpdate):  # type: ignore[misc]
    project_path = "material_lot.project_id"
    serializer_class = s.PrecursorLotSerializer
    filterset_class = PrecursorLotFilterSet

    def get_queryset(self) -> QuerySet[PrecursorLot]:
        return selectors.precursor_lot_list(user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        try:
            serializer.instance = services.precursor_lot_create(user=self.request.user, **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        try:
            serializer.instance = services.precursor_lot_update(
                lot=serializer.instance, **_data(serializer)
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    @extend_schema(responses=s.DepositionRunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request: Request, pk: Any = None) -> Response:
        """Every run that had this bottle on a port."""
        runs = selectors.runs_for_precursor_lot(user=request.user, lot=self.get_object())
        page = self.paginate_queryset(runs)
        data = s.DepositionRunSerializer(page if page is not None else runs, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)


# --- recipes ------------------------------------------------------------------------------------


class RecipeViewSet(*CreateListRetrieveUpdate):  # type: ignore[misc]
    """Recipes with their sub-cycles, steps and supercycle; frozen once a run uses them."""

    serializer_class = s.RecipeSerializer
    filterset_class = RecipeFilterSet
    ordering_fields = ["name", "version", "created_at"]

    def get_queryset(self) -> QuerySet[Recipe]:
        return selectors.recipe_list(user=self.request.user)

    def _reload(self, recipe: Recipe) -> Recipe:
        return selectors.recipe_list(user=self.request.user).get(pk=recipe.pk)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        _check_project(self.request.user, data["project"].pk)
        structure = s.RecipeSerializer.structure(data)
        try:
            recipe = services.recipe_create(
                created_by=_person(self.request.user), **structure, **data
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = self._reload(recipe)

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        data.pop("project", None)
        structure = s.RecipeSerializer.structure(data)
        assert serializer.instance is not None
        try:
            recipe = services.recipe_update(recipe=serializer.instance, **structure, **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = self._reload(recipe)

    @extend_schema(request=s.RecipeVersionSerializer, responses={201: s.RecipeSerializer})
    @action(detail=True, methods=["post"], url_path="new-version")
    def new_version(self, request: Request, pk: Any = None) -> Response:
        """Copy this recipe to the next version (the way to change a frozen recipe)."""
        form = s.RecipeVersionSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            new = services.recipe_new_version(
                recipe=self.get_object(), created_by=_person(request.user), **form.validated_data
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return Response(self.get_serializer(self._reload(new)).data, status=201)

    @extend_schema(
        parameters=[
            OpenApiParameter("offset", int, description="first planned step (0-based)"),
            OpenApiParameter("limit", int, description="how many steps (max 5000)"),
        ],
        responses=s.PlannedStepSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def steps(self, request: Request, pk: Any = None) -> Response:
        """A window of the expanded step sequence (generated, never stored)."""
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
            limit = min(5000, max(1, int(request.query_params.get("limit", 500))))
        except ValueError as exc:
            raise ValidationError({"detail": "offset and limit are integers"}) from exc
        try:
            spec = selectors.recipe_spec(recipe=self.get_object())
        except expansion.ExpansionError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        window = itertools.islice(expansion.iter_steps(spec), offset, offset + limit)
        rows = [{"index": offset + i, **asdict(step)} for i, step in enumerate(window)]
        return Response({"count": expansion.step_count(spec), "offset": offset, "results": rows})


class ProcessReferenceViewSet(*CreateListRetrieveUpdate):  # type: ignore[misc]
    """Literature processes: everyone reads, staff write."""

    serializer_class = s.ProcessReferenceSerializer
    filterset_class = ProcessReferenceFilterSet
    write_role = access.STAFF  # lims.api.permissions.ProjectRoles

    def get_queryset(self) -> QuerySet[ProcessReference]:
        return selectors.process_reference_list()

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        try:
            serializer.instance = services.process_reference_save(**_data(serializer))
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        try:
            serializer.instance = services.process_reference_save(
                reference=serializer.instance, **_data(serializer)
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc


# --- runs ---------------------------------------------------------------------------------------


class DepositionRunViewSet(*CreateListRetrieveUpdate):  # type: ignore[misc]
    serializer_class = s.DepositionRunSerializer
    filterset_class = DepositionRunFilterSet
    lookup_field = "code"
    lookup_value_regex = CODE_LOOKUP_REGEX
    ordering_fields = ["code", "created_at", "started_at"]

    def get_queryset(self) -> QuerySet[DepositionRun]:
        return selectors.run_list(user=self.request.user)

    @extend_schema(
        responses={(200, "application/vnd.eln+zip"): OpenApiTypes.BINARY},
        summary="The run as an .eln (RO-Crate): metadata, recipe, tool logs, provenance",
    )
    @action(detail=True, methods=["get"])
    def eln(self, request: Request, code: str | None = None) -> StreamingHttpResponse:
        return eln_download(
            run_crate(base_url=request.build_absolute_uri("/"), run=self.get_object())
        )

    def _reply(self, run: DepositionRun, code: int = 200) -> Response:
        fresh = selectors.run_get(user=self.request.user, code=run.code)
        return Response(self.get_serializer(fresh).data, status=code)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        project = data.pop("project")
        _check_project(self.request.user, project.pk)
        if not selectors.tool_list(user=self.request.user).filter(pk=data["tool"].pk).exists():
            raise ValidationError({"tool": "no such tool in your projects"})
        try:
            run = services.run_create(project=project, operator=_person(self.request.user), **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = selectors.run_get(user=self.request.user, code=run.code)

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        try:
            run = services.run_update(run=serializer.instance, **_data(serializer))
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = selectors.run_get(user=self.request.user, code=run.code)

    @extend_schema(request=s.RunLoadSerializer, responses={201: s.DepositionRunSerializer})
    @action(detail=True, methods=["post"])
    def loads(self, request: Request, code: str | None = None) -> Response:
        """Put a sample in the reactor (nothing is debited until the run completes)."""
        run = self.get_object()
        form = s.RunLoadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            services.run_load_add(run=run, **form.validated_data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return self._reply(run, 201)

    @extend_schema(request=s.RunPrecursorSerializer, responses=s.DepositionRunSerializer)
    @action(detail=True, methods=["post"])
    def precursors(self, request: Request, code: str | None = None) -> Response:
        """Say which bottle was on a port (overrides the installation history)."""
        run = self.get_object()
        form = s.RunPrecursorSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        _check_project(request.user, form.validated_data["precursor_lot"].material_lot.project_id)
        try:
            services.run_precursor_set(run=run, **form.validated_data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return self._reply(run)

    @extend_schema(request=s.RunStartSerializer, responses=s.DepositionRunSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request: Request, code: str | None = None) -> Response:
        form = s.RunStartSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = services.run_start(run=self.get_object(), **form.validated_data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return self._reply(run)

    @extend_schema(request=s.RunCompleteSerializer, responses=s.DepositionRunSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, code: str | None = None) -> Response:
        """Loads consumed, coated samples produced (one lineage operation)."""
        form = s.RunCompleteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = services.run_complete(run=self.get_object(), **form.service_kwargs())
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return self._reply(run)

    @extend_schema(request=s.ReasonSerializer, responses=s.DepositionRunSerializer)
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, code: str | None = None) -> Response:
        run = self.get_object()  # first: "not yours" answers as "not found", whatever the body
        form = s.ReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = services.run_abort(run=run, **form.validated_data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return self._reply(run)

    @extend_schema(request=s.ReasonSerializer, responses=s.DepositionRunSerializer)
    @action(detail=True, methods=["post"], url_path="fail-qc")
    def fail_qc(self, request: Request, code: str | None = None) -> Response:
        run = self.get_object()  # first: "not yours" answers as "not found", whatever the body
        form = s.ReasonSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = services.run_qc_fail(run=run, **form.validated_data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return self._reply(run)

    @extend_schema(parameters=[s.DoseCheckQuerySerializer], responses=dict)
    @action(detail=True, methods=["get"], url_path="dose-check")
    def dose_check(self, request: Request, code: str | None = None) -> Response:
        """Planned dose per source vs what the powder bed needs (assumptions in the reply)."""
        form = s.DoseCheckQuerySerializer(data=request.query_params)
        form.is_valid(raise_exception=True)
        return Response(selectors.run_dose_check(run=self.get_object(), **form.validated_data))

    @extend_schema(responses=s.MeasuredGPCSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def gpc(self, request: Request, code: str | None = None) -> Response:
        """Measured GPC of every thickness on the run's outputs, with provenance."""
        rows = [r.as_dict() for r in selectors.run_gpc(run=self.get_object())]
        return Response(s.MeasuredGPCSerializer(rows, many=True).data)

    # the run list's filters and pagination do not apply to one run's rows
    @extend_schema(responses=s.RunCheckSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def checks(self, request: Request, code: str | None = None) -> Response:
        """The tool-log checks of the run (one set per data log or session), with their checker
        version."""
        rows = self.get_object().checks.select_related("segment").order_by("log_id", "name")
        return Response(s.RunCheckSerializer(rows, many=True).data)

    @extend_schema(responses=s.PulseEventSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def pulses(self, request: Request, code: str | None = None) -> Response:
        """Every detected pulse, in time order per log (paginated)."""
        rows = (
            self.get_object()
            .pulses.select_related("segment")
            .order_by("log_id", "start_s", "pk")  # unique: stable pages
        )
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(s.PulseEventSerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: s.QueuedJobsSerializer})
    @action(detail=True, methods=["post"], filter_backends=[])
    def recheck(self, request: Request, code: str | None = None) -> Response:
        """Check the run's logs again (new thresholds, calibrations or checker): jobs queued."""
        queued = log_services.run_log_recheck(run=self.get_object())
        return Response({"queued_jobs": queued}, status=status.HTTP_202_ACCEPTED)


class RunLogFileViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Tool logs as stored (upload them through /api/v1/ingest/ with kind=ald_log)."""

    serializer_class = s.RunLogFileSerializer
    filterset_class = RunLogFileFilterSet
    ordering_fields = ["created_at"]

    def get_queryset(self) -> QuerySet[RunLogFile]:
        return selectors.run_log_file_list(user=self.request.user)

    @extend_schema(request=s.RunLinkSerializer, responses={202: s.QueuedJobsSerializer})
    @action(detail=True, methods=["post"], filter_backends=[])
    def link(self, request: Request, pk: str | None = None) -> Response:
        """Attach a log pushed without (or with a wrong) run code to a run, and check it."""
        log_file = self.get_object()
        form = s.RunLinkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        run = selectors.run_list(user=request.user).filter(code=form.validated_data["run"]).first()
        if run is None:
            raise ValidationError({"run": ["no such run in your projects"]})
        try:
            queued = log_services.run_log_link(
                log_file=log_file, run=run, segment=form.validated_data.get("segment")
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return Response({"queued_jobs": queued}, status=status.HTTP_202_ACCEPTED)


# --- measurements ------------------------------------------------------------------------------


class _MeasurementViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Measurements are appended, never edited (a correction is a new measurement)."""

    project_path = "sample.project_id"  # lims.api.permissions.ProjectRoles

    def _create(self, serializer: serializers.BaseSerializer[Any], service: Any) -> None:
        data = _data(serializer)
        _check_project(self.request.user, data["sample"].project_id)
        if data.get("run") is not None:
            _check_project(self.request.user, data["run"].project_id)
        try:
            serializer.instance = service(operator=_person(self.request.user), **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc


class ThicknessMeasurementViewSet(_MeasurementViewSet):
    serializer_class = s.ThicknessMeasurementSerializer
    filterset_class = ThicknessMeasurementFilterSet

    def get_queryset(self) -> QuerySet[ThicknessMeasurement]:
        return selectors.thickness_list(user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        self._create(serializer, services.thickness_measurement_add)


class CompositionMeasurementViewSet(_MeasurementViewSet):
    serializer_class = s.CompositionMeasurementSerializer
    filterset_class = CompositionMeasurementFilterSet

    def get_queryset(self) -> QuerySet[CompositionMeasurement]:
        return selectors.composition_list(user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        self._create(serializer, services.composition_measurement_add)


class FilmPropertyViewSet(_MeasurementViewSet):
    serializer_class = s.FilmPropertySerializer
    filterset_class = FilmPropertyFilterSet

    def get_queryset(self) -> QuerySet[FilmProperty]:
        return selectors.film_property_list(user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        _check_project(self.request.user, data["sample"].project_id)
        try:
            serializer.instance = services.film_property_add(**data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc


# --- anneals ------------------------------------------------------------------------------------


class PostTreatmentViewSet(*CreateListRetrieveUpdate):  # type: ignore[misc]
    serializer_class = s.PostTreatmentSerializer
    filterset_class = PostTreatmentFilterSet
    lookup_field = "code"
    lookup_value_regex = CODE_LOOKUP_REGEX
    ordering_fields = ["code", "created_at", "started_at"]

    def get_queryset(self) -> QuerySet[PostTreatment]:
        return selectors.post_treatment_list(user=self.request.user)

    def _fresh(self, treatment: PostTreatment) -> PostTreatment:
        return get_object_or_404(self.get_queryset(), pk=treatment.pk)

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        _check_project(self.request.user, data["project"].pk)
        segments = s.PostTreatmentSerializer.segment_inputs(data) or []
        try:
            treatment = services.post_treatment_create(
                operator=_person(self.request.user), segments=segments, **data
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = self._fresh(treatment)

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = _data(serializer)
        data.pop("project", None)
        segments = s.PostTreatmentSerializer.segment_inputs(data)
        assert serializer.instance is not None
        try:
            treatment = services.post_treatment_update(
                treatment=serializer.instance, segments=segments, **data
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        serializer.instance = self._fresh(treatment)

    @extend_schema(request=s.PostTreatmentCompleteSerializer, responses=s.PostTreatmentSerializer)
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, code: str | None = None) -> Response:
        """Inputs consumed, annealed samples produced (one lineage operation)."""
        treatment = self.get_object()
        form = s.PostTreatmentCompleteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        kwargs = form.service_kwargs()
        for item in kwargs["inputs"]:
            _check_project(request.user, item.sample.project_id)
        try:
            treatment = services.post_treatment_complete(treatment=treatment, **kwargs)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc
        return Response(self.get_serializer(self._fresh(treatment)).data)
