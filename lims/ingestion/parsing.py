"""The parser contract: protocol, context and the one error type parsers raise.

Parsers are pure: a path on disk plus a ``ParseContext`` in, typed dataclasses or polars
frames out. They never touch the ORM, so they run in unit tests and benchmarks without Django.
This module imports nothing of the project: every parser family can depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

SNIFF_BYTES = 64 * 1024


class ParseError(Exception):
    """A file cannot be parsed. ``location`` says where (line, row, offset, table)."""

    def __init__(
        self, message: str, *, location: str | None = None, unreadable_value: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        # a value the table reader could not read as its column's type: perhaps a
        # placeholder ("N/A", "-") in a large file read without them (ParseContext)
        self.unreadable_value = unreadable_value

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
    # Read placeholder values ("N/A", "-", "NaN"...) as empty. None: a large text table is
    # read without them unless its first rows show one (matching each value against them
    # costs the table reader ~45 %); a job whose later rows hold one is read again with True.
    placeholders: bool | None = None


@runtime_checkable
class Parser(Protocol):
    """A file format reader. ``sniff`` scores a file's head; the registry picks the best.

    ``specificity`` breaks equal scores: a reader of one vendor's format (1, the default)
    beats a generic one that reads any table with a column map (0).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    kind: ClassVar[str]  # "cycler" | "eis" | "ald_log" | "furnace_log"

    def sniff(self, head: bytes, filename: str) -> float:
        """Confidence 0..1 that this parser reads a file starting with ``head``."""
        ...

    def parse(self, path: Path, ctx: ParseContext) -> Any: ...
