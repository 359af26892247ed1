"""CSV export of any list page: the same filtered queryset, streamed row by row."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_response(
    filename: str, columns: list[tuple[str, Callable[[Any], Any]]], rows: Iterable[Any]
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow([name for name, _ in columns])
        for row in rows:
            yield writer.writerow(["" if (v := get(row)) is None else v for _, get in columns])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
