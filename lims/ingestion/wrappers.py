"""Compressed wrappers (``.gz``, single-member ``.zip``): sniffed and read inside, bounded.

The raw-file store keeps what was uploaded (its sha256 is that of the wrapper). Detection
uses the inner file's head and name; at parse time the inner file is inflated as a stream to
a temporary file beside the store (never into memory) and the parser reads that path.

Nothing a wrapper declares is trusted: the member count is read from the zip's end record
before its directory is parsed, and the inflated bytes are counted as they are written, so a
bomb stops at the limit with memory flat. Zips that are themselves a format (Neware
``.ndax``, XLSX/ODF) are not unwrapped; their declared sizes are still bounded before a
reader opens them (Python's ``zipfile`` never yields more than a member declares).

One level only: a ``.zip`` inside a ``.gz`` is not opened again. No Django here: the limits
come from the caller (``storage.unpack_limits``).
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, BinaryIO, cast

from lims.ingestion.parsing import SNIFF_BYTES, ParseError

GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a local header, or the end record of an empty zip
# Zip-based formats read as they are (their readers open the members they need).
CONTAINER_SUFFIXES = (".ndax", ".xlsx", ".xlsm", ".xltx", ".ods", ".docx", ".odt")
# Members a zip tool adds beside the file (macOS Finder, Windows Explorer): not data.
_SIDECAR_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
MAX_MEMBERS = 10_000  # far above any instrument container; each member costs a directory entry
RATIO_FLOOR_BYTES = 64 * 1024 * 1024  # a ratio limit never refuses an inflated size below this
CHUNK = 1024 * 1024
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


@dataclass(frozen=True)
class Limits:
    """How far a wrapper or container may inflate: bytes, and a multiple of its own size."""

    max_bytes: int
    max_ratio: float = 0.0  # 0: no ratio limit

    def for_size(self, compressed: int) -> int:
        if self.max_ratio <= 0:
            return self.max_bytes
        return min(self.max_bytes, max(int(self.max_ratio * compressed), RATIO_FLOOR_BYTES))


@dataclass(frozen=True)
class Wrapper:
    """A wrapper found around an upload: what is inside and the head to sniff it by."""

    kind: str  # "gzip" | "zip"
    inner_name: str
    member: str | None  # the zip member as written in the archive
    declared_size: int | None  # what the wrapper claims (zip header; gzip's is mod 2**32)
    head: bytes

    def provenance(self) -> dict[str, Any]:
        return {
            "wrapper": self.kind,
            "inner_name": self.inner_name,
            "member": self.member,
            "declared_size": self.declared_size,
        }


@dataclass(frozen=True)
class Source:
    """What a parser reads: the stored file itself, or the inflated inner file."""

    path: Path
    filename: str
    size: int
    unwrapped: dict[str, Any] | None  # provenance with the counted inner size, if unwrapped


def inspect(path: Path, filename: str, limits: Limits) -> Wrapper | None:
    """The wrapper around ``path`` (None for a plain file or a zip that is a format).

    Reads the head of the inner file only. Raises ParseError for a wrapper that cannot be
    read or is refused (too many members, several data files, declared size over the limit).
    """
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic.startswith(GZIP_MAGIC):
        return _inspect_gzip(path, filename)
    if magic in ZIP_MAGICS:
        return _inspect_zip(path, filename, limits)
    return None


def _inner_gzip_name(path: Path, filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name
    for suffix in (".gz", ".gzip"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    if name.lower().endswith(".tgz"):
        return name[:-4] + ".tar"
    stored = _gzip_fname(path)  # the name gzip recorded, when the upload's lacks a suffix
    return stored or name


def _gzip_fname(path: Path) -> str | None:
    """FNAME from the gzip header (RFC 1952), read from a bounded head."""
    with path.open("rb") as handle:
        head = handle.read(4096)
    if len(head) < 10 or not head[3] & 0x08:
        return None
    pos = 10
    if head[3] & 0x04:  # FEXTRA
        if len(head) < 12:
            return None
        pos += 2 + struct.unpack("<H", head[10:12])[0]
    end = head.find(b"\x00", pos)
    if end < 0:
        return None
    name = PurePosixPath(head[pos:end].decode("latin-1").replace("\\", "/")).name
    return name or None


def _inspect_gzip(path: Path, filename: str) -> Wrapper:
    inner = _inner_gzip_name(path, filename)
    try:
        with gzip.open(path, "rb") as stream:
            head = stream.read(SNIFF_BYTES)  # GzipFile inflates at most what is asked for
    except (OSError, EOFError, zlib.error) as exc:
        raise ParseError(f"not a readable gzip stream: {exc}", location="gzip header") from exc
    declared = None
    size = path.stat().st_size
    if size >= 18:
        with path.open("rb") as handle:
            handle.seek(size - 4)
            declared = struct.unpack("<I", handle.read(4))[0]
    return Wrapper("gzip", inner, None, declared, head)


def zip_member_count(handle: IO[bytes]) -> int:
    """Entries the zip's end record declares, read before ``zipfile`` parses the directory."""
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    tail_len = min(size, 22 + 65535)
    handle.seek(size - tail_len)
    tail = handle.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise ParseError("not a readable zip: no end-of-directory record", location="zip end")
    entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    if entries == 0xFFFF and at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR:
        record = struct.unpack("<Q", tail[at - 12 : at - 4])[0]
        handle.seek(record)
        zip64 = handle.read(56)
        if len(zip64) == 56 and zip64[:4] == b"PK\x06\x06":
            entries = struct.unpack("<Q", zip64[32:40])[0]
    return int(entries)


