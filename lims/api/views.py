"""REST endpoints of the spine: ingest, jobs, projects, instruments. Thin: services do the work."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lims import access, selectors
from lims import services as lims_services
from lims.api.parsers import CappedFormParser, StreamingMultiPartParser
from lims.api.serializers import (
    ColumnMappingSerializer,
    IngestRequestSerializer,
    IngestResponseSerializer,
    InstrumentSerializer,
    JobSerializer,
    MemberSerializer,
    ProjectSerializer,
    RawFileCheckQuerySerializer,
    RawFileCheckSerializer,
    RawFileSerializer,
)
from lims.export import raw_download
from lims.ingestion import services, storage
from lims.ingestion.parsing import ParseError
from lims.models import ColumnMapping, IngestionJob, Instrument, RawFile


def _drf_error(exc: Exception) -> Exception:
    if isinstance(exc, DjangoPermissionDenied):
        return PermissionDenied(str(exc))
    if isinstance(exc, DjangoValidationError):
        return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    return exc


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """A URL no route matches (``/api/v1/cells/1.5e3/``): under ``/api/`` in the API's error
    shape, as its views answer a missing object, not Django's HTML page."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


class IngestView(APIView):
    parser_classes = [StreamingMultiPartParser, CappedFormParser]
    instrument_actions = ("post",)  # lims.api.permissions.InstrumentScope

    @extend_schema(
        request=IngestRequestSerializer,
        responses={
            202: IngestResponseSerializer,
            200: OpenApiResponse(IngestResponseSerializer, description="Same bytes seen before"),
            409: OpenApiResponse(
                description="An instrument pushed bytes another source already stored in its "
                "project (that job is not named)"
            ),
            413: OpenApiResponse(
                description="File larger than LIMS_UPLOAD_MAX_BYTES, or a form field (or the "
                "part headers and unknown fields together) larger than LIMS_FORM_FIELD_MAX_BYTES"
            ),
            503: OpenApiResponse(
                description="The file store or upload temp space cannot take it now "
                "(read-only, I/O error); nothing was stored: send it again after Retry-After"
            ),
            507: OpenApiResponse(
                description="The file store or upload temp space is full; nothing was "
                "stored: send it again after Retry-After"
            ),
        },
        summary="Upload an instrument file; it is stored, then parsed by a worker",
    )
    def post(self, request: Request) -> Response:
        form = IngestRequestSerializer(data=request.data)  # streams the file to disk
        form.is_valid(raise_exception=True)
        data = form.validated_data
        upload = data["file"]
        try:
            project = selectors.ingest_project_for(user=request.user, slug=data.get("project"))
            job, created = services.ingest_submit(
                stream=upload,
                filename=upload.name or "upload",
                project=project,
                kind=data.get("kind"),
                params=services.upload_params(data),
                # an instrument's upload is answered for by the person who owns its token
                user=request.user
                if isinstance(request.user, AbstractBaseUser)
                else getattr(getattr(request.user, "token", None), "owner", None),
                instrument=getattr(request.user, "instrument", None),
                content_type=upload.content_type or "",
            )
        except (DjangoPermissionDenied, DjangoValidationError) as exc:
            raise _drf_error(exc) from exc
        if not created and not selectors.job_list(user=request.user).filter(pk=job.pk).exists():
            # the same bytes came into the project from a source whose jobs this caller does
            # not see (an instrument sees only its own): say so without naming that job
            return Response(
                {
                    "detail": f"{upload.name or 'upload'}: these bytes are already stored in "
                    f"project {project.slug} by another source; nothing was queued"
                },
                status=status.HTTP_409_CONFLICT,
            )
        url = request.build_absolute_uri(f"/api/v1/jobs/{job.pk}/")
        return Response(
            IngestResponseSerializer.build(job, url),
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )


class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = JobSerializer
    filterset_fields = ["status", "kind", "parser_name", "project"]
    instrument_actions = ("list", "retrieve")  # its own jobs: selectors.job_list
    ordering_fields = ["created_at", "finished_at"]

    def get_queryset(self) -> QuerySet[IngestionJob]:
        return selectors.job_list(user=self.request.user)

    @extend_schema(request=None, responses={202: JobSerializer})
    @action(detail=True, methods=["post"])
    def rerun(self, request: Request, pk: Any = None) -> Response:
        try:
            job = services.job_rerun(job=self.get_object())
        except DjangoValidationError as exc:
            raise _drf_error(exc) from exc
        return Response(self.get_serializer(job).data, status=status.HTTP_202_ACCEPTED)


