"""The text toolkit every parser and the raw-file store share (no Django, no domain app).

Reading delimited text exports without trusting their encoding or loading them whole.

Instrument software writes ISO-8859-1, Windows code pages, GB2312, UTF-8 with or without BOM
and sometimes UTF-16. The header is decoded here with the detected encoding; the data rows
are handed to ``pl.scan_csv`` (lazy) because numbers are ASCII in every ASCII-compatible
encoding. Only encodings that are not ASCII-compatible (UTF-16/32) are transcoded.
"""

from __future__ import annotations

import codecs
import functools
import io
import itertools
import mmap
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import charset_normalizer
import numpy as np
import polars as pl

from lims.ingestion.parsing import ParseContext, ParseError

HEAD_BYTES = 256 * 1024
# Files up to this size are fully parsed (and so fully validated) inside parse(); larger
# files are validated on their first rows and streamed when the caller collects.
EAGER_LIMIT_BYTES = 8 * 1024 * 1024
NULL_VALUES = ["N/A", "n/a", "NA", "NaN", "nan", "-", "--", "#N/A"]
# A real header line is a few KB; a longer line is a broken or hostile file, and polars (or
# ``readline``) would hold all of it in memory: a 500 MB one-line CSV took a worker to 10 GB.
MAX_LINE_BYTES = 1024 * 1024
# More columns than any instrument writes; each one costs polars a buffer per chunk.
MAX_COLUMNS = 10_000

_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_ALLOWED_CONTROL = frozenset(b"\t\n\r\x0b\x0c\x1a")


