"""Real storage faults for the tests: a small tmpfs that can be filled or made read-only.

Needs root (CAP_SYS_ADMIN) for ``mount``, as CI's container has; without it the read-only
fault falls back to a directory without write permission (same EACCES path in the code), and
``full`` says why it cannot run.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _can_mount() -> bool:
    return os.geteuid() == 0


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@contextmanager
def tmpfs(path: Path, size: str = "16m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at ``path`` (a plain directory without mount rights)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _can_mount()
    if mounted:
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path))
    try:
        yield path
    finally:
        if mounted:
            _run("umount", "-l", str(path))


def read_only(path: Path, on: bool = True) -> None:
    """Make the tmpfs at ``path`` read-only (EROFS), or writable again."""
    if _can_mount():
        _run("mount", "-o", f"remount,{'ro' if on else 'rw'}", str(path))
        return
    for here, dirs, _ in os.walk(path):
        for name in [".", *dirs]:
            os.chmod(Path(here) / name, 0o555 if on else 0o755)


def fill(path: Path) -> None:
    """Fill the tmpfs at ``path`` to its last byte (ENOSPC for the next write)."""
    if not _can_mount():
        raise RuntimeError("filling a disk needs a tmpfs: run this suite as root (CI does)")
    fd = os.open(path / "ballast", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for size in (65536, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
