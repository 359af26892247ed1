"""Request checks that every view would otherwise have to repeat."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse


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
