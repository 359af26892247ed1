"""Is a file complete? Size and mtime unchanged for a while, and no writer holds it.

Instrument software writes files in place, often for days (a running test), sometimes onto a
share that drops out. A file is *settled* when its size and mtime have not changed for the
folder's ``settle_seconds``; it is then checked for a writer that still holds it:

- Windows: an exclusive open (``CreateFileW`` with share mode 0) fails with a sharing
  violation while any other process has the file open. Cycler software keeps its data file
  open while the test runs, so a locked file waits. (A virus scanner or Explorer's preview
  holding it briefly also counts: the file waits for the next look.)
- POSIX: no mandatory locks. The file is opened for reading and a non-blocking shared
  ``flock`` and ``lockf`` are tried: a writer that takes an exclusive advisory lock (flock
  or fcntl, as Samba does for a Windows client's share mode when ``kernel share modes`` is
  on) is seen. A writer that takes none is seen only through the settle time, and through
  the size: the open file's size must equal the settled size.

A file that is still written after all (it changes while it is hashed or sent) is noticed by
its size/mtime or its SHA-256 and taken again as a new version.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Seen:
    """A file's size and mtime at one look."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Seen:
        st = path.stat()
        return cls(size=st.st_size, mtime_ns=st.st_mtime_ns)


def settled(first_seen_at: float, now: float, settle_seconds: float) -> bool:
    """The same size and mtime since ``first_seen_at`` (wall clock), for long enough."""
    return now - first_seen_at >= settle_seconds


def locked(path: Path, expected: Seen) -> str | None:
    """Why the file cannot be taken yet (a writer holds it, it changed), or None."""
    if sys.platform == "win32":
        return _locked_windows(path, expected)
    return _locked_posix(path, expected)


def _locked_posix(path: Path, expected: Seen) -> str | None:
    import fcntl

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return f"cannot open for reading: {exc.strerror}"
    try:
        for name, take, drop in (
            (
                "flock",
                lambda: fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB),
                lambda: fcntl.flock(fd, fcntl.LOCK_UN),
            ),
            (
                "lockf",
                lambda: fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB),
                lambda: fcntl.lockf(fd, fcntl.LOCK_UN),
            ),
        ):
            try:
                take()
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    return f"a writer holds an exclusive {name} lock"
                if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    continue  # the file system has no such locks (some network mounts)
                raise
            with contextlib.suppress(OSError):
                drop()
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if (st.st_size, st.st_mtime_ns) != (expected.size, expected.mtime_ns):
        return "changed since it settled"
    return None


def _locked_windows(path: Path, expected: Seen) -> str | None:  # pragma: no cover - Windows
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    create = kernel32.CreateFileW
    create.argtypes = [
        wintypes.LPCWSTR,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.LPVOID,
        wintypes.DWORD,
        wintypes.DWORD,
        wintypes.HANDLE,
    ]
    create.restype = wintypes.HANDLE
    generic_read, open_existing, share_none = 0x80000000, 3, 0
    handle = create(str(path), generic_read, share_none, None, open_existing, 0x80, None)
    if handle == wintypes.HANDLE(-1).value:
        code = ctypes.get_last_error()  # type: ignore[attr-defined]
        if code in (32, 33):  # ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION
            return "another process has it open (sharing violation)"
        return f"cannot open it exclusively (Windows error {code})"
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    kernel32.CloseHandle(handle)
    try:
        now = Seen.of(path)
    except OSError as exc:
        return f"cannot stat: {exc.strerror}"
    return None if now == expected else "changed since it settled"
