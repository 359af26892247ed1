"""``GET /api/v1/explorer/``: the explorer's rows, sources and plot for a query string."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cells.explorer.selectors import columns_payload
from cells.explorer.views import explorer_data, query_of

_PARAMS = [
    OpenApiParameter("x", str, description="numeric column key of the x axis"),
    OpenApiParameter("y", str, description="numeric column key of the y axis"),
    OpenApiParameter("color", str, description="column key to group and colour by"),
    OpenApiParameter("plot", str, enum=["scatter", "box"]),
    OpenApiParameter(
        "f", str, many=True, description="filter column:op:value (op: eq ne lt le gt ge has)"
    ),
    OpenApiParameter("cell", str, many=True, description="cell codes to overlay"),
    OpenApiParameter("cycle", int, description="cycle of the voltage-capacity overlay"),
]


class ExplorerView(APIView):
    """Cells with process variables from their lineage and metrics from their records; each
    row's ``sources`` says where every value came from."""

    @extend_schema(parameters=_PARAMS, responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        query = query_of(request._request)
        data = explorer_data(request.user, query)
        table = data["table"]
        return Response(
            {
                "query": query.querystring(),
                "errors": list(query.errors),
                "count": len(table),
                "columns": columns_payload(),
                "rows": [
                    {"values": row, "sources": src}
                    for row, src in zip(table.rows, table.sources, strict=True)
                ],
                "plot": data["plot"],
                "capacity_overlay": data["capacity"],
                "voltage_overlay": data["voltage"],
            }
        )
