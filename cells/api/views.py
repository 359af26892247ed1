from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cells import exports, selectors, services
from cells.api.serializers import (
    CellSerializer,
    ChainSerializer,
    CycleRecordSerializer,
    CyclingTestSerializer,
    DetachSerializer,
    LinkSerializer,
    LotCellGroupSerializer,
)
from cells.eln import cell_crate
from cells.filtersets import CellFilterSet, CyclingTestFilterSet
from cells.models import Cell, CyclingTest
from cells.parsers.types import CANONICAL_COLUMNS
from lims import access
from lims.changelog import current_reason
from lims.export import csv_response, eln_download, provenance_headers, stream_download
from lims.fields import CODE_LOOKUP_REGEX
from lims.ingestion import storage
from lims.selectors import scope_to_user

SERIES_FORMATS = ("parquet", "csv", "bdf")


def _getter(column: str) -> Any:
    return lambda row: getattr(row, column)


def _drf(exc: DjangoValidationError) -> ValidationError:
    """A service's error as a 400, with or without field names (never a 500)."""
    return ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)


def _check_project(user: Any, project_id: int) -> None:
    """A write names its project in the payload: the user must be an editor there."""
    try:
        access.require_role(user=user, project_id=project_id, role=access.EDITOR)
    except DjangoPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc


CYCLES_PARAM = OpenApiParameter("cycles", str, description="Comma-separated cycle numbers (from 1)")


def _cycles_param(request: Request) -> list[int]:
    wanted = request.query_params.get("cycles", "1").replace(" ", "").split(",")
    cycles = [int(c) for c in wanted if c.isdigit()][:20]
    if not cycles:
        raise ValidationError({"cycles": "give cycle numbers, e.g. cycles=1,2,10"})
    return cycles


class CellViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    serializer_class = CellSerializer
    filterset_class = CellFilterSet
    lookup_field = "code"
    lookup_value_regex = CODE_LOOKUP_REGEX
    ordering_fields = ["code", "created_at", "assembled_at"]

    def get_queryset(self) -> QuerySet[Cell]:
        return selectors.cell_list(user=self.request.user)

    def perform_create(self, serializer: serializers.BaseSerializer[Cell]) -> None:
        data = dict(serializer.validated_data)
        project = data.pop("project")
        _check_project(self.request.user, project.pk)
        try:
            serializer.instance = services.cell_create(project=project, **data)
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    def perform_update(self, serializer: serializers.BaseSerializer[Cell]) -> None:
        data = dict(serializer.validated_data)
        project = data.pop("project", None)
        cell = serializer.instance
        assert cell is not None
        if project is not None and project.pk != cell.project_id:
            raise ValidationError({"project": "a cell cannot move to another project"})
        try:
            serializer.instance = services.cell_update(
                cell=cell, reason=current_reason() or "edited over the API", **data
            )
        except DjangoValidationError as exc:
            raise _drf(exc) from exc

    @extend_schema(responses=ChainSerializer)
    @action(detail=True, methods=["get"])
    def chain(self, request: Request, code: Any = None) -> Response:
        """The cell's stitched test: tests in chain order (duplicates and detached ones say
        why), the stitched performance record and the stitched cycle table."""
        cell = self.get_object()
        record = getattr(cell, "stitched", None)
        data = {
            "tests": selectors.cell_chain(cell=cell),
            "record": record,
            "cycles": selectors.stitched_cycle_table(cell=cell),
        }
        return Response(ChainSerializer(data).data)

    @extend_schema(parameters=[CYCLES_PARAM], responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"], url_path="stitched/dqdv")
    def stitched_dqdv(self, request: Request, code: Any = None) -> Response:
        """dQ/dV and dV/dQ of chosen cycles of the cell's stitched test (stitched numbering),
        with the method and every file the rows came from."""
        cycles = _cycles_param(request)
        return Response(selectors.dqdv_of_stitched(cell=self.get_object(), cycle_indices=cycles))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"], url_path="stitched/rate")
    def stitched_rate(self, request: Request, code: Any = None) -> Response:
        """Current and C-rate per stitched cycle and capacity per rate step, across files."""
        return Response(selectors.rate_capability_of_stitched(cell=self.get_object()))

    @extend_schema(
        responses={(200, "application/vnd.eln+zip"): OpenApiTypes.BINARY},
        summary="The cell as an .eln (RO-Crate): metadata, raw files, series, provenance",
    )
    @action(detail=True, methods=["get"])
    def eln(self, request: Request, code: Any = None) -> StreamingHttpResponse:
        return eln_download(
            cell_crate(base_url=request.build_absolute_uri("/"), cell=self.get_object())
        )


class CyclingTestViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = CyclingTestSerializer
    filterset_class = CyclingTestFilterSet

    def get_queryset(self) -> QuerySet[CyclingTest]:
        return selectors.cycling_test_list(user=self.request.user)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "as", str, enum=["json", "csv"], description="csv: the cycle table as CSV"
            )
        ],
        responses={
            200: CycleRecordSerializer(many=True),
            (200, "text/csv"): OpenApiTypes.BINARY,
        },
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def cycles(self, request: Request, pk: Any = None) -> Any:
        """The cycle table (cycle_index from 1); ``as=csv`` streams it as a CSV download with
        its provenance in the X-LIMS-* headers."""
        test = self.get_object()
        rows = selectors.cycle_table(test=test)
        if request.query_params.get("as") == "csv":
            response = csv_response(
                f"{selectors.export_stem(test=test)}.cycles.csv",
                [(c, _getter(c)) for c in selectors.CYCLE_TABLE_COLUMNS],
                rows.iterator(chunk_size=2000),
            )
            provenance_headers(response, selectors.series_provenance(test=test))
            return response
        return Response(CycleRecordSerializer(rows, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "as",
                str,
                enum=["parquet", "csv", "bdf"],
                description="parquet (default; provenance in the key-value metadata "
                "lims.provenance), csv (canonical columns) or bdf (Battery Data Format CSV)",
            )
        ],
        responses={
            (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="The test has no stored series (a cycle table only)"),
        },
        summary="The full time series, streamed; provenance in the X-LIMS-* headers",
    )
    @action(detail=True, methods=["get"])
    def series(self, request: Request, pk: Any = None) -> Any:
        test = self.get_object()
        kind = request.query_params.get("as", "parquet")
        if kind not in SERIES_FORMATS:
            raise ValidationError({"as": f"one of {', '.join(SERIES_FORMATS)}"})
        if not test.series_path:
            raise NotFound(
                f"{test.raw_file.original_name}: this test has no stored series (the file held "
                "a cycle table only)"
            )
        provenance = selectors.series_provenance(test=test)
        chunks = exports.series_chunks(storage.absolute(test.series_path))
        stem = selectors.export_stem(test=test)
        if kind == "parquet":
            body = exports.parquet_stream(chunks, provenance=provenance)
            filename, content_type = f"{stem}.parquet", "application/vnd.apache.parquet"
        elif kind == "csv":
            body = exports.csv_stream(chunks, columns=list(CANONICAL_COLUMNS))
            filename, content_type = f"{stem}.csv", "text/csv; charset=utf-8"
        else:
            labels = [label for label, _ in exports.BDF_COLUMNS.values()]
            body = exports.csv_stream(exports.bdf_chunks(chunks), columns=labels)
            filename, content_type = f"{stem}.bdf.csv", "text/csv; charset=utf-8"
            provenance = {**provenance, "bdf_columns": exports.bdf_columns_doc()}
        return stream_download(
            body,
            filename=filename,
            content_type=content_type,
            provenance=provenance,
            described_by=request.build_absolute_uri(f"/api/v1/cycling-tests/{test.pk}/"),
        )

    @extend_schema(parameters=[CYCLES_PARAM], responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def dqdv(self, request: Request, pk: Any = None) -> Response:
        """dQ/dV and dV/dQ of the chosen cycles, with the method and its parameters."""
        test = self.get_object()
        return Response(selectors.dqdv_of_test(test=test, cycle_indices=_cycles_param(request)))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def rate(self, request: Request, pk: Any = None) -> Response:
        """Current and C-rate per cycle and capacity per rate step."""
        return Response(selectors.rate_capability_of_test(test=self.get_object()))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def symmetric(self, request: Request, pk: Any = None) -> Response:
        """Li-symmetric analysis: overpotential per current step, critical current density."""
        return Response(selectors.symmetric_of_test(test=self.get_object()))

    @extend_schema(request=LinkSerializer, responses=CyclingTestSerializer)
    @action(detail=True, methods=["post"])
    def link(self, request: Request, pk: Any = None) -> Response:
        test = self.get_object()
        form = LinkSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            cell = selectors.cell_get(user=request.user, code=form.validated_data["cell"])
            test = services.cycling_test_link(test=test, cell=cell)
        except Cell.DoesNotExist as exc:
            raise ValidationError({"cell": "no such cell"}) from exc
        except DjangoValidationError as exc:
            raise ValidationError(exc.messages) from exc
        return Response(self.get_serializer(test).data, status=status.HTTP_200_OK)

    def _chain_change(self, request: Request, attach: bool) -> Response:
        test = self.get_object()
        form = DetachSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        reason = form.validated_data.get("reason", "")
        change = services.cycling_test_attach if attach else services.cycling_test_detach
        try:
            test = change(test=test, reason=reason)
        except DjangoValidationError as exc:
            raise ValidationError(exc.messages) from exc
        return Response(self.get_serializer(test).data, status=status.HTTP_200_OK)

    @extend_schema(request=DetachSerializer, responses=CyclingTestSerializer)
    @action(detail=True, methods=["post"])
    def detach(self, request: Request, pk: Any = None) -> Response:
        """Take the test out of its cell's stitched test; the cell's record is recomputed."""
        return self._chain_change(request, attach=False)

    @extend_schema(request=DetachSerializer, responses=CyclingTestSerializer)
    @action(detail=True, methods=["post"])
    def attach(self, request: Request, pk: Any = None) -> Response:
        """Put a detached test back into its cell's stitched test."""
        return self._chain_change(request, attach=True)


class CellsFromLotView(APIView):
    """Cells descended from a material lot, grouped by coating recipe and anneal."""

    @extend_schema(responses=LotCellGroupSerializer(many=True))
    def get(self, request: Request, lot_id: int) -> Response:
        from samples.models import MaterialLot

        lot = scope_to_user(MaterialLot.objects.all(), user=request.user).filter(pk=lot_id).first()
        if lot is None:
            raise NotFound("no such lot")
        groups = selectors.cells_from_lot(user=request.user, lot=lot)
        return Response(LotCellGroupSerializer(groups, many=True).data)
