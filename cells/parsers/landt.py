"""Landt (LANDdt) exports: the record table as CSV, or the ``Record`` sheet(s) of a workbook.

Layout learnt from public readers (cellpy's custom-instrument configuration for LANDdt exports,
battery-data-manager's Landt sheet list): workbooks hold ``Cycle-Tab``, ``Step-Tab`` and
``Record-Tab`` sheets; the record table has ``Record``, ``TestTime``, ``StepTime``,
``Current/mA``, ``Capacity/mAh``, ``SpeCap/mAh/g``, ``Voltage/V``, ``Energy/mWh``, ``SysTime``,
``Cycle-Index``, ``Step-Index``, ``Step-State`` (unit after a slash). The capacity and energy are
one unsigned counter per step. The current is signed (negative = discharge); where the step state
says charge or discharge, it decides.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from cells.parsers.direction import apply_direction, state_direction
from cells.parsers.mapping import AliasTable, ColumnSpec, canonical_expressions, resolve_aliases
from cells.parsers.tabular import (
    _derive_missing,
    build_conventions,
    check_required,
    read_excel_sheets,
    text_to_cycler,
)
from cells.parsers.types import CyclerData, canonical_eager
from cells.parsers.units import split_label
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import numeric_row, read_head, read_layout, sniff_lines, split_fields

LANDT_ALIASES: AliasTable = (
    ("time_s", ("testtime", "totaltime"), "s"),
    ("cycle", ("cycleindex", "cycle"), "1"),
    ("step", ("stepindex", "step"), "1"),
    ("current_a", ("current",), "mA"),
    ("voltage_v", ("voltage",), "V"),
    ("charge_capacity_ah", ("chargecapacity", "capc", "chgcap"), "mAh"),
    ("discharge_capacity_ah", ("dischargecapacity", "capd", "dchgcap"), "mAh"),
    ("capacity_ah", ("capacity", "cap"), "mAh"),
    ("energy_wh", ("energy",), "mWh"),
    ("temperature_c", ("auxtemp", "temperature", "temp"), "degC"),
)
_STATE_KEYS = ("stepstate", "state", "stepmode", "mode")
_RECORD_KEYS = {"testtime", "steptime", "current", "capacity", "specap", "voltage", "energy"}
_RECORD_KEYS |= {"systime", "cycleindex", "stepindex", "stepstate", "specapmah", "socdod"}
CONVENTIONS = {
    "current_sign": "as written (Landt: negative = discharge); a step state naming charge or "
    "discharge decides the sign",
    "capacity": "'Capacity'/'Energy' per-step counters, assigned to charge or discharge by the "
    "step state, else by the current's sign",
    "cycle": "Cycle-Index as written (1-based)",
    "step": "Step-Index as written",
}


def _keys(labels: list[str]) -> set[str]:
    return {split_label(label).key for label in labels}


def _is_record_header(labels: list[str]) -> bool:
    keys = _keys(labels)
    slashed = sum(1 for label in labels if re.search(r"\w/\w", label))
    return "record" in keys and len(keys & _RECORD_KEYS) >= 4 and slashed >= 2


def _header_index(lines: list[str]) -> int | None:
    for index, line in enumerate(lines[:20]):
        if numeric_row(line):
            continue
        separator = "\t" if "\t" in line else ","
        if _is_record_header(split_fields(line, separator)):
            return index
    return None


def workbook_sheet_names(head: bytes, limit: int = 1 << 20) -> list[str]:
    """Sheet names from ``xl/workbook.xml`` when its zip member lies within ``head``.

    Walks the local file headers only as far as ``head`` goes and inflates at most ``limit``
    bytes: a sniff never reads the whole workbook or trusts a declared size.
    """
    offset = 0
    while offset + 30 <= len(head) and head[offset : offset + 4] == b"PK\x03\x04":
        (_, _, flags, method, _, _, _, size, _, name_len, extra_len) = struct.unpack(
            "<IHHHHHIIIHH", head[offset : offset + 30]
        )
        name = head[offset + 30 : offset + 30 + name_len]
        start = offset + 30 + name_len + extra_len
        if flags & 0x08 or start + size > len(head):
            return []  # sizes after the data, or the member runs past the head
        if name == b"xl/workbook.xml":
            data = head[start : start + size]
            try:
                text = (
                    zlib.decompressobj(-15).decompress(data, limit) if method == 8 else data[:limit]
                )
            except zlib.error:
                return []
            return re.findall(r'<sheet\b[^>]*\bname="([^"]+)"', text.decode("utf-8", "replace"))
        offset = start + size
    return []


def _record_sheets(names: list[str]) -> list[str]:
    """``Record-Tab`` (and its continuations ``Record-Tab1``...) in order."""

    def order(name: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", name)) or (0,)

    return sorted((n for n in names if n.lower().startswith("record")), key=order)


def _direction(
    specs: list[ColumnSpec],
    state: str | None,
    schema: Mapping[str, pl.DataType],
    samples: Mapping[str, list[str]] | None = None,
) -> dict[str, pl.Expr]:
    plain = [s for s in specs if s.quantity not in ("capacity_ah", "energy_wh")]
    exprs = canonical_expressions(plain, schema, samples)
    for spec in specs:
        if spec.quantity in ("capacity_ah", "energy_wh"):
            charge = f"charge_{spec.quantity}"
            exprs[spec.quantity] = canonical_expressions(
                [ColumnSpec(spec.source, charge, spec.unit)], schema
            )[charge]
    if state is None:
        return apply_direction(exprs, pl.lit(False), pl.lit(False))
    charge_rows, discharge_rows = state_direction(pl.col(state))
    return apply_direction(exprs, charge_rows, discharge_rows)


class LandtParser:
    """Landt record table: CSV export or the ``Record-Tab`` sheet of a LANDdt workbook."""

    name: ClassVar[str] = "landt"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        if head.startswith(b"PK\x03\x04"):
            names = workbook_sheet_names(head)
            if _record_sheets(names) and any(
                n.lower().startswith(("cycle", "step")) for n in names
            ):
                return 0.9
            return 0.0
        lines = sniff_lines(head, 20)
        return 0.9 if lines and _header_index(lines) is not None else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        head = read_head(path, 4)
        if not head:
            raise ParseError("file is empty", location="byte 0")
        if head.startswith(b"PK\x03\x04"):
            return self._workbook(path)
        layout = read_layout(path, ctx, _header_index, what="Landt record header")
        warnings: list[str] = []
        specs = resolve_aliases(layout.columns, LANDT_ALIASES, warnings)
        check_required(specs, layout.columns, "not a Landt record table")
        state = next((c for c in layout.columns if split_label(c).key in _STATE_KEYS), None)
        return text_to_cycler(
            layout,
            [s for s in specs],
            vendor="landt",
            conventions=dict(CONVENTIONS),
            metadata={"export": "LANDdt CSV"},
            warnings=warnings,
            overrides=lambda dtypes: _direction(specs, state, dtypes),
        )

    def _workbook(self, path: Path) -> CyclerData:
        frame, sheets, names = read_excel_sheets(path, _record_sheets)
        columns = [str(c) for c in frame.columns]
        if not _is_record_header(columns):
            raise ParseError(
                f"sheet {sheets[0]!r} has no Landt record header ({columns[:12]})",
                location=f"sheet {sheets[0]!r}",
            )
        warnings: list[str] = []
        specs = resolve_aliases(columns, LANDT_ALIASES, warnings)
        check_required(specs, columns, f"sheet {sheets[0]!r} is not a Landt record table")
        state = next((c for c in columns if split_label(c).key in _STATE_KEYS), None)
        samples = {
            s.source: [str(v) for v in frame.get_column(s.source).head(50).drop_nulls()]
            for s in specs
        }
        exprs = _direction(specs, state, dict(frame.schema), samples)
        conventions = dict(CONVENTIONS)
        _derive_missing(exprs, conventions)
        conventions.update(build_conventions(specs))
        metadata: dict[str, Any] = {
            "export": "LANDdt workbook",
            "sheets": sheets,
            "workbook_sheets": names,
            "source_columns": columns,
        }
        return CyclerData(
            canonical_eager(frame, exprs).lazy(), "landt", conventions, metadata, warnings
        )
