"""Content-addressed raw file store: ``raw/<sha[:2]>/<sha>``, written once, never modified."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from lims.ingestion import wrappers
from lims.ingestion.parsing import SNIFF_BYTES, ParseError

CHUNK = 1024 * 1024
# errno values that mean "no room" (507 Insufficient Storage) rather than "not now" (503)
_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class StorageUnavailable(OSError):
    """The store or the upload temp space cannot take or give bytes now: full, read-only,
    gone, an I/O error. Never the data's fault: an upload answers 503/507 with Retry-After,
    a job goes back to pending (``lims.taskbase.TRANSIENT_ERRORS``), never failed."""

    def __init__(self, what: str, cause: OSError) -> None:
        reason = cause.strerror or type(cause).__name__
        super().__init__(cause.errno, f"{what}: {reason}")
        self.full = cause.errno in _FULL


@contextmanager
def fault_is_storage(what: str) -> Iterator[None]:
    """Turn an OSError of our own disks (not of the client's bytes) into StorageUnavailable."""
    try:
        yield
    except StorageUnavailable:
        raise
    except OSError as exc:
        raise StorageUnavailable(what, exc) from exc


def probe(relpath: str | None = None) -> None:
    """Raise StorageUnavailable unless the store can be written (and ``relpath`` read) now.

    Asked after a job failed: a library wraps an OSError of its own writes in errors that
    look like bad data ("unreadable data: Permission denied"); when the store itself fails
    this probe, the failure was the infrastructure's.
    """
    with fault_is_storage("the file store is not writable"):
        tmp_dir = root() / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="probe-")
        try:
            os.write(fd, b"\0" * 4096)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(name)
    if relpath is not None:
        with (
            fault_is_storage("the stored raw file cannot be read"),
            absolute(relpath).open("rb") as fh,
        ):
            fh.read(1)


_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredBlob:
    sha256: str
    size: int
    relpath: str
    head: bytes


def root() -> Path:
    path = Path(settings.LIMS_STORAGE_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def raw_relpath(sha256: str) -> str:
    return f"raw/{sha256[:2]}/{sha256}"


def absolute(relpath: str) -> Path:
    return root() / relpath


class RawFileAltered(ParseError):
    """A stored raw file's bytes no longer give the sha256 it is stored (and named) under:
    the store was changed behind the application's back; restore the file from a backup."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def raw_verify(relpath: str, sha256: str | None = None) -> None:
    """Re-hash a stored raw file; raise ``RawFileAltered`` (or ``ParseError`` when it is gone)
    unless its bytes give ``sha256`` (default: its content-addressed name; a path that is not
    content addressed and no ``sha256`` given: nothing to compare with)."""
    expected = sha256 or Path(relpath).name
    if not _SHA256.fullmatch(expected):
        return
    path = absolute(relpath)
    if not path.exists():
        raise ParseError("the stored raw file is missing from the store", location=str(path))
    actual = file_sha256(path)
    if actual != expected:
        raise RawFileAltered(
            f"the stored raw file no longer matches its sha256 (stored as {expected}, its "
            f"bytes now give {actual}): the store was changed; restore it from a backup",
            location=str(path),
        )


def series_relpath(sha256: str, parser_name: str, parser_version: str, *, project_id: int) -> str:
    """Derived Parquet series sit beside the raw file, keyed by the parser that made them and
    the project: two projects holding the same bytes run two jobs (with their own mappings),
    which must not write one file."""
    return f"series/{sha256[:2]}/{sha256}.p{project_id}.{parser_name}-{parser_version}.parquet"


def store_stream(stream: IO[bytes]) -> StoredBlob:
    """Hash while copying to a temp file in the store, then move it into place atomically.

    Reads in 1 MiB chunks, so memory stays flat whatever the size. Identical bytes land on
    the same path; the second copy is dropped.
    """
    digest = hashlib.sha256()
    size = 0
    head = b""
    tmp_dir = root() / "tmp"
    tmp_dir.mkdir(exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())  # durable before the job is acknowledged
        sha = digest.hexdigest()
        rel = raw_relpath(sha)
        final = absolute(rel)
        if final.exists():
            os.unlink(tmp_name)
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, final)
        return StoredBlob(sha256=sha, size=size, relpath=rel, head=head)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def store_upload(upload: Any) -> StoredBlob:
    """Store a Django upload; one already spooled to a temp file is hashed and moved, not copied.

    StorageUnavailable when the store cannot take it (read-only, full).
    """
    with fault_is_storage("the file store cannot take this upload"):
        return _store_upload(upload)


def _store_upload(upload: Any) -> StoredBlob:
    temp_path = getattr(upload, "temporary_file_path", None)
    if temp_path is None:
        return store_stream(upload)
    src = Path(temp_path())
    sha = getattr(upload, "lims_sha256", None)  # hashed while receiving (uploads.py)
    head = getattr(upload, "lims_head", None)
    if sha is None or head is None:
        with src.open("rb") as fh:
            sha = hashlib.file_digest(fh, "sha256").hexdigest()
            fh.seek(0)
            head = fh.read(SNIFF_BYTES)
    rel = raw_relpath(sha)
    final = absolute(rel)
    size = src.stat().st_size
    if not final.exists():
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.chmod(src, 0o444)
            os.replace(src, final)  # same filesystem: a rename; Django tolerates the missing temp
        except OSError:
            with src.open("rb") as fh:
                return store_stream(fh)
    return StoredBlob(sha256=sha, size=size, relpath=rel, head=head)


def read_head(relpath: str, filename: str = "") -> bytes:
    """The head detection saw: the inner file's for a readable wrapper."""
    with absolute(relpath).open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if filename and head.startswith((wrappers.GZIP_MAGIC, *wrappers.ZIP_MAGICS)):
        try:
            wrapper = wrappers.inspect(absolute(relpath), filename, unpack_limits())
        except ParseError:
            return head
        if wrapper is not None:
            return wrapper.head
    return head


# -- compressed wrappers (wrappers.py) ------------------------------------------------


@dataclass(frozen=True)
class Sniffed:
    """What detection sees of a stored upload: the inner file's head and name if wrapped."""

    head: bytes
    filename: str
    wrapper: wrappers.Wrapper | None


def unpack_limits() -> wrappers.Limits:
    return wrappers.Limits(
        max_bytes=int(settings.LIMS_UNPACK_MAX_BYTES),
        max_ratio=float(settings.LIMS_UNPACK_MAX_RATIO),
    )


def sniff_stored(blob: StoredBlob, filename: str) -> Sniffed:
    """Head and name to detect the parser by; ParseError for a wrapper that is refused."""
    if not blob.head.startswith((wrappers.GZIP_MAGIC, *wrappers.ZIP_MAGICS)):
        return Sniffed(blob.head, filename, None)
    wrapper = wrappers.inspect(absolute(blob.relpath), filename, unpack_limits())
    if wrapper is None:
        return Sniffed(blob.head, filename, None)
    return Sniffed(wrapper.head, wrapper.inner_name, wrapper)


@contextmanager
def parse_source(relpath: str, filename: str) -> Iterator[wrappers.Source]:
    """The file a parser reads for a stored raw file: itself, or its unwrapped inner file in
    the store's ``tmp/`` (on disk, not a RAM-backed /tmp), removed on exit. Re-hashed first:
    nothing is derived from bytes that are not the ones received."""
    raw_verify(relpath)
    with wrappers.opened(absolute(relpath), filename, unpack_limits(), root() / "tmp") as src:
        yield src
