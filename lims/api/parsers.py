"""A multipart parser for the ingest endpoint that streams at disk speed.

Django's multipart parser is pure Python (~150-300 MB/s here); instruments push multi-GB
files, so the ingest endpoint parses multipart with streaming-form-data (C): the file goes
straight to a temp upload file, is hashed on the way, and the size limit is enforced while
reading. The result is an ordinary Django ``TemporaryUploadedFile`` so the services do not
care which parser ran.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from django.core.files.uploadedfile import TemporaryUploadedFile
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser, DataAndFiles
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import BaseTarget, ValueTarget

from lims.ingestion.parsing import SNIFF_BYTES

CHUNK = 1024 * 1024
FIELDS = ("kind", "cell", "run", "anneal", "project", "metadata")


class UploadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "file larger than the upload limit"
    default_code = "too_large"


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
        values = {name: ValueTarget() for name in FIELDS}
        try:
            parser = StreamingFormDataParser(headers={"Content-Type": request.content_type})
            parser.register("file", target)
            for name, value in values.items():
                parser.register(name, value)
            while stream is not None and (chunk := stream.read(CHUNK)):
                parser.data_received(chunk)
        except UploadTooLarge:
            if target.file is not None:
                target.file.close()
            raise
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