class RawFileViewSet(viewsets.ReadOnlyModelViewSet):
    """Raw files as they arrived: the JSON (sha256, size, name) is the download's sidecar."""

    serializer_class = RawFileSerializer
    filterset_fields = ["sha256", "project"]
    instrument_actions = ("check",)  # lims.api.permissions.InstrumentScope

    def get_queryset(self) -> QuerySet[RawFile]:
        return selectors.raw_file_list(user=self.request.user)

    @extend_schema(
        parameters=[RawFileCheckQuerySerializer],
        responses={200: RawFileCheckSerializer},
        summary="Are these bytes already stored? Asked before an upload (lims-harvest)",
        description="Whether the bytes with this SHA-256 are stored in the caller's project "
        "(an instrument: its own; a person: `project`, else any of theirs), and their job "
        "when the caller may follow it. An upload of stored bytes would answer 200 (or 409 "
        "when another source brought them): this lets a client skip sending them.",
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def check(self, request: Request) -> Response:
        query = RawFileCheckQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        sha256 = query.validated_data["sha256"].lower()
        try:
            stored, job = selectors.raw_file_check(
                user=request.user, sha256=sha256, slug=query.validated_data.get("project")
            )
        except DjangoPermissionDenied as exc:
            raise _drf_error(exc) from exc
        url = request.build_absolute_uri(f"/api/v1/jobs/{job.pk}/") if job else ""
        return Response(RawFileCheckSerializer.build(sha256, stored, job, url))

    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        summary="The raw file's bytes, unchanged; sha256 in ETag, Repr-Digest, X-LIMS-Raw-SHA256",
    )
    @action(detail=True, methods=["get"])
    def download(self, request: Request, pk: Any = None) -> Any:
        raw = self.get_object()
        return raw_download(
            path=storage.absolute(raw.storage_path),
            filename=raw.original_name,
            sha256=raw.sha256,
            content_type=raw.content_type,
        )


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ProjectSerializer
    write_role = access.MANAGER  # its only writes: the members (lims.api.permissions)
    project_path = "pk"

    def get_queryset(self) -> QuerySet[Any]:
        return selectors.projects_for_user(user=self.request.user)

    @staticmethod
    def _members(project: Any) -> list[dict[str, str]]:
        rows = selectors.project_members(project=project)
        return [{"username": m.user.username, "role": m.role} for m in rows]

    @extend_schema(
        request=MemberSerializer,
        responses={200: MemberSerializer(many=True)},
        summary="Members and roles; POST adds a person or changes a role (managers)",
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def members(self, request: Request, pk: str | None = None) -> Response:
        project = self.get_object()
        if request.method == "POST":
            body = MemberSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            try:
                lims_services.membership_set(
                    project=project, by=request.user, **body.validated_data
                )
            except (DjangoPermissionDenied, DjangoValidationError) as exc:
                raise _drf_error(exc) from exc
        return Response(MemberSerializer(self._members(project), many=True).data)

    @extend_schema(
        request=None,
        responses={200: MemberSerializer(many=True)},
        summary="Remove a person from the project (managers; the last manager stays)",
    )
    @action(
        detail=True,
        methods=["delete"],
        url_path=r"members/(?P<username>[^/]+)",
        pagination_class=None,
    )
    def member_remove(
        self, request: Request, pk: str | None = None, username: str = ""
    ) -> Response:
        project = self.get_object()
        try:
            lims_services.membership_remove(project=project, username=username, by=request.user)
        except (DjangoPermissionDenied, DjangoValidationError) as exc:
            raise _drf_error(exc) from exc
        return Response(MemberSerializer(self._members(project), many=True).data)


class InstrumentViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = InstrumentSerializer
    filterset_fields = ["kind", "project"]

    def get_queryset(self) -> QuerySet[Instrument]:
        return selectors.scope_to_user(Instrument.objects.all(), user=self.request.user)


class ColumnMappingViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    viewsets.GenericViewSet,
):
    """Saved column maps; POST with an existing name replaces that mapping."""

    serializer_class = ColumnMappingSerializer
    filterset_fields = ["kind", "parser_name", "project"]

    def get_queryset(self) -> QuerySet[ColumnMapping]:
        qs = ColumnMapping.objects.select_related("project")
        return selectors.scope_to_user(qs, user=self.request.user)

    def perform_create(self, serializer: Any) -> None:
        data = dict(serializer.validated_data)
        try:
            access.require_role(
                user=self.request.user, project_id=data["project"].pk, role=access.EDITOR
            )
            serializer.instance = lims_services.column_mapping_save(**data)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        except (DjangoValidationError, ParseError) as exc:
            raise ValidationError(getattr(exc, "messages", None) or str(exc)) from exc
