"""PEC (SBT/ACT testers) CSV exports: a ``Key:,Value`` preamble, then one table.

Layout learnt from real exports (cellpy's ``pec_csv`` reader and its test data): labels with the
unit in brackets (``Voltage (V)``, ``Current (A)``, ``Charge Capacity (mAh)``, ``Total Time
(Hours in hh:mm:ss.xxx)``) or, in older templates, as a suffix (``Voltage_mV``,
``Total_Time_Seconds``, and the energies as ``Charge_Capacity_mWh``). Cycles and steps are
0-based as written. The current is signed by the tester (negative = discharge); where the
``Instruction Name`` says charge or discharge it decides the sign.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from cells.parsers.direction import apply_direction, state_direction
from cells.parsers.mapping import (
    AliasTable,
    ColumnSpec,
    canonical_expressions,
    guess_datetime_format,
    resolve_aliases,
)
from cells.parsers.tabular import check_required, text_to_cycler
from cells.parsers.types import CyclerData
from cells.parsers.units import split_label
from lims.ingestion.parsing import ParseContext
from lims.ingestion.text import TextLayout, read_layout, sniff_lines, split_fields

# PEC time units, as written in the label, to ours.
_TIME_UNITS = {
    "hours in hh:mm:ss.xxx": "hms",
    "hours in hh:mm:ss": "hms",
    "decimal hours": "h",
    "minutes": "min",
    "seconds": "s",
}
_SUFFIX = re.compile(r"^(?P<name>.+?)_(?P<unit>mV|V|mA|A|uA|mAh|Ah|mWh|Wh|Seconds|Minutes|Hours)$")
PEC_ALIASES: AliasTable = (
    ("time_s", ("totaltime",), "s"),
    ("cycle", ("cycle",), "1"),
    ("step", ("step",), "1"),
    ("current_a", ("current",), "A"),
    ("voltage_v", ("voltage",), "V"),
    ("charge_capacity_ah", ("chargecapacity",), "mAh"),
    ("discharge_capacity_ah", ("dischargecapacity",), "mAh"),
    ("charge_energy_wh", ("chargeenergy",), "mWh"),
    ("discharge_energy_wh", ("dischargeenergy",), "mWh"),
    ("temperature_c", ("temp", "temperature", "celltemperature"), "degC"),
)
_STATE_KEYS = ("instructionname", "instruction")
_PEC_KEYS = {
    "test",
    "cell",
    "rack",
    "shelf",
    "position",
    "instructionname",
    "realtime",
    "reasoncode",
}


def readable(label: str) -> str:
    """A PEC label as ``Name (unit)`` in our unit words; suffix energies renamed to energies."""
    parts = split_label(label)
    name, unit = parts.name, parts.unit
    if unit is None:
        match = _SUFFIX.match(label.strip())
        if match:
            name, unit = match.group("name").replace("_", " "), match.group("unit")
    if unit is None:
        return label
    unit = _TIME_UNITS.get(unit.strip().lower(), unit)
    if unit in ("mWh", "Wh") and "capacity" in name.lower():
        name = re.sub("(?i)capacity", "Energy", name)  # Charge_Capacity_mWh is an energy
    return f"{name} ({unit})"


# a header names its columns in words; a row of numbers has none (sniffing 300 data rows
# label by label cost 60 ms of every upload's detection)
_WORD = re.compile(r"[A-Za-z]{3}")


def _header_keys(line: str) -> set[str]:
    return {split_label(readable(f)).key for f in split_fields(line, ",")}


def _header_index(lines: list[str]) -> int | None:
    for index, line in enumerate(lines[:300]):
        if line.count(",") < 5 or not _WORD.search(line):  # a data row: no label to read
            continue
        keys = _header_keys(line)
        quantities = {"cycle", "step", "totaltime", "voltage", "current", "chargecapacity"}
        if quantities <= keys and len(keys & _PEC_KEYS) >= 3:
            return index
    return None


class PecCsvParser:
    """PEC tester CSV export (``Test,Cell,Rack,Shelf,Position,...,Instruction Name,Cycle,...``)."""

    name: ClassVar[str] = "pec_csv"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 300)
        if not lines:
            return 0.0
        return 0.95 if _header_index(lines) is not None else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(path, ctx, _header_index, what="PEC column header")
        warnings: list[str] = []
        names = [readable(c) for c in layout.columns]
        specs = resolve_aliases(names, PEC_ALIASES, warnings)
        by_readable = dict(zip(names, layout.columns, strict=True))
        specs = [ColumnSpec(by_readable[s.source], s.quantity, s.unit, s.sign) for s in specs]
        check_required(specs, layout.columns, "not a PEC export")
        state = next((c for c in layout.columns if split_label(c).key in _STATE_KEYS), None)
        conventions = {
            "current_sign": "as written (PEC: negative = discharge)"
            + (f"; {state!r} naming charge/discharge decides the sign" if state else ""),
            "cycle": "Cycle as written (0-based)",
            "step": "Step as written",
            "capacity": "Charge/Discharge Capacity columns as written (unsigned counters)",
        }
        current_spec = next(s for s in specs if s.quantity == "current_a")

        def overrides(dtypes: Mapping[str, pl.DataType]) -> dict[str, pl.Expr]:
            if state is None:
                return {}
            exprs = canonical_expressions([current_spec], dtypes)
            charge, discharge = state_direction(pl.col(state))
            return apply_direction(exprs, charge, discharge)

        return text_to_cycler(
            layout,
            specs,
            vendor="pec",
            conventions=conventions,
            metadata=_preamble(layout),
            warnings=warnings,
            overrides=overrides,
        )


def _preamble(layout: TextLayout) -> dict[str, Any]:
    """``Key:,Value`` lines above the table; start time and channel at the top level."""
    fields: dict[str, str] = {}
    for line in layout.preamble:
        parts = split_fields(line, ",")
        if len(parts) >= 2 and parts[0].endswith(":"):
            fields[parts[0].rstrip(":").strip()] = ",".join(p for p in parts[1:] if p)
    meta: dict[str, Any] = {"export": "PEC CSV", "header_fields": fields}
    start = fields.get("Start Time")
    if start:
        formats = guess_datetime_format([start])
        if formats:
            meta["start_time"] = datetime.strptime(start, formats[0]).isoformat()
    if fields.get("TestRegime Name"):
        meta["protocol"] = fields["TestRegime Name"]
    columns = [split_label(c).key for c in layout.columns]
    if layout.sample and {"rack", "shelf", "position"} <= set(columns):
        row = layout.sample[0]
        parts = [row[columns.index(k)] for k in ("rack", "shelf", "position")]
        if all(parts):
            meta["channel"] = "-".join(parts)
    return meta