def _is_sidecar(info: zipfile.ZipInfo) -> bool:
    name = info.filename.replace("\\", "/")
    base = PurePosixPath(name).name
    return (
        info.is_dir()
        or name.startswith("__MACOSX/")
        or base.startswith("._")
        or base.lower() in _SIDECAR_NAMES
    )


def _open_zip(path: Path, filename: str) -> zipfile.ZipFile:
    with path.open("rb") as handle:
        count = zip_member_count(handle)
    if count > MAX_MEMBERS:
        raise ParseError(
            f"the zip declares {count} members, more than the {MAX_MEMBERS} allowed",
            location="zip directory",
        )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(f"not a readable zip: {exc}", location="zip directory") from exc


def _inspect_zip(path: Path, filename: str, limits: Limits) -> Wrapper | None:
    if filename.lower().endswith(CONTAINER_SUFFIXES):
        return None
    with _open_zip(path, filename) as archive:
        infos = archive.infolist()
        data = [info for info in infos if not _is_sidecar(info)]
        if len(data) != 1:
            if filename.lower().endswith(".zip"):
                names = ", ".join(info.filename for info in data[:20])
                more = f" and {len(data) - 20} more" if len(data) > 20 else ""
                raise ParseError(
                    f"a .zip upload must hold one data file; this one holds {len(data)}: "
                    f"{names or 'none'}{more}. Upload them one by one.",
                    location="zip directory",
                )
            return None  # a zip-based format (several members): its parser reads it
        member = data[0]
        _check_declared(member.filename, member.file_size, limits, path.stat().st_size)
        try:
            with archive.open(member) as stream:
                head = stream.read(SNIFF_BYTES)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
            raise ParseError(
                f"cannot read member {member.filename!r}: {exc}", location="zip member"
            ) from exc
    inner = PurePosixPath(member.filename.replace("\\", "/")).name
    return Wrapper("zip", inner, member.filename, member.file_size, head)


def _check_declared(member: str, declared: int, limits: Limits, compressed: int) -> None:
    limit = limits.for_size(compressed)
    if declared > limit:
        raise ParseError(
            f"member {member!r} declares {declared} bytes uncompressed, over the limit of "
            f"{limit} bytes (LIMS_UNPACK_MAX_BYTES / LIMS_UNPACK_MAX_RATIO)",
            location=f"member {member!r}",
        )


def check_container(path: Path, limits: Limits) -> None:
    """Bound a zip-based format (.ndax, XLSX) before its reader opens it: member count and
    declared total size."""
    with path.open("rb") as handle:
        if handle.read(4) not in ZIP_MAGICS:
            return
    with _open_zip(path, path.name) as archive:
        infos = archive.infolist()
    total = sum(info.file_size for info in infos)
    limit = limits.for_size(path.stat().st_size)
    if total > limit:
        largest = max(infos, key=lambda info: info.file_size)
        raise ParseError(
            f"the zip's {len(infos)} members declare {total} bytes uncompressed (largest: "
            f"{largest.filename!r}, {largest.file_size} bytes), over the limit of {limit} bytes "
            "(LIMS_UNPACK_MAX_BYTES / LIMS_UNPACK_MAX_RATIO)",
            location="zip directory",
        )


@contextmanager
def opened(path: Path, filename: str, limits: Limits, tmp_dir: Path) -> Iterator[Source]:
    """The file a parser should read: ``path`` itself, or its inner file inflated to a
    temporary file in ``tmp_dir`` (removed on exit) with the bytes counted against the limit."""
    wrapper = inspect(path, filename, limits)
    if wrapper is None:
        check_container(path, limits)
        yield Source(path, filename, path.stat().st_size, None)
        return
    limit = limits.for_size(path.stat().st_size)
    where = f"member {wrapper.member!r}" if wrapper.member else f"inner file {wrapper.inner_name!r}"
    suffix = PurePosixPath(wrapper.inner_name).suffix[:16]
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="unwrapped-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as out:
            size = _inflate(path, wrapper, out, limit, where)
        inner = Path(name)
        check_container(inner, limits)  # e.g. an .ndax that was gzipped
        yield Source(inner, wrapper.inner_name, size, {**wrapper.provenance(), "size": size})
    finally:
        os.unlink(name)


def _inflate(path: Path, wrapper: Wrapper, out: IO[bytes], limit: int, where: str) -> int:
    written = 0
    try:
        with _inner_stream(path, wrapper) as stream:
            while chunk := stream.read(CHUNK):
                written += len(chunk)
                if written > limit:
                    raise ParseError(
                        f"{where} inflates past the limit of {limit} bytes (a compression "
                        "bomb, or a file too large to ingest; LIMS_UNPACK_MAX_BYTES / "
                        "LIMS_UNPACK_MAX_RATIO)",
                        location=where,
                    )
                out.write(chunk)
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise ParseError(
            f"{where} cannot be inflated after {written} bytes (truncated or corrupt "
            f"{wrapper.kind}): {exc}",
            location=where,
        ) from exc
    return written


@contextmanager
def _inner_stream(path: Path, wrapper: Wrapper) -> Iterator[BinaryIO]:
    if wrapper.kind == "gzip":
        with gzip.open(path, "rb") as stream:
            yield cast(BinaryIO, stream)
        return
    with zipfile.ZipFile(path) as archive, archive.open(wrapper.member or "") as member:
        yield cast(BinaryIO, member)
