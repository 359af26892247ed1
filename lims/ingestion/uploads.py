"""Upload handler: stream every upload to a temp file, hash it on the way, stop at the limit.

Non-file fields are Django's to bound (``DATA_UPLOAD_MAX_MEMORY_SIZE``); ``bad_request`` says
so when it happens instead of a bare "Bad Request (400)".
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadhandler import StopUpload, TemporaryFileUploadHandler
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from lims.ingestion.parsing import SNIFF_BYTES


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """Never holds an upload in memory; flags the request when it exceeds the limit.

    Large chunks keep Django's multipart parser out of its per-chunk Python overhead, and
    hashing while receiving spares a second read of a multi-GB file before it is stored.
    """

    chunk_size = 4 * 1024 * 1024

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self._digest = hashlib.sha256()
        self._head = b""

    def receive_data_chunk(self, raw_data: bytes, start: int) -> Any:
        if start + len(raw_data) > settings.LIMS_UPLOAD_MAX_BYTES:
            if self.request is not None:
                self.request.lims_upload_too_large = True  # type: ignore[attr-defined]
            raise StopUpload(connection_reset=False)
        self._digest.update(raw_data)
        if len(self._head) < SNIFF_BYTES:
            self._head += raw_data[: SNIFF_BYTES - len(self._head)]
        return super().receive_data_chunk(raw_data, start)

    def file_complete(self, file_size: int) -> Any:
        upload = super().file_complete(file_size)
        if upload is not None:
            upload.lims_sha256 = self._digest.hexdigest()  # type: ignore[attr-defined]
            upload.lims_head = self._head  # type: ignore[attr-defined]
        return upload


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """``handler400``: a form over Django's caps is told what and which limit (413 / 400).

    Django raises these while reading the body (in the CSRF middleware, before any view).
    """
    if isinstance(exception, RequestDataTooBig):
        status = 413
        message = (
            f"The form's fields are larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
            "together (DATA_UPLOAD_MAX_MEMORY_SIZE); send large content as a file."
        )
    elif isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        status = 400
        message = f"The form has too many fields or files: {exception}."
    else:
        return defaults.bad_request(request, exception)  # type: ignore[arg-type]
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=status)
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
