"""BioLogic EC-Lab / BT-Lab: binary ``.mpr`` (via galvani) and ``.mpt`` text exports.

EC-Lab current is positive for oxidation of the working electrode, i.e. charge of a cathode
half cell: kept as written. ``Q charge/discharge/mA.h`` is signed and resets at every half
cycle; it is split by sign into the canonical unsigned charge/discharge columns. Cycles come
from the file's own counter: ``cycle number`` (``.mpt``), else ``half cycle // 2`` (``.mpr``
has no cycle number), else (OCV, Modulo Bat sequences exported without either) derived from
the current with rests counted as no half cycle. A file without current is voltage-only.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl

from cells.parsers.types import (
    CyclerData,
    canonical_eager,
    canonical_frame,
    derived_cycle,
    drop_blank_rows,
    integrated_capacity,
)
from cells.parsers.units import split_label, unit_factor
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import (
    describe_exception,
    finalize,
    read_head,
    read_layout,
    scan_table,
    sniff_lines,
    truncated_tail_warning,
)

MPR_MAGIC = b"BIO-LOGIC MODULAR FILE\x1a"
MPT_MAGIC = ("EC-Lab ASCII FILE", "BT-Lab ASCII FILE")

NO_CURRENT = (
    "none: the file has no current column (e.g. an OCV record): a voltage-only test, "
    "without capacities or charge/discharge"
)
BIOLOGIC_CONVENTIONS = {
    "current_sign": "as written: EC-Lab current is positive for oxidation (charge of a cathode)",
    "step": "Ns (technique sequence index) as written",
}

# EC-Lab column names (unit after the last '/') -> canonical quantity, in priority order.
_CURRENT = ("I", "<I>")
_VOLTAGE = ("Ewe", "<Ewe>", "Ecell", "<Ecell>")


def _units(name: str) -> tuple[str, str | None]:
    label = split_label(name)
    return label.name, label.unit


def _find(
    labels: dict[str, list[tuple[str, str]]], names: tuple[str, ...], quantity: str
) -> tuple[str, float] | None:
    """First column whose EC-Lab name is in ``names`` with a unit we can convert."""
    for wanted in names:
        for column, unit in labels.get(wanted, ()):
            factor = unit_factor(quantity, unit)
            if factor:
                return column, factor[0]
    return None


def biologic_expressions(columns: list[str], conventions: dict[str, str]) -> dict[str, pl.Expr]:
    """Canonical expressions from EC-Lab column names (shared by .mpr and .mpt)."""
    labels: dict[str, list[tuple[str, str]]] = {}
    for column in columns:
        base, unit = _units(column)
        if unit:
            labels.setdefault(base, []).append((column, unit))
    exprs: dict[str, pl.Expr] = {}
    time = _find(labels, ("time",), "time_s")
    if time:
        exprs["time_s"] = pl.col(time[0]).cast(pl.Float64) * time[1]
    voltage = _find(labels, _VOLTAGE, "voltage_v")
    if voltage:
        exprs["voltage_v"] = pl.col(voltage[0]).cast(pl.Float64) * voltage[1]
    current = _find(labels, _CURRENT, "current_a")
    if current:
        exprs["current_a"] = pl.col(current[0]).cast(pl.Float64) * current[1]
        conventions["current"] = f"{current[0]!r}"
    elif "P/W" in columns and voltage:
        # GCPL files saved without I: EC-Lab's P is Ewe*I, so I = P/Ewe is the measured current.
        ewe = pl.col(voltage[0]).cast(pl.Float64) * voltage[1]
        exprs["current_a"] = pl.when(ewe != 0).then(pl.col("P/W").cast(pl.Float64) / ewe)
        conventions["current"] = "derived: P/W divided by Ewe/V (file has no I column)"
    elif "control/V/mA" in columns and "mode" in columns:
        # Last resort: the galvanostatic set point (mode 1 = CC); rest (mode 3) is 0 A.
        mode = pl.col("mode")
        setpoint = pl.col("control/V/mA").cast(pl.Float64) / 1000.0
        exprs["current_a"] = pl.when(mode == 1).then(setpoint).when(mode == 3).then(0.0)
        conventions["current"] = "derived: control/V/mA set point in CC mode (file has no I)"
    else:
        conventions["current"] = NO_CURRENT

    if "cycle number" in columns:
        exprs["cycle"] = pl.col("cycle number")
        conventions["cycle"] = "'cycle number' as written (0-based)"
    elif "half cycle" in columns:
        exprs["cycle"] = pl.col("half cycle").cast(pl.Int64) // 2
        conventions["cycle"] = "half cycle // 2 (0-based; .mpr has no cycle number)"
    if "Ns" in columns:
        exprs["step"] = pl.col("Ns")

    charge = _find(labels, ("Q charge",), "charge_capacity_ah")
    discharge = _find(labels, ("Q discharge",), "discharge_capacity_ah")
    signed = _find(labels, ("Q charge/discharge",), "charge_capacity_ah")
    dq = _find(labels, ("dq", "dQ"), "charge_capacity_ah")
    if charge and discharge:
        exprs["charge_capacity_ah"] = pl.col(charge[0]).cast(pl.Float64).abs() * charge[1]
        exprs["discharge_capacity_ah"] = pl.col(discharge[0]).cast(pl.Float64).abs() * discharge[1]
        conventions["capacity"] = "Q charge / Q discharge columns (reset every half cycle)"
    elif signed:
        q = pl.col(signed[0]).cast(pl.Float64) * signed[1]
        exprs["charge_capacity_ah"] = pl.when(q > 0).then(q).otherwise(0.0)
        exprs["discharge_capacity_ah"] = pl.when(q < 0).then(-q).otherwise(0.0)
        conventions["capacity"] = (
            "Q charge/discharge (signed, reset every half cycle) split by sign"
        )
    elif dq:
        step = pl.col(dq[0]).cast(pl.Float64).fill_null(0.0) * dq[1]
        exprs["charge_capacity_ah"] = step.clip(lower_bound=0.0).cum_sum()
        exprs["discharge_capacity_ah"] = (-step).clip(lower_bound=0.0).cum_sum()
        conventions["capacity"] = "cumulated from dq (file has no Q charge/discharge)"
    else:
        integrated_capacity(exprs, conventions)
    derived_cycle(exprs, conventions)  # OCV/MB exports without cycle number or half cycle

    e_charge = _find(labels, ("Energy charge",), "charge_energy_wh")
    e_discharge = _find(labels, ("Energy discharge",), "discharge_energy_wh")
    e_abs = _find(labels, ("|Energy|",), "charge_energy_wh")
    if e_charge and e_discharge:
        exprs["charge_energy_wh"] = pl.col(e_charge[0]).cast(pl.Float64).abs() * e_charge[1]
        exprs["discharge_energy_wh"] = (
            pl.col(e_discharge[0]).cast(pl.Float64).abs() * e_discharge[1]
        )
    elif e_abs and "current_a" in exprs:
        # |Energy| resets with the half cycle like Q: attribute it by the current direction.
        energy = pl.col(e_abs[0]).cast(pl.Float64).abs() * e_abs[1]
        direction = exprs["current_a"]
        exprs["charge_energy_wh"] = pl.when(direction > 0).then(energy).otherwise(0.0)
        exprs["discharge_energy_wh"] = pl.when(direction < 0).then(energy).otherwise(0.0)
        conventions["energy"] = "|Energy| attributed to charge/discharge by the current sign"
    temperature = next((c for c in columns if _units(c)[0] in ("Temperature", "T")), None)
    if temperature:
        factor = unit_factor("temperature_c", _units(temperature)[1] or "degC")
        if factor:
            exprs["temperature_c"] = pl.col(temperature).cast(pl.Float64) * factor[0] + factor[1]
    return exprs


def _check_biologic(exprs: dict[str, pl.Expr], columns: list[str], where: str) -> None:
    missing = [q for q in ("time_s", "voltage_v") if q not in exprs]
    if missing:
        raise ParseError(
            f"no {' or '.join(missing)} column among {columns}: not cycler data", location=where
        )


# Technique id: the first byte of the settings module ("VMP Set"). 0x04 GCPL and 0x7F Modulo
# Bat are seen in this repository's fixtures; the impedance ids follow public mpr readers.
MPR_TECHNIQUES = {
    0x04: "GCPL",
    0x0B: "OCV",
    0x18: "CA",
    0x19: "CP",
    0x1D: "PEIS",
    0x1E: "GEIS",
    0x7F: "Modulo Bat",
}
_MPR_HEAD = 52  # magic padded to 48 bytes, then 4 zero bytes


def mpr_head_columns(head: bytes) -> tuple[str, list[str]] | None:
    """(technique, data column names) from the module headers in a file's head, or None when
    the data module's column list is not in ``head``. Reads headers only (for sniffing)."""
    from galvani.BioLogic import VMPdata_colID_dtype_map, VMPdata_colID_flag_map

    pos, technique = _MPR_HEAD, ""
    while head[pos : pos + 6] == b"MODULE":
        hdr = head[pos + 6 : pos + 6 + 59]
        if len(hdr) < 51:
            return None
        if hdr[35:39] == b"\xff\xff\xff\xff":  # EC-Lab >= 11.50 module header
            length, version, size = _u32(hdr, 39), _u32(hdr, 43), 59
        else:
            length, version, size = _u32(hdr, 35), _u32(hdr, 39), 51
        start = pos + 6 + size
        if hdr.startswith(b"VMP Set") and start < len(head):
            technique = MPR_TECHNIQUES.get(head[start], f"technique id {head[start]}")
        if hdr.startswith(b"VMP data"):
            data = head[start : start + 1100]
            if len(data) < 8:
                return None
            count = data[4]
            if version == 0 and data[5]:
                ids = list(data[5 : 5 + count])
            else:
                offset = 6 if version == 0 else 5
                raw = data[offset : offset + 2 * count]
                ids = [raw[i] | raw[i + 1] << 8 for i in range(0, len(raw) - 1, 2)]
            names = [
                VMPdata_colID_dtype_map.get(i, VMPdata_colID_flag_map.get(i, (f"column id {i}",)))[
                    0
                ]
                for i in ids
            ]
            return technique, names
        pos = start + length
    return None


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def mpt_is_impedance(lines: list[str]) -> str | None:
    """ "impedance" for an EC-Lab impedance export (a ``freq/Hz`` column in a PEIS/GEIS file or
    a file without the technique line), "mixed" for a multi-technique (Modulo Bat) file with
    an impedance step, None otherwise."""
    index = mpt_header_index(lines)
    columns = lines[index].split("\t") if index is not None else []
    if "freq/Hz" not in columns:
        return None
    technique = lines[3].strip() if lines[0].strip() in MPT_MAGIC and len(lines) > 3 else ""
    return "mixed" if technique.lower().startswith("modulo bat") else "impedance"


