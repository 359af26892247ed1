"""Sidecar files: they describe a cycling test but hold no data of their own.

Arbin writes ``<test>_Metadata.csv`` next to ``<test>.csv`` (one row: test and channel ids,
schedule, start and end times); EC-Lab/BT-Lab keep the settings of a run in ``<run>.mps`` next to
its data files ``<run>_C01.mpr``, ``<run>_02_GCPL_C01.mpr``...; Novonix can save the summary and
protocol blocks of a run without its data. These parsers read such a file into a
``SidecarData``: what it says, and the file-name keys of the tests it belongs to. A sidecar is
never a cycling test; ``cells.sidecars`` stores it and attaches it to its tests.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cells.parsers.novonix import (
    header_only,
    novonix_has_no_data,
    protocol_lines,
    summary_fields,
    summary_metadata,
)
from cells.parsers.units import split_label
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError
from lims.ingestion.text import binary_offset, detect_encoding, sniff_lines

# A sidecar is small; anything larger is not one and is never read into memory whole.
MAX_SIDECAR_BYTES = 2 * 1024 * 1024


@dataclass
class SidecarData:
    """A sidecar file read: what it says and which tests it describes.

    ``keys`` are lower-cased file-name stems of the tests it belongs to; a key ending in ``_``
    matches every stem that starts with it (a BioLogic settings file covers all the run's
    technique and channel files).
    """

    sidecar_kind: str
    vendor: str
    keys: list[str]
    content: dict[str, Any]
    channel: str = ""
    warnings: list[str] = field(default_factory=list)


def stem_key(name: str) -> str:
    """The comparison key of a file name: its stem, lower-cased, Windows folders dropped."""
    return Path(name.replace("\\", "/")).stem.strip().lower()


def key_matches(stem: str, key: str) -> bool:
    return stem == key or (key.endswith("_") and stem.startswith(key))


def _read_small(path: Path, ctx: ParseContext) -> str:
    try:
        size = path.stat().st_size
        if size == 0:
            raise ParseError("file is empty", location="byte 0")
        if size > MAX_SIDECAR_BYTES:
            raise ParseError(
                f"{size} bytes is too large for a sidecar file (limit {MAX_SIDECAR_BYTES})",
                location="file size",
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}", location="file") from exc
    offset = None if ctx.encoding else binary_offset(raw[:SNIFF_BYTES])
    if offset is not None:
        raise ParseError(
            f"binary content (byte 0x{raw[offset]:02x}) where a text sidecar was expected",
            location=f"byte offset {offset}",
        )
    encoding = detect_encoding(raw[:SNIFF_BYTES], ctx.encoding)
    return raw.decode(encoding, errors="replace").lstrip("\ufeff")


# --- Arbin ``_Metadata.csv`` ------------------------------------------------------------------

_ARBIN_KEYS = {"testid", "deviceid", "ivchid", "schedulefilename", "firststartdatetime", "itemid"}
_ARBIN_SUFFIX = re.compile(r"[_\- ]metadata$", re.IGNORECASE)


def _arbin_header(line: str) -> bool:
    keys = {split_label(f).key for f in line.split(",")}
    return len(keys & _ARBIN_KEYS) >= 4


class ArbinMetadataParser:
    """Arbin ``<test>_Metadata.csv``: one row of test, device and channel ids and the schedule."""

    name: ClassVar[str] = "arbin_metadata"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 2)
        return 0.96 if lines and _arbin_header(lines[0]) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> SidecarData:
        text = _read_small(path, ctx)
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise ParseError(f"not a readable CSV table: {exc}", location="table") from exc
        if not rows or not _arbin_header(",".join(rows[0])):
            raise ParseError(
                "no Arbin metadata header (test_id, device_id, iv_ch_id...)", location="line 1"
            )
        header = rows[0]
        records = [
            {name or "index": value for name, value in zip(header, row, strict=False)}
            for row in rows[1:51]
            if any(cell.strip() for cell in row)
        ]
        if not records:
            raise ParseError("the metadata table has no row", location="line 2")
        first = records[0]
        own = _ARBIN_SUFFIX.sub("", stem_key(ctx.filename))
        content: dict[str, Any] = {"fields": first}
        if len(records) > 1:
            content["more_rows"] = records[1:]
        return SidecarData(
            sidecar_kind="arbin_metadata",
            vendor="arbin",
            keys=[own],
            content=content,
            channel=str(first.get("iv_ch_id", "")),
        )


# --- BioLogic ``.mps`` settings ---------------------------------------------------------------

_MPS_MAGIC = (b"EC-LAB SETTING FILE", b"BT-LAB SETTING FILE")


class BiologicSettingsParser:
    """EC-Lab/BT-Lab ``.mps`` settings: header fields and each technique's parameter table."""

    name: ClassVar[str] = "biologic_mps"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        return 0.98 if head.lstrip(b"\xef\xbb\xbf").startswith(_MPS_MAGIC) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> SidecarData:
        text = _read_small(path, ctx)
        lines = text.splitlines()
        if not lines or not lines[0].strip().upper().endswith("SETTING FILE"):
            raise ParseError("no 'EC-LAB/BT-LAB SETTING FILE' first line", location="line 1")
        header: dict[str, str] = {}
        techniques: list[dict[str, Any]] = []
        current: dict[str, Any] | None = None
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            match = re.match(r"^Technique\s*:\s*(\d+)", line)
            if match:
                current = {"number": int(match.group(1)), "name": "", "parameters": {}}
                techniques.append(current)
                continue
            if current is not None and not current["name"]:
                current["name"] = line.strip()
                continue
            if current is not None:
                label, values = line[:20].strip(), line[20:].split()
                if label and len(current["parameters"]) < 300:
                    current["parameters"][label] = _columns(line[20:], values)
                continue
            key, sep, value = line.partition(" : ")
            if sep and len(header) < 200:
                header[key.strip()] = value.strip()
            elif line.strip():
                header.setdefault("lines", "")
                header["lines"] = (header["lines"] + "\n" + line.strip()).strip()
            if number > 5000:
                break
        keys = [stem_key(ctx.filename) + "_"]
        recorded = header.get("Filename")
        if recorded:
            keys.append(stem_key(recorded) + "_")
        content = {"device": header.get("Device", ""), "header": header, "techniques": techniques}
        return SidecarData(
            sidecar_kind="biologic_settings",
            vendor="biologic",
            keys=list(dict.fromkeys(keys)),
            content=content,
        )


