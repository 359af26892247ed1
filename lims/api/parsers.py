"""A multipart parser for the ingest endpoint that streams at disk speed.

Django's multipart parser is pure Python (~150-300 MB/s here); instruments push multi-GB
files, so the ingest endpoint parses multipart with streaming-form-data (C): the file goes
straight to a temp upload file, is hashed on the way, and the size limit is enforced while
reading. The result is an ordinary Django ``TemporaryUploadedFile`` so the services do not
care which parser ran.

Nothing else a client sends is held in memory unbounded: each form field is capped at
``LIMS_FORM_FIELD_MAX_BYTES`` and so are the part headers and unknown parts together (the C
parser buffers a header line whole); the default JSON, form and Django multipart parsers of
every other endpoint are capped at ``DATA_UPLOAD_MAX_MEMORY_SIZE``. Over a cap: 413.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser, DataAndFiles, FormParser, JSONParser, MultiPartParser
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import BaseTarget, ValueTarget

from lims.changelog import note_reason
from lims.fields import find_nul
from lims.ingestion.parsing import SNIFF_BYTES
from lims.ingestion.storage import StorageUnavailable

CHUNK = 1024 * 1024
FIELDS = ("kind", "cell", "sample", "temperature_c", "run", "anneal", "project", "metadata")


class UploadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "file larger than the upload limit"
    default_code = "too_large"


class BodyTooLarge(UploadTooLarge):
    """A form field, the form's headers or a non-file request body over its cap."""


class _FieldTarget(ValueTarget):
    """Keeps one form field in memory, at most ``limit`` bytes (repeats add up)."""

    def __init__(self, name: str, limit: int) -> None:
        super().__init__()
        self.name = name
        self.limit = limit
        self.size = 0

    def on_data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise BodyTooLarge(
                f"form field {self.name!r} is larger than {self.limit} bytes; "
                "send large content as the file"
            )
        super().on_data_received(chunk)


class _UploadTarget(BaseTarget):
    """Writes one file part to a temp upload file, hashing and bounding it."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.file: TemporaryUploadedFile | None = None
        self.size = 0
        self.digest = hashlib.sha256()
        self.head = b""

    def on_start(self) -> None:
        self.file = TemporaryUploadedFile(
            self.multipart_filename or "upload",
            self.multipart_content_type or "application/octet-stream",
            0,
            None,
        )

    def on_data_received(self, chunk: bytes) -> None:
        assert self.file is not None
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadTooLarge()
        self.digest.update(chunk)
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
        self.file.write(chunk)

    def on_finish(self) -> None:
        assert self.file is not None
        self.file.flush()
        # Durable before we answer 202: an acknowledged raw file must survive a crash.
        os.fsync(self.file.fileno())
        self.file.seek(0)
        self.file.size = self.size
        self.file.lims_sha256 = self.digest.hexdigest()  # type: ignore[attr-defined]
        self.file.lims_head = self.head  # type: ignore[attr-defined]


class StreamingMultiPartParser(BaseParser):
    media_type = "multipart/form-data"

    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> DataAndFiles:
        request = (parser_context or {})["request"]
        target = _UploadTarget(settings.LIMS_UPLOAD_MAX_BYTES)
        limit = settings.LIMS_FORM_FIELD_MAX_BYTES
        values = {name: _FieldTarget(name, limit) for name in FIELDS}
        fed = 0
        try:
            parser = StreamingFormDataParser(headers={"Content-Type": request.content_type})
            parser.register("file", target)
            for name, value in values.items():
                parser.register(name, value)
            while stream is not None and (chunk := stream.read(CHUNK)):
                parser.data_received(chunk)
                fed += len(chunk)
                # what reached no target: boundaries, part headers, unknown fields
                overhead = fed - target.size - sum(v.size for v in values.values())
                if overhead > limit:
                    raise BodyTooLarge(
                        f"multipart part headers and unknown fields are larger than {limit} "
                        "bytes together"
                    )
        except UploadTooLarge:
            if target.file is not None:
                target.file.close()
            raise
        except OSError as exc:  # our temp space (full, read-only), not the client's body
            if target.file is not None:
                with contextlib.suppress(OSError):
                    target.file.close()
            raise StorageUnavailable("the upload temp space cannot take this upload", exc) from exc
        except Exception as exc:
            if target.file is not None:
                target.file.close()
            raise exceptions.ParseError(f"malformed multipart body: {exc}") from exc
        data = QueryDict(mutable=True)
        for name, value in values.items():
            if value.multipart_filename is None and value.value:
                data[name] = value.value.decode("utf-8", errors="replace")
        files: MultiValueDict[str, Any] = MultiValueDict()
        if target.file is not None and target._finished:
            files["file"] = target.file
        return DataAndFiles(data, files)


def _read_capped(stream: IO[bytes] | None) -> bytes:
    """The whole body, refusing it as soon as it passes ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    parts: list[bytes] = []
    size = 0
    while stream is not None and (chunk := stream.read(min(CHUNK, limit + 1 - size))):
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(
                f"request body larger than {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE); "
                "send large content as a file"
            )
    return b"".join(parts)


def _refuse_nul(data: Any, escape: str) -> None:
    """A NUL character in a field name or value is a 400: PostgreSQL can neither store nor
    compare it (a related field's lookup with one was a 500)."""
    if isinstance(data, MultiValueDict):
        data = dict(data.lists())
    if (place := find_nul(data, "body")) is not None:
        raise exceptions.ParseError(f"{place}: contains a NUL character ({escape}), not allowed")


class CappedJSONParser(JSONParser):
    """DRF's JSON parser reads the whole body whatever its size, and a deeply nested one
    is a RecursionError (a 500): capped, and that is a 400. A NUL character anywhere (a
    ``\\u0000`` in JSON metadata, say) is a 400 too: PostgreSQL cannot store it."""

    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        body = io.BytesIO(_read_capped(stream))
        try:
            data = super().parse(body, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from exc
        _refuse_nul(data, "\\u0000")
        note_reason((parser_context or {}).get("request"), data)
        return data


class CappedFormParser(FormParser):
    """DRF's urlencoded parser reads the whole body whatever its size: capped. NUL: a 400."""

    def parse(
        self,
        stream: IO[bytes] | None,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        data = super().parse(io.BytesIO(_read_capped(stream)), media_type, parser_context)
        _refuse_nul(data, "%00")
        note_reason((parser_context or {}).get("request"), data)
        return data


class CappedMultiPartParser(MultiPartParser):
    """Django's multipart parser caps the fields (``DATA_UPLOAD_MAX_MEMORY_SIZE``) with a
    SuspiciousOperation, which DRF does not know: told as a 413 / 400 in the API's words. A NUL
    in a field or a file name: a 400."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> DataAndFiles:
        try:
            parsed = super().parse(stream, media_type, parser_context)
        except RequestDataTooBig as exc:
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            raise BodyTooLarge(
                f"form fields larger than {limit} bytes together "
                "(DATA_UPLOAD_MAX_MEMORY_SIZE); send large content as a file"
            ) from exc
        except (TooManyFieldsSent, TooManyFilesSent) as exc:
            raise exceptions.ParseError(f"Multipart form parse error - {exc}") from exc
        _refuse_nul(parsed.data, "%00")
        _refuse_nul({k: [f.name for f in fs] for k, fs in parsed.files.lists()}, "%00")
        note_reason((parser_context or {}).get("request"), parsed.data)
        return parsed