class BiologicMprParser:
    """EC-Lab/BT-Lab binary ``.mpr`` read with galvani (datalab-org fork)."""

    name: ClassVar[str] = "biologic_mpr"
    version: ClassVar[str] = "1.1.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        if not head.startswith(MPR_MAGIC):
            return 0.0
        found = mpr_head_columns(head)
        if found is not None and "freq/Hz" in found[1] and found[0] != "Modulo Bat":
            return 0.0  # an impedance record: a spectrum is never a cycling test
        return 0.99

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        from galvani.BioLogic import MPRfile

        head = read_head(path, len(MPR_MAGIC))
        if not head:
            raise ParseError("file is empty", location="byte 0")
        if head != MPR_MAGIC:
            raise ParseError("not an EC-Lab .mpr file: bad magic", location="byte 0")
        try:
            with path.open("rb") as handle, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mpr = MPRfile(handle)  # unknown column ids are warned about and guessed
        except Exception as exc:  # galvani raises ValueError/IOError/AssertionError/struct errors
            raise ParseError(
                "galvani cannot read the file (truncated or unsupported version): "
                + describe_exception(exc),
                location=_mpr_location(exc),
            ) from exc
        if len(mpr.data) == 0:
            raise ParseError("no data points (aborted experiment?)", location="VMP data module")
        columns = [name for name in mpr.dtype.names if name != "flags"]
        columns += [flag for flag in ("mode", "ox/red") if flag in mpr.flags_dict]
        conventions = dict(BIOLOGIC_CONVENTIONS)
        exprs = biologic_expressions(columns, conventions)
        _check_biologic(exprs, columns, "VMP data module")
        used = {name for expr in exprs.values() for name in expr.meta.root_names()}
        used |= {"ox/red"} & set(columns)  # for the sign cross-check
        frame = _mpr_frame(mpr, used)
        series = canonical_eager(frame, exprs)
        notes = [f"galvani: {w.message}" for w in caught] + _sign_check(series, frame)
        if conventions.get("current") == NO_CURRENT:
            notes.append("no current column: read as a voltage-only test (no capacities)")
        metadata = _mpr_metadata(mpr, columns)
        return CyclerData(series.lazy(), "biologic", conventions, metadata, notes)


