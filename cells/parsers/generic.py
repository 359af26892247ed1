"""Mapping-driven parsers: generic CSV/XLSX, Battery Data Format CSV and the LIMS's own CSV.

The generic parser reads any table given a saved column mapping (chosen by name, it never
wins a sniff). BDF is the same engine with a mapping built from the BDF vocabulary, and the
canonical CSV (exactly our column names) is the fast path for very large files.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, ClassVar

from cells.parsers.mapping import (
    AliasTable,
    ColumnSpec,
    MappingOptions,
    match_source,
    parse_mapping,
    resolve_aliases,
)
from cells.parsers.tabular import check_required, frame_to_cycler, read_excel_sheets, text_to_cycler
from cells.parsers.types import CANONICAL_COLUMNS, CyclerData
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import read_head, read_layout, sniff_lines

ZIP_MAGIC = b"PK\x03\x04"


def parse_with_mapping(
    path: Path,
    ctx: ParseContext,
    specs: list[ColumnSpec],
    options: MappingOptions,
    *,
    vendor: str,
    conventions: dict[str, str] | None = None,
) -> CyclerData:
    """Read a CSV/TSV or XLSX table and apply ``specs`` (raw column -> quantity/unit/sign)."""
    conventions = dict(conventions or {})
    metadata: dict[str, Any] = {"column_mapping": {s.source: s.as_dict() for s in specs}}
    warnings: list[str] = []
    head = read_head(path, 8)
    if not head:
        raise ParseError("file is empty", location="byte 0")
    if head.startswith(ZIP_MAGIC):
        sheet = options.sheet if options.sheet is not None else 0
        frame, picked, _ = read_excel_sheets(path, lambda names: [sheet], options.skip_rows)
        specs = _bind(specs, frame.columns, f"sheet {picked[0]!r} header")
        metadata["sheet"] = picked[0]
        return frame_to_cycler(
            frame,
            specs,
            vendor=vendor,
            conventions=conventions,
            metadata=metadata,
            warnings=warnings,
        )
    skip = options.skip_rows
    layout = read_layout(
        path,
        dataclasses.replace(ctx, encoding=options.encoding or ctx.encoding),
        lambda lines: skip if skip < len(lines) and lines[skip].strip() else None,
        separator=options.delimiter,
        decimal=options.decimal,
        what=f"header (line {skip + 1})",
    )
    specs = _bind(specs, layout.columns, f"line {layout.header_line + 1}")
    return text_to_cycler(
        layout, specs, vendor=vendor, conventions=conventions, metadata=metadata, warnings=warnings
    )


def _bind(
    specs: list[ColumnSpec], columns: list[str] | tuple[str, ...], where: str
) -> list[ColumnSpec]:
    bound = []
    for spec in specs:
        column = match_source(list(columns), spec.source)
        if column is None:
            shown = ", ".join(repr(c) for c in list(columns)[:40])
            raise ParseError(
                f"mapped column {spec.source!r} is not in the header ({shown})", location=where
            )
        bound.append(dataclasses.replace(spec, source=column))
    return bound


class GenericParser:
    """Any delimited text or XLSX table, driven by ``ctx.metadata["column_mapping"]``."""

    specificity = 0  # reads any table through a column map: vendor parsers win ties

    name: ClassVar[str] = "generic"
    version: ClassVar[str] = "1.1.0"  # 1.1.0: capacity baseline, derived cycles (summary 2)
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        return 0.0  # needs a mapping, which sniffing cannot see: chosen by name

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        mapping = ctx.metadata.get("column_mapping")
        if mapping is None:
            raise ParseError(
                "the generic parser needs a saved column mapping in ctx.metadata['column_mapping']",
                location="column_mapping",
            )
        specs, options = parse_mapping(mapping)
        return parse_with_mapping(
            path,
            ctx,
            specs,
            options,
            vendor="generic",
            conventions={"mapping": "user column mapping (units and signs as saved)"},
        )


# Battery Data Format vocabulary (preferred labels "Name / unit" and machine names).
BDF_ALIASES: AliasTable = (
    ("time_s", ("testtime",), "s"),
    ("voltage_v", ("voltage",), "V"),
    ("current_a", ("current",), "A"),
    ("cycle", ("cyclecount", "cycle"), "1"),
    ("step", ("stepindex", "stepid", "stepcount"), "1"),
    ("charge_capacity_ah", ("chargingcapacity",), "Ah"),
    ("discharge_capacity_ah", ("dischargingcapacity",), "Ah"),
    ("charge_energy_wh", ("chargingenergy",), "Wh"),
    ("discharge_energy_wh", ("dischargingenergy",), "Wh"),
    (
        "temperature_c",
        (
            "temperature",
            "temperaturet1",
            "surfacetemperature*",
            "temperature*",
            "ambienttemperature",
        ),
        "degC",
    ),
)
_BDF_CORE = re.compile(
    r"^(test time / m?s|voltage / v|current / a|test_time_(milli)?second|voltage_volt"
    r"|current_ampere)$",
    re.IGNORECASE,
)


class BdfParser:
    """Battery Data Format CSV (``*.bdf.csv``): the generic engine with the BDF vocabulary."""

    name: ClassVar[str] = "bdf_csv"
    version: ClassVar[str] = "1.1.0"  # 1.1.0: capacity baseline, derived cycles (summary 2)
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 2)
        if not lines:
            return 0.0
        labels = [f.strip().strip('"') for f in re.split(r"[,;\t]", lines[0])]
        core = sum(1 for label in labels if _BDF_CORE.match(label))
        if core >= 3:
            return 0.95
        if core == 2:
            return 0.8 if ".bdf" in filename.lower() else 0.6
        return 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        warnings: list[str] = []
        layout = read_layout(path, ctx, lambda lines: 0 if lines and lines[0].strip() else None)
        specs = resolve_aliases(layout.columns, BDF_ALIASES, warnings)
        check_required(specs, layout.columns, "not a BDF file")
        return text_to_cycler(
            layout,
            specs,
            vendor="bdf",
            conventions={
                "current_sign": "as written: BDF current is positive for charge",
                "cycle": "BDF 'Cycle Count' as written",
                "capacity": "BDF charging/discharging capacity (Ah), as written",
            },
            metadata={},
            warnings=warnings,
        )


class CanonicalCsvParser:
    """The LIMS's own CSV: exactly the canonical column names, read lazily (10 M-row files)."""

    name: ClassVar[str] = "lims_csv"
    version: ClassVar[str] = "1.1.0"  # 1.1.0: capacity baseline, derived cycles (summary 2)
    kind: ClassVar[str] = "cycler"
    required: ClassVar[frozenset[str]] = frozenset({"time_s", "current_a", "voltage_v"})

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 2)
        if not lines:
            return 0.0
        names = {name.strip().strip('"') for name in lines[0].split(",")}
        if self.required <= names and names <= set(CANONICAL_COLUMNS):
            return 0.99
        return 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(path, ctx, lambda lines: 0 if lines and lines[0].strip() else None)
        unknown = [c for c in layout.columns if c not in CANONICAL_COLUMNS]
        if unknown or not self.required <= set(layout.columns):
            raise ParseError(
                f"not a canonical CSV: header must use only {list(CANONICAL_COLUMNS)} "
                f"and include {sorted(self.required)}",
                location="line 1",
            )
        specs = [
            ColumnSpec(c, c, "1" if c in ("cycle", "step") else _UNITS[c]) for c in layout.columns
        ]
        return text_to_cycler(
            layout,
            specs,
            vendor="generic",
            conventions={"format": "LIMS canonical CSV: values already canonical"},
            metadata={},
            warnings=[],
        )


_UNITS = {
    "time_s": "s",
    "current_a": "A",
    "voltage_v": "V",
    "charge_capacity_ah": "Ah",
    "discharge_capacity_ah": "Ah",
    "charge_energy_wh": "Wh",
    "discharge_energy_wh": "Wh",
    "temperature_c": "degC",
}
