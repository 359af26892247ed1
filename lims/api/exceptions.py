"""The API's exception handler: DRF's, with every error text bounded.

DRF echoes input in some messages (``"<value>" is not a valid choice.``), and a service's
ValidationError may quote what it was given; a request body can be megabytes, so an error
reply could be too. Each string of an error reply keeps its head and tail
(``lims.ingestion.errors.bound_text``).
"""

from __future__ import annotations

from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, ErrorDetail
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from lims.ingestion.errors import bound_text
from lims.ingestion.storage import StorageUnavailable

DETAIL_MAX_CHARS = 1000
# A storage fault is usually mended by a person (space freed, a mount back): a minute.
STORAGE_RETRY_AFTER_S = 60


class StorageFault(APIException):
    """503 (or 507 when full) with ``Retry-After``: our disks failed, not the request.

    DRF writes ``Retry-After`` from ``wait``. Nothing was recorded; the client sends the same
    request again later.
    """

    status_code: int = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "storage_unavailable"

    def __init__(self, cause: StorageUnavailable) -> None:
        super().__init__(f"{cause.strerror}; nothing was stored, send it again later")
        if cause.full:
            self.status_code = status.HTTP_507_INSUFFICIENT_STORAGE
            self.default_code = "insufficient_storage"
        self.wait = STORAGE_RETRY_AFTER_S


def _bounded(data: Any) -> Any:
    if isinstance(data, ErrorDetail):
        return ErrorDetail(bound_text(str(data), DETAIL_MAX_CHARS), code=data.code)
    if isinstance(data, str):
        return bound_text(data, DETAIL_MAX_CHARS)
    if isinstance(data, dict):
        return {bound_text(str(k), DETAIL_MAX_CHARS): _bounded(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_bounded(v) for v in data]
    return data


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, StorageUnavailable):
        exc = StorageFault(exc)
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = _bounded(response.data)
    return response