def _mpr_frame(mpr: Any, used: set[str]) -> pl.DataFrame:
    """Copy only the columns the expressions use out of galvani's record array."""
    data = mpr.data
    series: dict[str, Any] = {}
    for name in used:
        if name in data.dtype.names:
            series[name] = np.ascontiguousarray(data[name])
        else:
            series[name] = mpr.get_flag(name)
    return pl.DataFrame(series)


def _mpr_location(exc: Exception) -> str:
    """galvani names the module it was reading when the file ends early."""
    match = re.search(r"current module: b'([^']+)'", str(exc))
    if match:
        return f"{' '.join(match.group(1).split())} module"
    return "module headers" if "module" in str(exc).lower() else "VMP data module"


def _mpr_metadata(mpr: Any, columns: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"source_columns": columns, "data_module_version": int(mpr.version)}
    start = getattr(mpr, "timestamp", None)
    if start is not None:
        meta["start_time"] = start.isoformat()
    elif getattr(mpr, "startdate", None) is not None:
        meta["start_date"] = mpr.startdate.isoformat()
    modules = [m["shortname"].decode("ascii", "replace").strip() for m in mpr.modules]
    meta["modules"] = modules
    return meta


def _sign_check(series: pl.DataFrame, frame: pl.DataFrame) -> list[str]:
    """EC-Lab's ox/red flag should agree with the current sign; say so when it does not."""
    if "ox/red" not in frame.columns:
        return []
    current = series.get_column("current_a").to_numpy()
    oxidation = frame.get_column("ox/red").to_numpy().astype(bool)
    active = np.nan_to_num(current) != 0
    if not active.any():
        return []
    disagree = float(np.mean((current[active] > 0) != oxidation[active]))
    if disagree > 0.05:
        return [f"current sign disagrees with the ox/red flag on {disagree:.0%} of rows"]
    return []


