"""Parser protocol, shared result types and the registry.

Parsers are pure: a path on disk plus metadata in, typed dataclasses or polars frames out.
They never touch the ORM, so they can be unit-tested on real instrument files and reused
by benchmarks without Django.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

SNIFF_BYTES = 64 * 1024


class ParseError(Exception):
    """A file cannot be parsed. ``location`` says where (line, row, offset, table)."""

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def describe(self, filename: str) -> str:
        where = f" at {self.location}" if self.location else ""
        return f"{filename}{where}: {self.message}"


@dataclass(frozen=True)
class ParseContext:
    """What a parser may know about a file besides its bytes."""

    filename: str
    size: int = 0
    encoding: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Parser(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[str]  # "cycler" | "eis" | "ald_log" | "furnace_log"

    def sniff(self, head: bytes, filename: str) -> float:
        """Confidence 0..1 that this parser reads a file starting with ``head``."""
        ...

    def parse(self, path: Path, ctx: ParseContext) -> Any: ...


_REGISTRY: dict[str, Parser] = {}


def register(cls: type[Parser]) -> type[Parser]:
    """Class decorator: one instance per parser name."""
    instance = cls()
    if cls.name in _REGISTRY:
        raise RuntimeError(f"duplicate parser name {cls.name!r}")
    _REGISTRY[cls.name] = instance
    return cls


def all_parsers() -> Iterable[Parser]:
    _load_builtin()
    return list(_REGISTRY.values())


def get_parser(name: str) -> Parser:
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ParseError(f"no parser named {name!r}") from None


def detect_parser(head: bytes, filename: str, kind: str | None = None) -> Parser | None:
    """Best parser by sniff confidence (ties: registration order); None when nothing fits."""
    best: tuple[float, Parser] | None = None
    for parser in all_parsers():
        if kind and parser.kind != kind:
            continue
        score = parser.sniff(head, filename)
        if score > 0 and (best is None or score > best[0]):
            best = (score, parser)
    return best[1] if best else None


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import cells.parsers  # noqa: F401  (registers cycler parsers)
    import depositions.aldlogs.parsers  # noqa: F401  (registers ALD tool-log parsers)