def _columns(text: str, values: list[str]) -> list[str]:
    """The values of a technique row: fixed 20-character columns (values may hold spaces)."""
    if len(text) >= 20:
        cells = [text[i : i + 20].strip() for i in range(0, len(text), 20)]
        return cells[:100]
    return values[:100]


# --- Novonix header-only file -----------------------------------------------------------------

_NOVONIX_SUFFIX = re.compile(r"[_\- ](metadata|header|summary|info)$", re.IGNORECASE)


class NovonixHeaderParser:
    """A Novonix summary and protocol saved without data rows."""

    name: ClassVar[str] = "novonix_header"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        return 0.96 if novonix_has_no_data(head) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> SidecarData:
        lines = _read_small(path, ctx).splitlines()
        if not header_only(lines):
            raise ParseError(
                "not a Novonix header-only file (no [Summary] block, or data rows follow)",
                location="line 1",
            )
        fields = summary_fields(lines)
        meta = summary_metadata(fields)
        meta["protocol_steps"] = protocol_lines(lines)
        keys = [_NOVONIX_SUFFIX.sub("", stem_key(ctx.filename))]
        if fields.get("Cell"):
            keys.append(stem_key(fields["Cell"]))
        return SidecarData(
            sidecar_kind="novonix_header",
            vendor="novonix",
            keys=list(dict.fromkeys(k for k in keys if k)),
            content=meta,
            channel=str(fields.get("Channel", "")),
        )


SIDECAR_PARSERS = (ArbinMetadataParser, BiologicSettingsParser, NovonixHeaderParser)
