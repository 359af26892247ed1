"""Bounded error texts: a message may quote what a file or a client sent, which can be huge.

A failed job once quoted a 12.4 MB field, and ``GET /api/v1/jobs/<id>/`` returned 12.4 MB.
``bound_text`` keeps the head (what went wrong, where) and the tail (the end of a quoted
value, a location appended last) around a marker saying how much was cut. Django-free, so
parsers, services and models can all use it. ``IngestionJob.save`` applies it to ``error``;
code writing ``error`` through ``QuerySet.update`` must call it itself.
"""

from __future__ import annotations

from typing import Any

ERROR_MAX_CHARS = 4000
QUOTE_MAX_CHARS = 200


def bound_text(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """``text`` if it fits in ``limit`` characters, else its head and tail around
    ``[... N chars cut ...]`` (N = characters removed); the result never exceeds ``limit``."""
    if len(text) <= limit:
        return text
    # the marker's width depends on N, which depends on the marker: size it for the worst N
    width = len(f" [... {len(text)} chars cut ...] ")
    if limit <= width:
        return text[:limit]
    keep = limit - width
    head = keep * 2 // 3
    tail = keep - head
    cut = len(text) - head - tail
    marker = f" [... {cut} chars cut ...] "
    return text[:head] + marker + text[len(text) - tail :]


def quote(value: Any, limit: int = QUOTE_MAX_CHARS) -> str:
    """``repr(value)`` for an error message, bounded: user input echoed back stays small."""
    return bound_text(repr(value), limit)
