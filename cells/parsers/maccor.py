"""Maccor text exports (``.001``... ``.999``, MIMS Client / MacTest tab-separated text).

Maccor writes one ``Amp-hr``/``Watt-hr`` pair that restarts at every step, and a ``State``
letter per row (C charge, D discharge, R rest, O other, S ...). Depending on the export
template the current (``Amps``) is unsigned or already signed, and the test time is in seconds
(``Test (Sec)``), minutes (``Test (Min)``), or text (``TestTime`` as ``Nd hh:mm:ss``). The
sign is derived from the state letter, which works for both current styles, and the step
capacity is assigned to charge or discharge by the same letter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from cells.parsers.mapping import (
    AliasTable,
    ColumnSpec,
    canonical_expressions,
    resolve_aliases,
)
from cells.parsers.tabular import check_required, text_to_cycler
from cells.parsers.types import CyclerData
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import TextLayout, numeric_row, read_layout, sniff_lines

MACCOR_ALIASES: AliasTable = (
    ("time_s", ("test", "testtime", "testtimes", "testsec", "testmin", "totaltime"), "s"),
    ("cycle", ("cyc", "cycle", "cyclec", "cyclep", "cycleindex"), "1"),
    ("step", ("step", "stepindex"), "1"),
    ("current_a", ("amps", "current", "amp"), "A"),
    ("voltage_v", ("volts", "voltage", "volt"), "V"),
    ("capacity_ah", ("amphr", "cap", "capacity", "ahr"), "Ah"),
    ("energy_wh", ("watthr", "ener", "energy", "whr"), "Wh"),
    ("temperature_c", ("temp1", "temperature", "temp*"), "degC"),
)
_STATE_KEYS = ("state", "md", "mode")
# Header words only Maccor uses, and words it shares with other vendors.
_MACCOR_KEYS = {"rec", "cyc", "amphr", "watthr", "amps", "volts", "state", "md", "es", "dpttime"}
_MACCOR_KEYS |= {"cyclep", "cyclec", "ener"}
_SHARED_KEYS = {"step", "testtime", "test", "steptime", "cap", "current", "voltage"}


def _header_keys(line: str) -> set[str]:
    fields = re.split(r"\t|,", line)
    return {re.sub(r"[^0-9a-z]", "", re.sub(r"[(\[].*?[)\]]", "", f.lower())) for f in fields}


def _header_index(lines: list[str]) -> int | None:
    for index, line in enumerate(lines[:40]):
        if numeric_row(line):
            continue
        keys = _header_keys(line)
        own = len(keys & _MACCOR_KEYS)
        if own >= 3 and own + len(keys & _SHARED_KEYS) >= 5:
            return index
    return None


class MaccorParser:
    """Maccor tab-separated text export with a ``Today's Date`` preamble (or none)."""

    name: ClassVar[str] = "maccor_txt"
    version: ClassVar[str] = "1.1.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 40)
        if not lines:
            return 0.0
        if _header_index(lines) is not None:
            return 0.95
        if lines[0].startswith("Today's Date") and re.search(r"\.\d{3}$", filename):
            return 0.6
        return 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(path, ctx, _header_index, what="Maccor column header")
        warnings: list[str] = []
        time_spec = _time_spec(layout)
        columns = [c for c in layout.columns if time_spec is None or c != time_spec.source]
        specs = resolve_aliases(columns, MACCOR_ALIASES, warnings)
        if time_spec is not None:
            specs = [s for s in specs if s.quantity != "time_s"] + [time_spec]
        check_required(specs, layout.columns, "not a Maccor export")
        state = next((c for c in layout.columns if _key(c) in _STATE_KEYS), None)
        if state is None:
            raise ParseError(
                "no State column: the current sign cannot be derived", location="header"
            )
        state_column: str = state
        conventions = {
            "current_sign": f"from {state!r}: C charge (+), D discharge (-), other states as "
            "written (Amps may be unsigned or signed depending on the export template)",
            "capacity": "Amp-hr/Watt-hr restart every step; assigned to charge on C rows, "
            "discharge on D rows, 0 otherwise",
            "cycle": "Cyc# as written (0-based)",
            "step": "Step as written",
        }
        return text_to_cycler(
            layout,
            specs,
            vendor="maccor",
            conventions=conventions,
            metadata=_preamble(layout),
            warnings=warnings,
            overrides=lambda dtypes: _state_expressions(specs, dtypes, state_column),
        )


def _key(label: str) -> str:
    return re.sub(r"[^0-9a-z]", "", re.sub(r"[(\[].*?[)\]]", "", label.lower()))


_TIME_UNIT = {"sec": "s", "s": "s", "min": "min", "hr": "h", "h": "h", "ms": "ms"}


def _time_spec(layout: TextLayout) -> ColumnSpec | None:
    """``Test (Sec)``/``Test (Min)``/``Test (Hr)`` or a ``TestTime``-like text column."""
    for column in layout.columns:
        match = re.fullmatch(r"\s*test\s*(?:time)?\s*[(\[]\s*(\w+)\s*[)\]]\s*", column, re.I)
        if match and match.group(1).lower() in _TIME_UNIT:
            return ColumnSpec(column, "time_s", _TIME_UNIT[match.group(1).lower()])
    for column in layout.columns:
        if _key(column) in ("testtime", "totaltime"):
            return ColumnSpec(column, "time_s", "s")
    return None


def _state_expressions(
    specs: list[ColumnSpec], dtypes: Mapping[str, pl.DataType], state: str
) -> dict[str, pl.Expr]:
    """Current sign and charge/discharge split of the step counters from the State letter."""
    letter = pl.col(state).str.strip_chars().str.to_uppercase().str.slice(0, 1)
    charge, discharge = letter == "C", letter == "D"
    plain = [
        ColumnSpec(spec.source, _PLAIN[spec.quantity], spec.unit, spec.sign)
        for spec in specs
        if spec.quantity in _PLAIN
    ]
    values = canonical_expressions(plain, dtypes)
    out: dict[str, pl.Expr] = {}
    amps = values.get("current_a")
    if amps is not None:
        out["current_a"] = (
            pl.when(charge).then(amps.abs()).when(discharge).then(-amps.abs()).otherwise(amps)
        )
    for name in ("capacity_ah", "energy_wh"):
        value = values.get(f"charge_{name}")
        if value is not None:
            out[f"charge_{name}"] = pl.when(charge).then(value).otherwise(0.0)
            out[f"discharge_{name}"] = pl.when(discharge).then(value).otherwise(0.0)
    return out


# Single Maccor columns read through the engine under a plain quantity, then split by state.
_PLAIN = {
    "current_a": "current_a",
    "capacity_ah": "charge_capacity_ah",
    "energy_wh": "charge_energy_wh",
}


def _preamble(layout: TextLayout) -> dict[str, Any]:
    """``Today's Date ... Date of Test: ... Filename: ... Procedure: ... Comment/Barcode: ...``."""
    out: dict[str, Any] = {}
    if not layout.preamble:
        return out
    text = " ".join(layout.preamble)
    keys = ("Today's Date", "Date of Test", "Filename", "Procedure", "Comment/Barcode")
    pattern = "|".join(re.escape(k) for k in keys)
    parts = re.split(rf"({pattern}):?", text)
    for key, value in zip(parts[1::2], parts[2::2], strict=False):
        out[key.lower().replace("'", "").replace(" ", "_").replace("/", "_")] = value.strip(" \t:")
    return out
