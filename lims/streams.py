"""A write-only file object for streaming what a writer (zipfile, pyarrow) produces.

The writer writes into it; the generator around it takes the bytes away after each step, so
a download of any size holds one step's bytes at a time. No Django: the pure export code uses it.
"""

from __future__ import annotations

from typing import Any


class Spool:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0  # bytes written so far (what tell() says, as a seekless writer expects)
        self.closed = False

    def write(self, data: Any, /) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.size += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        """The bytes written since the last take."""
        out = b"".join(self.parts)
        self.parts.clear()
        return out
