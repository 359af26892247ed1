"""Battery Archive (batteryarchive.org) downloads: ``*_cycle_data.csv`` and ``*_timeseries.csv``.

The archive republishes tests from many labs in one layout. Current is positive for charge,
capacities and energies are unsigned Ah/Wh counters (reset per cycle by most sources), times in
seconds, cycles as the source numbered them (1-based in most sets, sometimes written ``1.0``).

The cycle file has per-cycle records and no series: it yields ``CyclerData.cycles`` (stored as
the vendor computed them) and an empty series.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from cells.parsers.mapping import AliasTable, guess_datetime_format, resolve_aliases
from cells.parsers.percycle import empty_series, per_cycle_table
from cells.parsers.tabular import check_required, text_to_cycler
from cells.parsers.types import CyclerData
from cells.parsers.units import split_label, unit_factor
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import (
    collect_or_raise,
    numeric_row,
    read_layout,
    scan_table,
    sniff_lines,
    split_fields,
)

BA_CONVENTIONS = {
    "current_sign": "as written: Battery Archive current is positive for charge",
    "cycle": "Cycle_Index as written (1-based in most sets; '1.0' read as 1)",
}
# Keys of the cycle file; the archive's own importer requires all of these but the two times.
_CYCLE_KEYS = frozenset(
    {
        "cycleindex",
        "testtime",
        "mincurrent",
        "maxcurrent",
        "minvoltage",
        "maxvoltage",
        "chargecapacity",
        "dischargecapacity",
        "chargeenergy",
        "dischargeenergy",
    }
)
_OPTIONAL_CYCLE_KEYS = frozenset({"starttime", "endtime"})  # absent in some sets
_SERIES_KEYS = frozenset(
    {
        "datetime",
        "testtime",
        "cycleindex",
        "current",
        "voltage",
        "chargecapacity",
        "dischargecapacity",
        "chargeenergy",
        "dischargeenergy",
        "environmenttemperature",
        "celltemperature",
    }
)
# Arbin's own words, which a Battery Archive timeseries does not have.
_ARBIN_ONLY = frozenset({"datapoint", "stepindex", "steptime"})


def _keys(line: str) -> set[str]:
    if numeric_row(line):  # a data row: no label
        return set()
    separator = "\t" if "\t" in line else ","
    return {split_label(f).key for f in split_fields(line, separator)}


def _cycle_header(lines: list[str]) -> int | None:
    for index, line in enumerate(lines[:5]):
        keys = _keys(line)
        if keys >= _CYCLE_KEYS:
            return index
    return None


def _series_header(lines: list[str]) -> int | None:
    for index, line in enumerate(lines[:5]):
        keys = _keys(line)
        needed = {"testtime", "cycleindex", "current", "voltage", "chargecapacity"}
        if needed <= keys and not keys & _ARBIN_ONLY and len(keys & _SERIES_KEYS) >= 8:
            return index
    return None


class BatteryArchiveCycleParser:
    """Battery Archive ``*_cycle_data.csv``: one row per cycle, no series."""

    name: ClassVar[str] = "batteryarchive_cycles"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 5)
        return 0.97 if lines and _cycle_header(lines) is not None else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(path, ctx, _cycle_header, what="Battery Archive cycle header")
        labels = {split_label(c).key: c for c in layout.columns}
        times = [labels[k] for k in ("starttime", "endtime") if k in labels]
        dtypes: dict[str, pl.DataType] = {
            c: (pl.String() if c in times else pl.Float64())
            for k, c in labels.items()
            if k in _CYCLE_KEYS | _OPTIONAL_CYCLE_KEYS
        }
        raw = collect_or_raise(scan_table(layout, dtypes), source=str(path))
        warnings: list[str] = []
        columns: dict[str, pl.Expr] = {
            "cycle": pl.col(labels["cycleindex"]).round(0).cast(pl.Int64),
        }
        conventions = dict(BA_CONVENTIONS)
        for target, key, family in (
            ("charge_mah", "chargecapacity", "charge_capacity_ah"),
            ("discharge_mah", "dischargecapacity", "charge_capacity_ah"),
            ("charge_wh", "chargeenergy", "charge_energy_wh"),
            ("discharge_wh", "dischargeenergy", "charge_energy_wh"),
            ("end_time_s", "testtime", "time_s"),
        ):
            column = labels[key]
            unit = split_label(column).unit or ("s" if family == "time_s" else "Ah")
            factor = unit_factor(family, unit)
            if factor is None:
                raise ParseError(f"unit {unit!r} not understood", location=f"column {column!r}")
            scale = factor[0] * (1000.0 if target.endswith("_mah") else 1.0)
            columns[target] = pl.col(column).abs() * scale
            conventions[f"column:{target}"] = f"{column!r} [{unit}]"
        conventions["cycles"] = (
            "per-cycle records of the file, stored as written (no series: capacities, energies "
            "and times are the archive's, not summarised here)"
        )
        conventions["end_time_s"] = "Test_Time (s) of the cycle row: test time at the cycle's end"
        if len(times) == 2:
            start, end = (_timestamps(raw, labels[k], warnings) for k in ("starttime", "endtime"))
            columns["duration_s"] = (end - start).dt.total_microseconds() / 1e6
            columns["start_time_s"] = pl.col("end_time_s") - pl.col("duration_s")
            conventions["duration_s"] = "End_Time - Start_Time"
        missing = raw.get_column(labels["cycleindex"]).null_count()
        frame = raw.select(**{k: v for k, v in columns.items() if k != "start_time_s"})
        if "start_time_s" in columns:
            frame = frame.with_columns(columns["start_time_s"].alias("start_time_s"))
        if missing:
            frame = frame.filter(pl.col("cycle").is_not_null())
            warnings.append(f"{missing} row(s) without a Cycle_Index were left out")
        table = per_cycle_table(frame)
        metadata: dict[str, Any] = {
            "export": "Battery Archive cycle data",
            "source_columns": list(layout.raw_columns),
            "encoding": layout.encoding,
            "delimiter": layout.separator,
            "per_cycle": {
                "min_current_a": _span(raw, labels.get("mincurrent")),
                "max_current_a": _span(raw, labels.get("maxcurrent")),
                "min_voltage_v": _span(raw, labels.get("minvoltage")),
                "max_voltage_v": _span(raw, labels.get("maxvoltage")),
            },
        }
        return CyclerData(
            empty_series(), "batteryarchive", conventions, metadata, warnings, cycles=table
        )


def _timestamps(raw: pl.DataFrame, column: str, warnings: list[str]) -> pl.Expr:
    values = [v for v in raw.get_column(column).drop_nulls().head(50).to_list() if v]
    formats = guess_datetime_format(values) or guess_datetime_format(
        [re.sub(r"\.\d+$", "", v) for v in values]
    )
    if formats is None:
        warnings.append(f"{column!r}: timestamps not recognised, no cycle durations")
        return pl.lit(None, dtype=pl.Datetime("us"))
    text = pl.col(column).str.strip_chars()
    if "%.f" not in formats[1]:
        text = text.str.replace(r"\.\d+$", "")
    return text.str.to_datetime(formats[1], strict=False)


def _span(raw: pl.DataFrame, column: str | None) -> list[float | None] | None:
    """Smallest and largest value of a per-cycle extreme over the file (not stored per cycle)."""
    if column is None:
        return None
    values = raw.get_column(column).drop_nulls()
    return [values.min(), values.max()] if values.len() else None  # type: ignore[list-item]


BA_SERIES_ALIASES: AliasTable = (
    ("time_s", ("testtime",), "s"),
    ("cycle", ("cycleindex",), "1"),
    ("current_a", ("current",), "A"),
    ("voltage_v", ("voltage",), "V"),
    ("charge_capacity_ah", ("chargecapacity",), "Ah"),
    ("discharge_capacity_ah", ("dischargecapacity",), "Ah"),
    ("charge_energy_wh", ("chargeenergy",), "Wh"),
    ("discharge_energy_wh", ("dischargeenergy",), "Wh"),
    ("temperature_c", ("celltemperature", "environmenttemperature"), "degC"),
)


class BatteryArchiveTimeseriesParser:
    """Battery Archive ``*_timeseries.csv``: the series, without step numbers."""

    name: ClassVar[str] = "batteryarchive_timeseries"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 5)
        return 0.96 if lines and _series_header(lines) is not None else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(path, ctx, _series_header, what="Battery Archive timeseries header")
        warnings: list[str] = []
        specs = resolve_aliases(layout.columns, BA_SERIES_ALIASES, warnings)
        check_required(specs, layout.columns, "not a Battery Archive timeseries")
        conventions = dict(BA_CONVENTIONS)
        conventions["capacity"] = (
            "Charge_/Discharge_Capacity (Ah) as written (unsigned counters, reset per cycle by "
            "most sources)"
        )
        conventions["temperature"] = "Cell_Temperature (C), else Environment_Temperature (C)"
        return text_to_cycler(
            layout,
            specs,
            vendor="batteryarchive",
            conventions=conventions,
            metadata={"export": "Battery Archive timeseries"},
            warnings=warnings,
        )
