"""Novonix HPC CSV exports: ``[Summary]`` and ``[Protocol]`` blocks, then ``[Data]``.

Layout learnt from BEEP's Novonix structuring and its test file: ``Date and Time, Cycle Number,
Step Type, Run Time (h), Step Time (h), Current (A), Potential (V), Capacity (Ah), Temperature
(°C), ..., Energy (Wh), ..., Step Number, Step position``. One unsigned capacity and energy
counter per step; the numeric ``Step Type`` says what the step does (0 open circuit, 1 CC charge,
2 CC discharge, 7 CC-CV charge, 8 CV hold charge, 9 CC-CV discharge, 10 CV hold discharge).

Some copies have every line wrapped in quotes (a one-column CSV written by another tool): those
are unwrapped into a temporary file, parsed and the copy deleted. A file with the summary but no
data rows is a header-only (metadata) file: a sidecar, read by ``cells.parsers.sidecars``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from cells.parsers.direction import apply_direction
from cells.parsers.mapping import AliasTable, ColumnSpec, canonical_expressions, resolve_aliases
from cells.parsers.tabular import check_required, text_to_cycler
from cells.parsers.types import CyclerData
from cells.parsers.units import split_label
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError
from lims.ingestion.text import numeric_row, read_layout, sniff_lines

NOVONIX_ALIASES: AliasTable = (
    ("time_s", ("runtime",), "h"),
    ("cycle", ("cyclenumber",), "1"),
    ("step", ("stepnumber",), "1"),
    ("current_a", ("current",), "A"),
    ("voltage_v", ("potential", "voltage"), "V"),
    ("capacity_ah", ("capacity",), "Ah"),
    ("energy_wh", ("energy",), "Wh"),
    ("temperature_c", ("temperature",), "degC"),
)
CHARGE_CODES = (1.0, 7.0, 8.0)
DISCHARGE_CODES = (2.0, 9.0, 10.0)
_HEADER_KEYS = {"cyclenumber", "steptype", "runtime", "current", "potential", "capacity"}
# Summary fields kept under their own names, the rest under summary.
_SUMMARY_FIELDS = {
    "Channel": "channel",
    "Cell": "cell_file",
    "Serial Number": "barcode",
    "Protocol": "protocol",
    "Version": "software_version",
}


# a header names its columns in words; a row of numbers has none
_WORD = re.compile(r"[A-Za-z]{3}")


def _unquote(line: str) -> str:
    text = line.rstrip()
    stripped = text.strip()
    if len(stripped) > 1 and stripped[0] == '"' and stripped[-1] == '"' and '","' not in text:
        return stripped[1:-1]
    return text


def header_index(lines: list[str]) -> int | None:
    """The column header line (after ``[Data]`` when the file has one)."""
    for index, line in enumerate(lines[:2000]):
        # a data row has no label to read (``numeric_row`` says so faster than the word
        # search, and most of a sniffed head is data rows)
        if line.count(",") < 5 or numeric_row(line) or not _WORD.search(line):
            continue
        keys = {split_label(f).key for f in _unquote(line).split(",")}
        if len(keys & _HEADER_KEYS) >= 5:
            return index
    return None


def summary_fields(lines: list[str]) -> dict[str, str]:
    """``Key: value`` lines of the ``[Summary]`` block."""
    fields: dict[str, str] = {}
    inside = False
    for raw in lines:
        line = _unquote(raw)
        if line.startswith("[Summary]"):
            inside = True
            continue
        if line.startswith("[End Summary]"):
            break
        if inside and ":" in line:
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields


def protocol_lines(lines: list[str]) -> list[str]:
    out: list[str] = []
    inside = False
    for raw in lines:
        line = _unquote(raw)
        if line.startswith("[Protocol]"):
            inside = True
            continue
        if line.startswith("[End Protocol]"):
            break
        if inside and line.strip():
            out.append(line.rstrip())
    return out[:500]  # a protocol is short; never let a file size this


def summary_metadata(fields: Mapping[str, str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"summary": dict(fields)}
    for key, name in _SUMMARY_FIELDS.items():
        if fields.get(key):
            meta[name] = fields[key]
    started = fields.get("Started")
    if started:
        for fmt in ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M:%S"):
            try:
                meta["start_time"] = datetime.strptime(started, fmt).isoformat()
                break
            except ValueError:
                continue
    return meta


def looks_novonix(lines: list[str]) -> bool:
    first = [_unquote(line) for line in lines[:4]]
    return bool(first) and first[0].startswith("[Summary]") and any("Novonix" in x for x in first)


def header_only(lines: list[str]) -> bool:
    """Summary block present, no data row after it (no header, or a header and nothing else)."""
    if not looks_novonix(lines):
        return False
    index = header_index(lines)
    return index is None or not any(line.strip() for line in lines[index + 1 :])


def novonix_has_no_data(head: bytes) -> bool:
    """True when ``head`` is a whole Novonix file without data rows (a header-only file)."""
    lines = sniff_lines(head, 5000)
    return len(head) < SNIFF_BYTES and bool(lines) and header_only(lines or [])


class NovonixParser:
    """Novonix HPC CSV export with summary, protocol and data blocks."""

    name: ClassVar[str] = "novonix_csv"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 2000)
        if not lines:
            return 0.0
        index = header_index(lines)
        if index is None or novonix_has_no_data(head):
            return 0.0  # a header-only file is a sidecar (cells.parsers.sidecars)
        return 0.97 if looks_novonix(lines) else 0.9

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        with _unwrapped(path) as (source, quoted):
            layout = read_layout(source, ctx, header_index, what="Novonix [Data] column header")
            warnings: list[str] = []
            specs = resolve_aliases(layout.columns, NOVONIX_ALIASES, warnings)
            check_required(specs, layout.columns, "not a Novonix export")
            step_type = next((c for c in layout.columns if split_label(c).key == "steptype"), None)
            plain = [s for s in specs if s.quantity not in ("capacity_ah", "energy_wh")]
            counters = [s for s in specs if s.quantity in ("capacity_ah", "energy_wh")]

            def overrides(dtypes: Mapping[str, pl.DataType]) -> dict[str, pl.Expr]:
                exprs = canonical_expressions(plain, dtypes)
                for spec in counters:
                    charge_name = f"charge_{spec.quantity}"
                    value = canonical_expressions(
                        [ColumnSpec(spec.source, charge_name, spec.unit)], dtypes
                    )[charge_name]
                    exprs[spec.quantity] = value
                if step_type is None:
                    return apply_direction(exprs, pl.lit(False), pl.lit(False))
                code = pl.col(step_type).cast(pl.Float64, strict=False).round(0)
                return apply_direction(exprs, code.is_in(CHARGE_CODES), code.is_in(DISCHARGE_CODES))

            conventions = {
                "current_sign": "from 'Step Type': charge codes 1, 7, 8 are +|I|, discharge "
                "codes 2, 9, 10 are -|I|, other steps as written",
                "capacity": "'Capacity (Ah)'/'Energy (Wh)' per-step counters, assigned to "
                "charge or discharge by 'Step Type' (other steps by the current's sign)",
                "cycle": "'Cycle Number' as written (1-based)",
                "step": "'Step Number' as written",
                "time": "'Run Time (h)' x 3600",
            }
            metadata = summary_metadata(summary_fields(list(layout.preamble)))
            metadata["protocol_steps"] = protocol_lines(list(layout.preamble))
            metadata["export"] = "Novonix CSV" + (" (quoted lines unwrapped)" if quoted else "")
            data = text_to_cycler(
                layout,
                specs,
                vendor="novonix",
                conventions=conventions,
                metadata=metadata,
                warnings=warnings,
                overrides=overrides,
            )
            if quoted:  # the temporary copy goes away: materialise now
                data.series = data.collect().lazy()
            return data


@contextmanager
def _unwrapped(path: Path) -> Iterator[tuple[Path, bool]]:
    """The file itself, or a temporary copy without the quotes around every line."""
    with path.open("rb") as handle:
        head = handle.read(256 * 1024)
    lines = head.decode("latin-1").split("\n")
    index = header_index([line.rstrip("\r") for line in lines])
    header = lines[index].strip() if index is not None else ""
    if not (len(header) > 1 and header[0] == '"' and header[-1] == '"'):
        yield path, False
        return
    fd, name = tempfile.mkstemp(suffix=".csv", prefix="lims-novonix-")
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            for line in src:
                text = line.rstrip(b"\r\n")
                if len(text) > 1 and text[:1] == b'"' and text[-1:] == b'"':
                    text = text[1:-1].replace(b'""', b'"')
                out.write(text + b"\n")
        yield Path(name), True
    except OSError as exc:
        raise ParseError(f"cannot unwrap quoted lines: {exc}", location="file") from exc
    finally:
        os.unlink(name)
