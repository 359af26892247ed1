"""Request checks that every view would otherwise have to repeat."""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

log = logging.getLogger(__name__)


class RejectNulMiddleware:
    """A NUL character in the path or the query string is refused with a 400 before any view
    runs: PostgreSQL cannot compare or store it, so a lookup such as ``/api/v1/cells/A%00/``
    ended in a 500. JSON bodies are checked by the API's JSON parser, form fields by their
    fields, ingest file names and metadata by ``ingest_submit``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        raw_query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or b"\x00" in unquote_to_bytes(raw_query):
            place = "path" if "\x00" in request.path_info else "query string"
            message = f"the {place} contains a NUL character (%00), not allowed"
            if request.path_info.startswith("/api/"):
                return JsonResponse({"detail": message}, status=400)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


# A database restart or failover takes seconds: ask the client back soon.
DATABASE_RETRY_AFTER_S = 10


class DatabaseUnavailableMiddleware:
    """A view that meets a connection-level database error (the server restarting, a
    failover, a dropped connection) answers 503 with ``Retry-After``, not 500: the request
    was fine and may be sent again as it is. Whatever the view had written is rolled back with
    its transaction; an upload's raw file may be kept, and the retry finds it by its hash."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("database unavailable for %s %s", request.method, request.path, exc_info=True)
        message = "the database is unavailable for a moment; send the same request again later"
        if request.path_info.startswith("/api/"):
            response: HttpResponse = JsonResponse({"detail": message}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_S)
        return response
