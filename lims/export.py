"""CSV export of any list page: the same filtered queryset, streamed row by row."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse


class _Echo:
    def write(self, value: str) -> str:
        return value


# OWASP "CSV injection": a spreadsheet runs a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """One CSV cell, safe to open in a spreadsheet: a text cell that a spreadsheet would run
    as a formula gets a leading apostrophe (shown as text, OWASP advice). Numbers are left
    alone, so -1.5 stays a number; None is an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_response(
    filename: str, columns: list[tuple[str, Callable[[Any], Any]]], rows: Iterable[Any]
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow([csv_cell(name) for name, _ in columns])
        for row in rows:
            yield writer.writerow([csv_cell(get(row)) for _, get in columns])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# -- downloads of stored and derived files --------------------------------------------------


def provenance_headers(response: Any, provenance: dict[str, Any]) -> None:
    """Where a derived file came from, in headers that survive any file format (a CSV gets no
    comment line: BDF forbids one and most readers choke on it). ASCII-only JSON."""
    import json

    if provenance.get("raw_sha256"):
        response["X-LIMS-Raw-SHA256"] = provenance["raw_sha256"]
    if provenance.get("parser"):
        response["X-LIMS-Parser"] = f"{provenance['parser']} {provenance.get('parser_version', '')}"
    response["X-LIMS-Provenance"] = json.dumps(provenance, default=str, ensure_ascii=True)


def stream_download(
    chunks: Iterable[bytes],
    *,
    filename: str,
    content_type: str,
    provenance: dict[str, Any],
    described_by: str = "",
) -> StreamingHttpResponse:
    """A derived file streamed as it is made; ``described_by`` links the JSON of its source."""
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    provenance_headers(response, provenance)
    if described_by:
        response["Link"] = f'<{described_by}>; rel="describedby"'
    return response


def raw_download(*, path: Any, filename: str, sha256: str, content_type: str = "") -> Any:
    """A stored raw file, byte-identical, with its sha256 as the ETag and as ``Repr-Digest``
    (RFC 9530: base64 of the digest) and ``X-LIMS-Raw-SHA256`` (hex)."""
    import base64

    from django.http import FileResponse

    response = FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=filename,
        content_type=content_type or "application/octet-stream",
    )
    response["ETag"] = f'"{sha256}"'
    response["Repr-Digest"] = f"sha-256=:{base64.b64encode(bytes.fromhex(sha256)).decode()}:"
    response["X-LIMS-Raw-SHA256"] = sha256
    return response


def eln_download(crate: Any) -> StreamingHttpResponse:
    """An ``.eln`` (``lims.eln.Crate``) streamed as it is zipped."""
    from lims.eln import eln_stream

    response = StreamingHttpResponse(eln_stream(crate), content_type="application/vnd.eln+zip")
    response["Content-Disposition"] = f'attachment; filename="{crate.folder}.eln"'
    return response