# --- .mpt ------------------------------------------------------------------------------------

_NB_HEADER = re.compile(r"Nb header lines\s*:\s*(\d+)")


def _time_column_line(line: str) -> bool:
    return "time/s" in line and "\t" in line


def mpt_header_index(
    lines: list[str], is_columns: Callable[[str], bool] = _time_column_line
) -> int | None:
    """Index of an EC-Lab text export's column line: after 'Nb header lines : N', else the
    first line ``is_columns`` knows (cycler exports: 'time/s'; impedance ones: 'freq/Hz')."""
    if lines and lines[0].strip() in MPT_MAGIC:
        for line in lines[1:4]:
            match = _NB_HEADER.search(line)
            if match:
                index = int(match.group(1)) - 1  # the count includes the column line
                return index if 0 < index < len(lines) else None
    for index, line in enumerate(lines[:200]):
        if is_columns(line):
            return index
    return None


class BiologicMptParser:
    """EC-Lab ``.mpt`` text export (latin-1, tab separated, locale decimal commas)."""

    name: ClassVar[str] = "biologic_mpt"
    version: ClassVar[str] = "1.1.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head)
        if not lines:
            return 0.0
        impedance = mpt_is_impedance(lines)
        if impedance == "impedance":
            return 0.0  # a spectrum is never a cycling test (cells.eis reads it)
        if impedance == "mixed":
            return 0.3  # a Modulo Bat file with an impedance step is a cycling test
        index = mpt_header_index(lines)
        columns = lines[index].split("\t") if index is not None else []
        if lines[0].strip() in MPT_MAGIC:
            return 0.98
        return 0.7 if any(c.startswith(("Ewe/", "Ecell/")) for c in columns) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(
            path, ctx, mpt_header_index, separator="\t", what="EC-Lab column header"
        )
        columns = list(layout.columns)
        if mpt_is_impedance([*layout.preamble, "\t".join(layout.raw_columns)]) == "impedance":
            raise ParseError(
                "an impedance spectrum (freq/Hz column), not cycler data: send it as kind=eis",
                location=f"line {layout.header_line + 1}",
            )
        conventions = dict(BIOLOGIC_CONVENTIONS)
        exprs = biologic_expressions(columns, conventions)
        _check_biologic(exprs, columns, f"line {layout.header_line + 1}")
        used = {name for expr in exprs.values() for name in expr.meta.root_names()}
        frame = drop_blank_rows(scan_table(layout, {name: pl.Float64() for name in used}), used)
        series = finalize(canonical_frame(frame, exprs), layout)
        metadata: dict[str, Any] = {
            "source_columns": list(layout.raw_columns),
            "encoding": layout.encoding,
            "decimal": "," if layout.decimal_comma else ".",
            "header_line": layout.header_line + 1,
        }
        metadata.update(_mpt_preamble(layout.preamble))
        notes = [tail] if (tail := truncated_tail_warning(layout)) else []
        if conventions.get("current") == NO_CURRENT:
            notes.append("no current column: read as a voltage-only test (no capacities)")
        return CyclerData(series, "biologic", conventions, metadata, notes)


def _mpt_preamble(lines: tuple[str, ...]) -> dict[str, Any]:
    """Technique, channel, start time and software version from the header block."""
    out: dict[str, Any] = {}
    if len(lines) > 3 and lines[3].strip():
        out["technique"] = lines[3].strip()
    for line in lines:
        if "(software)" in line:
            out["software_version"] = line.strip()
            continue
        key, sep, value = line.partition(" : ")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Run on channel":
            out["channel"] = value
        elif key == "Acquisition started on":
            out["start_time_text"] = value
        elif key == "Device":
            out["device"] = value
    return out