def read_head(path: Path, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of a file, with an OSError turned into ParseError."""
    try:
        with path.open("rb") as handle:
            return handle.read(size)
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}", location="file") from exc


def check_line_lengths(path: Path, limit: int = MAX_LINE_BYTES) -> None:
    """Refuse a file with a line longer than ``limit`` bytes, before anything reads it by lines.

    The file is mapped, not read: from each line start, ``rfind`` looks for the last newline
    within the next ``limit`` bytes, so a file of short lines costs one step and about one
    touched page per ``limit`` bytes (0.2 ms for a 65 MB CSV whose parse takes 190 ms).
    """
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= limit:
                return
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as view:
                start = 0
                while size - start > limit:
                    newline = view.rfind(b"\n", start, start + limit + 1)
                    if newline < 0:
                        _long_line(path, start, limit)
                    start = newline + 1
    except (OSError, ValueError) as exc:  # ValueError: mmap of a file that shrank meanwhile
        raise ParseError(f"cannot read file: {exc}", location="file") from exc


def _long_line(path: Path, offset: int, limit: int) -> None:
    line = _line_of_offset(str(path), offset) or 0
    raise ParseError(
        f"line {line} is longer than {limit} bytes (not a text export, or a broken one)",
        location=f"byte offset {offset}",
    )


def nonempty_size(path: Path) -> int:
    """The file's size; ParseError when it cannot be read or is empty."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}", location="file") from exc
    if size == 0:
        raise ParseError("file is empty", location="byte 0")
    return size


def bom_encoding(head: bytes) -> tuple[str, int] | None:
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name, len(bom)
    return None


def _wide_guess(head: bytes) -> str | None:
    """UTF-16/32 without BOM: ASCII text leaves NUL bytes in a fixed pattern."""
    sample = head[: 4096 - (len(head[:4096]) % 4)]
    if len(sample) < 8:
        return None
    data = np.frombuffer(sample, dtype=np.uint8) == 0
    lanes = [float(data[i::4].mean()) for i in range(4)]
    if lanes[0] < 0.02 and min(lanes[1:]) > 0.4:
        return "utf-32-le"
    if lanes[3] < 0.02 and min(lanes[:3]) > 0.4:
        return "utf-32-be"
    even, odd = float(data[0::2].mean()), float(data[1::2].mean())
    if odd > 0.4 and even < 0.02:
        return "utf-16-le"
    if even > 0.4 and odd < 0.02:
        return "utf-16-be"
    return None


_TEXT_BYTES = bytes(_ALLOWED_CONTROL) + bytes(range(0x20, 0x100))


def binary_offset(head: bytes) -> int | None:
    """Offset of the first byte that cannot occur in a text export (None for text)."""
    if bom_encoding(head) or _wide_guess(head):
        return None
    head = head[:HEAD_BYTES]
    bad = head.translate(None, _TEXT_BYTES)  # the bytes outside the set, in file order
    return head.index(bad[:1]) if bad else None


def sniff_text(head: bytes, encodings: tuple[str, ...] = ()) -> str | None:
    """Cheap decode for sniffing; None when the head is binary.

    ``encodings`` are tried strictly first (e.g. GB18030 for Chinese-locale exports); the
    fallback is latin-1, which never fails and keeps ASCII keywords intact.

    Cached: every registered parser sniffs the same head of an upload, and decoding and
    splitting it once instead of thirty times halved the sniffing (14 -> 7 ms for a 200 KB
    CSV). The key is the head itself (a bytes object hashes once and compares by identity
    first); the values are immutable.
    """
    return _sniff_text(bytes(head), tuple(encodings))


@functools.lru_cache(maxsize=4)
def _sniff_text(head: bytes, encodings: tuple[str, ...]) -> str | None:
    found = bom_encoding(head)
    if found:
        return head[found[1] :].decode(found[0], errors="ignore")
    guess = _wide_guess(head)
    if guess:
        return head.decode(guess, errors="ignore")
    if binary_offset(head) is not None:
        return None
    cut = head[: head.rfind(b"\n") + 1] or head
    for encoding in encodings:
        try:
            return cut.decode(encoding)
        except UnicodeDecodeError:
            continue
    return head.decode("latin-1")


# Digits, separators, signs, exponents, quotes, dates and times: what a data row is made of.
_NUMERIC_ROW_BYTES = b"0123456789.,;:+-eE \t\r\n\x0b\x0c\"'/"


def numeric_row(line: str) -> bool:
    """True for a line that can only be data: a column label has a letter other than an
    exponent's ``e``. Header searches skip these without splitting them into labels (most of
    a sniffed head is data rows, and thirty sniffers each looked at them). ``bytes.translate``
    deletes the data characters in C: six times faster than a regex over the line; a
    character outside latin-1 becomes ``?``, which is not data."""
    return not line.encode("latin-1", "replace").translate(None, _NUMERIC_ROW_BYTES)


def sniff_lines(head: bytes, limit: int = 300, encodings: tuple[str, ...] = ()) -> list[str] | None:
    """The head's first ``limit`` lines (a fresh list: callers may change it)."""
    lines = _sniff_lines(bytes(head), limit, tuple(encodings))
    return None if lines is None else list(lines)


@functools.lru_cache(maxsize=16)
def _sniff_lines(head: bytes, limit: int, encodings: tuple[str, ...]) -> tuple[str, ...] | None:
    text = sniff_text(head, encodings)
    if text is None:
        return None
    return tuple(line.rstrip("\r") for line in text.split("\n", limit)[:limit])


def detect_encoding(head: bytes, declared: str | None = None) -> str:
    """Encoding of a text head: the one rule set for every parser and the raw-file store.

    Declared (if it names a codec), else BOM, else the UTF-16/32 NUL pattern, else UTF-8 if
    the bytes validate, else a Western single-byte page for ASCII with isolated high bytes,
    else charset_normalizer's best guess (cp1252 when it has none).
    """
    if declared:
        try:
            return codecs.lookup(declared).name
        except LookupError as exc:
            raise ParseError(f"unknown encoding {declared!r}", location="encoding") from exc
    found = bom_encoding(head)
    if found:
        return found[0]
    guess = _wide_guess(head)
    if guess:
        return guess
    cut = head[: head.rfind(b"\n") + 1] or head
    try:
        cut.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    latin = _single_byte_latin(cut)
    if latin:
        return latin
    best = charset_normalizer.from_bytes(cut[:65536]).best()
    return codecs.lookup(best.encoding).name if best else "cp1252"


def stored_encoding(head: bytes) -> str:
    """What the raw-file store records: a codec name for text, "" for binary or empty files
    (never a pseudo-codec a parser would later be asked to decode with)."""
    if not head or binary_offset(head) is not None:
        return ""
    return detect_encoding(head)


def known_codec(name: str | None) -> str | None:
    """``name`` if Python knows the codec, else None (stored values predate this rule)."""
    if not name:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _single_byte_latin(cut: bytes) -> str | None:
    """cp1252 / latin-1 for text that is ASCII with isolated high bytes (``º``, ``²``, ``µ``).

    Statistical detectors take a few degree and superscript signs in a long ASCII header for a
    CJK double-byte code page; in those, high bytes come in pairs. Isolated ones mean a
    Western single-byte code page: cp1252 when its 0x80-0x9F bytes are defined, else latin-1.
    """
    data = np.frombuffer(cut, dtype=np.uint8)
    high = data >= 0x80
    n_high = int(high.sum())
    if not n_high:
        return None
    paired = int((high[1:] & high[:-1]).sum())
    if paired * 4 > n_high:
        return None
    try:
        cut.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def ascii_compatible(encoding: str) -> bool:
    """True when delimiters, digits and newlines are single ASCII bytes in ``encoding``."""
    name = codecs.lookup(encoding).name
    if name.startswith(("utf-16", "utf-32")):
        return False
    try:
        return "\n,;\t.0123456789-+eE".encode(name) == b"\n,;\t.0123456789-+eE"
    except (UnicodeError, LookupError):
        return False


@dataclass(frozen=True)
class TextLayout:
    """Where the table of a text export starts and how it is delimited."""

    path: Path
    size: int
    encoding: str
    header_line: int  # 0-based line index of the column header
    separator: str
    columns: tuple[str, ...]  # decoded labels, de-duplicated, empty ones named _colN
    raw_columns: tuple[str, ...]  # decoded labels as written
    sample: tuple[tuple[str, ...], ...]  # first data rows, split
    decimal_comma: bool
    preamble: tuple[str, ...]  # lines above the header (instrument metadata)
    placeholders: bool = True  # read NULL_VALUES as empty (ParseContext.placeholders)


def split_fields(line: str, separator: str) -> list[str]:
    return [field.strip().strip('"').strip() for field in line.split(separator)]


def guess_separator(line: str) -> str:
    counts = {sep: line.count(sep) for sep in ("\t", ";", ",")}
    if counts["\t"]:
        return "\t"
    return max(counts, key=lambda sep: counts[sep]) if any(counts.values()) else ","


_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+(?:[eE][+-]?\d+)?$")
_DECIMAL_POINT = re.compile(r"^[+-]?\d*\.\d+(?:[eE][+-]?\d+)?$")


def guess_decimal_comma(sample: Sequence[Sequence[str]], separator: str) -> bool:
    if separator == ",":
        return False
    commas = points = 0
    for row in sample:
        for value in row:
            if _DECIMAL_COMMA.match(value):
                commas += 1
            elif _DECIMAL_POINT.match(value):
                points += 1
    return commas > points


def _dedupe(labels: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    out: list[str] = []
    for index, label in enumerate(labels):
        name = label or f"_col{index}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_duplicated_{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return tuple(out)


def read_layout(
    path: Path,
    ctx: ParseContext,
    locate: Callable[[list[str]], int | None],
    *,
    separator: str | None = None,
    decimal: str | None = None,
    what: str = "column header",
) -> TextLayout:
    """Decode the head of a text export and find its header line with ``locate``."""
    size = nonempty_size(path)
    head = read_head(path)
    encoding = detect_encoding(head, ctx.encoding)
    if not ctx.encoding:
        offset = binary_offset(head)
        if offset is not None:
            raise ParseError(
                f"binary content (byte 0x{head[offset]:02x}) where a text export was expected",
                location=f"byte offset {offset}",
            )
    check_line_lengths(path)  # before polars (or readline) holds a line in memory
    bom = bom_encoding(head)
    body = head[bom[1] :] if bom else head
    text = body.decode(encoding, errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]
    if len(head) < size and len(lines) > 1:
        lines = lines[:-1]  # the head ends inside a line
    index = locate(lines)
    if index is None:
        raise ParseError(
            f"no {what} line found: not the expected export format",
            location=f"lines 1-{len(lines)}",
        )
    header = lines[index]
    sep = separator or guess_separator(header)
    raw_columns = tuple(split_fields(header, sep))
    if len(raw_columns) > MAX_COLUMNS:
        raise ParseError(
            f"{len(raw_columns)} columns in the {what} line, more than the {MAX_COLUMNS} "
            "a table of this kind may have",
            location=f"line {index + 1}",
        )
    sample = tuple(
        tuple(split_fields(line, sep)) for line in lines[index + 1 : index + 51] if line.strip()
    )
    if not sample and len(head) >= size:
        raise ParseError(
            "no data rows after the header (truncated or aborted export?)",
            location=f"line {index + 2}",
        )
    if decimal is None:
        decimal_comma = guess_decimal_comma(sample, sep)
    else:
        decimal_comma = decimal == ","
        if decimal_comma and sep == ",":
            raise ParseError("decimal ',' needs a delimiter other than ','", location="mapping")
    return TextLayout(
        path=path,
        size=size,
        encoding=encoding,
        header_line=index,
        separator=sep,
        columns=_dedupe(raw_columns),
        raw_columns=raw_columns,
        sample=sample,
        decimal_comma=decimal_comma,
        preamble=tuple(lines[:index]),
        placeholders=_placeholders(ctx, size, sample),
    )


def _placeholders(ctx: ParseContext, size: int, sample: Sequence[Sequence[str]]) -> bool:
    """Whether to match values against NULL_VALUES: for a small file always (it costs
    nothing), for a large one when asked or when its first rows show a placeholder."""
    if ctx.placeholders is not None:
        return ctx.placeholders
    if size <= EAGER_LIMIT_BYTES:
        return True
    tokens = set(NULL_VALUES)
    return any(value in tokens for row in sample for value in row)


def scan_table(layout: TextLayout, dtypes: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """Lazy frame of the data rows; unmapped columns stay strings so they never fail parsing."""
    schema = {name: dtypes.get(name, pl.String()) for name in layout.columns}
    options: dict[str, Any] = {
        "has_header": False,
        "separator": layout.separator,
        "schema": schema,
        "decimal_comma": layout.decimal_comma,
        "truncate_ragged_lines": True,
        "missing_columns": "insert",  # e.g. EC-Lab headers end with a tab the rows lack
        "null_values": NULL_VALUES,
        "raise_if_empty": False,
    }
    if not ascii_compatible(layout.encoding):
        return _transcoded(layout, options)  # read whole, placeholders cost nothing extra
    placeholders = layout.placeholders
    if layout.size > EAGER_LIMIT_BYTES:
        placeholders = _check_head(layout, options)
    if not placeholders:
        options["null_values"] = None
    frame = pl.scan_csv(
        layout.path,
        skip_lines=layout.header_line + 1,
        encoding="utf8-lossy",
        **options,
    )
    return frame if placeholders else _as_placeholders_read(frame, schema)


def _as_placeholders_read(frame: pl.LazyFrame, schema: Mapping[str, pl.DataType]) -> pl.LazyFrame:
    """What a read with NULL_VALUES gives, from one without: the float parser reads "NaN"
    and "nan" as NaN (made empty here), a text column keeps the token (made empty here);
    any other placeholder in a number column fails the read, which is then done again with
    them (``ParseError.unreadable_value``)."""
    floats = [name for name, dtype in schema.items() if dtype.is_float()]
    texts = [name for name, dtype in schema.items() if dtype == pl.String()]
    exprs = [pl.col(name).fill_nan(None) for name in floats]
    exprs += [
        pl.when(pl.col(name).is_in(NULL_VALUES)).then(None).otherwise(pl.col(name)).alias(name)
        for name in texts
    ]
    return frame.with_columns(exprs) if exprs else frame


HEAD_ROWS = 10_000
HEAD_CHECK_BYTES = 8 * 1024 * 1024


def _check_head(layout: TextLayout, options: Mapping[str, object]) -> bool:
    """Parse the first data rows of a large file from their own bytes: a bad file fails in
    ``parse()``, and nothing past the head is read (a lazy scan's head may prefetch chunks
    further on, which made a late bad row fail here, or not, depending on thread timing).
    Returns whether the file is to be read with placeholders: the layout's choice, or True
    when the head reads only with them."""
    with layout.path.open("rb") as handle:
        for _ in range(layout.header_line + 1):
            handle.readline()
        rows: list[bytes] = []
        taken = 0
        for row in itertools.islice(handle, HEAD_ROWS):  # lines are bounded (read_layout)
            rows.append(row)
            taken += len(row)
            if taken >= HEAD_CHECK_BYTES:  # 10,000 rows of 1 MiB would be 10 GiB
                break
        head = b"".join(rows)
    if not layout.placeholders:
        try:
            _read(head, options, null_values=None)
            return False
        except (pl.exceptions.PolarsError, OSError):
            pass  # a placeholder, or a bad value that the read with them reports
    try:
        _read(head, options, null_values=options["null_values"])
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise polars_parse_error(exc, source=str(layout.path)) from exc
    return True


def _read(head: bytes, options: Mapping[str, object], *, null_values: object) -> None:
    pl.read_csv(io.BytesIO(head), encoding="utf8-lossy", **{**options, "null_values": null_values})  # type: ignore[arg-type]


def _transcoded(layout: TextLayout, options: Mapping[str, object]) -> pl.LazyFrame:
    """UTF-16/32: transcode to a temporary UTF-8 file, parse it and drop the copy."""
    decoder = codecs.getincrementaldecoder(layout.encoding)(errors="replace")
    fd, name = tempfile.mkstemp(suffix=".csv", prefix="lims-transcode-")
    try:
        with os.fdopen(fd, "wb") as out, layout.path.open("rb") as src:
            bom = bom_encoding(src.read(4))
            src.seek(bom[1] if bom else 0)
            while chunk := src.read(1 << 20):
                out.write(decoder.decode(chunk).encode("utf-8"))
            out.write(decoder.decode(b"", final=True).encode("utf-8"))
        frame = pl.scan_csv(name, skip_lines=layout.header_line + 1, **options)  # type: ignore[arg-type]
        return collect_or_raise(frame).lazy()
    finally:
        os.unlink(name)


def finalize(frame: pl.LazyFrame, layout: TextLayout) -> pl.LazyFrame:
    """Validate the canonical frame now: all of it for small files, the first rows otherwise."""
    if layout.size <= EAGER_LIMIT_BYTES:
        return collect_or_raise(frame, source=str(layout.path)).lazy()
    return frame  # its head was parsed by scan_table; the rest streams in the job


def truncated_tail_warning(layout: TextLayout) -> str | None:
    """Warn when the last line has fewer fields than the header (file cut during copy?)."""
    try:
        with layout.path.open("rb") as handle:
            handle.seek(max(0, layout.size - 65536))
            tail = handle.read()
    except OSError:
        return None
    if not ascii_compatible(layout.encoding):
        return None
    lines = tail.decode(layout.encoding, errors="replace").replace("\r", "").split("\n")
    last = next((line for line in reversed(lines) if line.strip()), "")
    if not last or tail.endswith(b"\n"):
        return None
    fields = len(last.split(layout.separator))
    if fields < len(layout.columns):
        return (
            f"last line has {fields} of {len(layout.columns)} fields and no line end: "
            "the file looks truncated, its last row is incomplete"
        )
    return None


# -- errors from libraries, summarised with a location --------------------------------


def collect_or_raise(
    frame: pl.LazyFrame, *, source: str | None = None, streaming: bool = True
) -> pl.DataFrame:
    """Collect a lazy frame, turning polars' data errors into ParseError with a location."""
    try:
        return frame.collect(engine="streaming" if streaming else "auto")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise polars_parse_error(exc, source=source) from exc


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, shortened: library messages can span screens."""
    text = " ".join(str(exc).split())
    full = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return full if len(full) <= limit else full[: limit - 3] + "..."


def polars_parse_error(exc: BaseException, *, source: str | None = None) -> ParseError:
    """Summarise a polars error: first message line plus the byte offset / line it names."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    offset = _polars_error_offset(text)
    location = None
    if offset is not None:
        location = f"near byte offset {offset}"
        line = _line_of_offset(source, offset) if source else None
        if line is not None:
            location = f"near line {line} (byte offset {offset})"
    return ParseError(f"unreadable data: {first}", location=location, unreadable_value=True)


_OFFSET = re.compile(r"offset in the file is (\d+) bytes")


def _polars_error_offset(message: str) -> int | None:
    match = _OFFSET.search(message)
    return int(match.group(1)) if match else None


def _line_of_offset(path: str, offset: int) -> int | None:
    """1-based line containing byte ``offset`` (computed on the error path only)."""
    count = 0
    try:
        with open(path, "rb") as handle:
            remaining = offset
            while remaining > 0 and (chunk := handle.read(min(remaining, 1 << 20))):
                count += chunk.count(b"\n")
                remaining -= len(chunk)
    except OSError:
        return None
    return count + 1


# -- column labels --------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """A column header split into a comparison key and the unit it states (if any)."""

    raw: str
    name: str
    unit: str | None

    @property
    def key(self) -> str:
        return name_key(self.name)


_BRACKETS = {")": "(", "]": "["}
_BDF_MACHINE_UNITS = (
    ("_ampere_hour", "Ah"),
    ("_watt_hour", "Wh"),
    ("_millisecond", "ms"),
    ("_second", "s"),
    ("_ampere", "A"),
    ("_volt", "V"),
    ("_celsius", "degC"),
    ("_degc", "degC"),
    ("_ah", "Ah"),
    ("_wh", "Wh"),
    ("_pascal", "Pa"),
)


def split_label(raw: str, is_unit: Callable[[str], bool] = lambda unit: False) -> Label:
    """Split ``Current(A)``, ``Current [A]``, ``Current / A``, ``I/mA`` into name and unit.

    A bare ``/`` splits only where ``is_unit`` knows the right side (each parser family knows
    its own units; ``Li/Li+`` is a name).
    """
    text = raw.strip().strip('"').strip()
    if text and text[-1] in _BRACKETS:
        opening = text.rfind(_BRACKETS[text[-1]])
        if opening > 0:
            return Label(raw, text[:opening].strip(), text[opening + 1 : -1].strip() or None)
    if " / " in text:
        name, _, unit = text.rpartition(" / ")
        return Label(raw, name.strip(), unit.strip() or None)
    if "/" in text:
        name, _, unit = text.rpartition("/")
        if is_unit(unit.strip()):
            return Label(raw, name.strip(), unit.strip())
    lowered = text.lower()
    for suffix, unit in _BDF_MACHINE_UNITS:
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            return Label(raw, text[: -len(suffix)], unit)
    return Label(raw, text, None)


_KEY_DROP = re.compile(r"[\W_]+")


def name_key(name: str) -> str:
    """Comparison key: case-folded letters and digits, any script (``Charge_Capacity`` ->
    ``chargecapacity``, ``充电容量`` stays ``充电容量``)."""
    return _KEY_DROP.sub("", name.casefold())
