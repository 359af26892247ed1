"""Column mappings: raw column -> canonical quantity, unit and sign, as polars expressions.

One engine serves the user-saved mappings of the generic parser and the built-in mappings of
the vendor text formats (Arbin, Neware, BDF), so unit handling and time parsing exist once.
Mapping format (``ctx.metadata["column_mapping"]``)::

    {"columns": {"Current(mA)": {"quantity": "current_a", "unit": "mA", "sign": 1}, ...},
     "delimiter": ",", "skip_rows": 0, "decimal": ".", "encoding": null, "sheet": null}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from cells.parsers.units import (
    DEFAULT_UNIT,
    QUANTITY_FAMILY,
    TEXT_TIME_UNITS,
    normalize_unit,
    split_label,
    unit_factor,
)
from lims.ingestion.parsing import ParseError

# Single unsigned counters split into charge/discharge by the sign of the current.
SPLIT_QUANTITIES = frozenset({"capacity_ah", "energy_wh"})


@dataclass(frozen=True)
class ColumnSpec:
    """How one raw column becomes a canonical quantity."""

    source: str
    quantity: str
    unit: str
    sign: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {"quantity": self.quantity, "unit": self.unit, "sign": self.sign}


@dataclass(frozen=True)
class MappingOptions:
    delimiter: str | None = None
    skip_rows: int = 0
    decimal: str | None = None
    encoding: str | None = None
    sheet: str | int | None = None


def parse_mapping(mapping: Any) -> tuple[list[ColumnSpec], MappingOptions]:
    """Validate a saved column mapping; errors name the offending entry."""
    if not isinstance(mapping, Mapping) or not isinstance(mapping.get("columns"), Mapping):
        raise ParseError(
            "column mapping must be a dict with a 'columns' dict", location="column_mapping"
        )
    specs: list[ColumnSpec] = []
    seen: dict[str, str] = {}
    for source, entry in mapping["columns"].items():
        where = f"column_mapping.columns[{source!r}]"
        if not isinstance(entry, Mapping):
            raise ParseError("entry must be a dict with quantity/unit/sign", location=where)
        quantity = entry.get("quantity")
        if quantity not in QUANTITY_FAMILY:
            allowed = ", ".join(sorted(QUANTITY_FAMILY))
            raise ParseError(f"unknown quantity {quantity!r} (one of {allowed})", location=where)
        family = QUANTITY_FAMILY[quantity]
        unit = entry.get("unit") or DEFAULT_UNIT[family]
        if not isinstance(unit, str) or not _unit_ok(quantity, unit):
            raise ParseError(f"unit {unit!r} does not fit quantity {quantity}", location=where)
        sign = entry.get("sign", 1)
        if sign not in (1, -1):
            raise ParseError(f"sign must be 1 or -1, not {sign!r}", location=where)
        if quantity in seen:
            raise ParseError(
                f"quantity {quantity} mapped twice ({seen[quantity]!r} and {source!r})",
                location=where,
            )
        seen[quantity] = str(source)
        specs.append(ColumnSpec(str(source), str(quantity), unit, int(sign)))
    skip_rows = mapping.get("skip_rows", 0) or 0
    if not isinstance(skip_rows, int) or skip_rows < 0:
        raise ParseError("skip_rows must be a non-negative integer", location="column_mapping")
    delimiter = mapping.get("delimiter") or None
    if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
        raise ParseError("delimiter must be a single character", location="column_mapping")
    decimal = mapping.get("decimal")
    if decimal not in (None, ".", ","):
        raise ParseError("decimal must be '.' or ','", location="column_mapping")
    options = MappingOptions(
        delimiter=delimiter,
        skip_rows=skip_rows,
        decimal=decimal,
        encoding=mapping.get("encoding") or None,
        sheet=mapping.get("sheet"),
    )
    return specs, options


def _unit_ok(quantity: str, unit: str) -> bool:
    if quantity == "time_s" and normalize_unit(unit) in TEXT_TIME_UNITS:
        return True
    return unit_factor(quantity, unit) is not None


# --- built-in (vendor) mappings -------------------------------------------------------------

AliasTable = Sequence[tuple[str, Sequence[str], str]]


def resolve_aliases(
    columns: Sequence[str], table: AliasTable, warnings: list[str] | None = None
) -> list[ColumnSpec]:
    """Pick, per quantity, the first column whose label key matches an alias (in priority order).

    Aliases are label keys (see ``units.name_key``); a trailing ``*`` matches a prefix. The
    unit comes from the label when it states one, else the alias table's default.
    """
    labels = [split_label(column) for column in columns]
    specs: list[ColumnSpec] = []
    used: set[str] = set()
    for quantity, aliases, default_unit in table:
        chosen: ColumnSpec | None = None
        rejected: list[str] = []
        for alias in aliases:
            for column, label in zip(columns, labels, strict=True):
                if column in used or not _key_matches(label.key, alias):
                    continue
                unit = label.unit or default_unit
                if _unit_ok(quantity, unit):
                    chosen = ColumnSpec(column, quantity, unit)
                    break
                rejected.append(f"{column!r} (unit {unit!r})")
            if chosen:
                break
        if chosen:
            used.add(chosen.source)
            specs.append(chosen)
        elif rejected and warnings is not None:
            warnings.append(f"{quantity}: unit not understood in {', '.join(rejected)}")
    return specs


def _key_matches(key: str, alias: str) -> bool:
    if alias.endswith("*"):
        return key.startswith(alias[:-1])
    return key == alias


def match_source(columns: Sequence[str], source: str) -> str | None:
    """The header column a mapping names: exact, else ignoring case and surrounding spaces."""
    if source in columns:
        return source
    wanted = source.strip().casefold()
    for column in columns:
        if column.strip().casefold() == wanted:
            return column
    return None


# --- values -> canonical expressions ---------------------------------------------------------

# "[Nd ][h:]mm:ss[.f]" clock durations; one pattern for Python's re and polars (Rust regex).
_HMS_PATTERN = (
    r"^\s*(?:(?P<d>\d+)\s*(?i:d|day|days)?[\s,.]+)?(?:(?P<h>\d+):)?(?P<m>\d+):"
    r"(?P<s>\d+(?:[.,]\d*)?)\s*$"
)
_HMS = re.compile(_HMS_PATTERN)

# (python strptime, polars/chrono) pairs tried against sampled values, in preference order.
_DATETIME_FORMATS: tuple[tuple[str, str], ...] = (
    ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S%.f"),
    ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"),
    ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S%.f"),
    ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S"),
    ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S%.f"),
    ("%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M:%S"),
    ("%m/%d/%Y %H:%M:%S.%f", "%m/%d/%Y %H:%M:%S%.f"),
    ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S"),
    ("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M:%S %p"),
    ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S"),
    ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S"),
    ("%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M"),
)


def looks_like_hms(values: Iterable[str]) -> bool:
    return any(_HMS.match(value) for value in values if value)


def guess_datetime_format(values: Iterable[str]) -> tuple[str, str] | None:
    """The first format parsing every sampled value (US month-first wins ambiguous dates)."""
    sample = [value for value in values if value][:50]
    if not sample:
        return None
    for python_format, chrono_format in _DATETIME_FORMATS:
        try:
            for value in sample:
                datetime.strptime(value, python_format)
        except ValueError:
            continue
        return python_format, chrono_format
    return None


def source_dtype(spec: ColumnSpec, sample: Sequence[str]) -> pl.DataType:
    """Read dtype for a mapped text column: strings for clock times and timestamps."""
    if spec.quantity == "time_s":
        unit = normalize_unit(spec.unit)
        if unit in TEXT_TIME_UNITS or looks_like_hms(sample):
            return pl.String()
    return pl.Float64()


def duration_seconds(expr: pl.Expr, scale: float = 1.0) -> pl.Expr:
    """Seconds from ``[Nd ][h:]mm:ss[.f]`` text, else the number times ``scale``."""
    parts = expr.str.extract_groups(_HMS_PATTERN)
    days = parts.struct.field("d").cast(pl.Float64).fill_null(0.0)
    hours = parts.struct.field("h").cast(pl.Float64).fill_null(0.0)
    minutes = parts.struct.field("m").cast(pl.Float64)
    seconds = parts.struct.field("s").str.replace(",", ".", literal=True).cast(pl.Float64)
    clock = days * 86400.0 + hours * 3600.0 + minutes * 60.0 + seconds
    numeric = expr.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False) * scale
    return pl.when(minutes.is_not_null()).then(clock).otherwise(numeric)


def seconds_since_first(expr: pl.Expr) -> pl.Expr:
    return (expr - expr.drop_nulls().first()).dt.total_microseconds().cast(pl.Float64) / 1e6


def time_expression(spec: ColumnSpec, dtype: pl.DataType, sample: Sequence[str] = ()) -> pl.Expr:
    base = pl.col(spec.source)
    unit = normalize_unit(spec.unit)
    if isinstance(dtype, pl.Datetime):
        return seconds_since_first(base)
    if isinstance(dtype, pl.Duration):
        return base.dt.total_microseconds().cast(pl.Float64) / 1e6
    if isinstance(dtype, pl.String):
        if unit == "datetime":
            formats = guess_datetime_format(sample)
            if formats is None:
                raise ParseError(
                    f"cannot recognise the timestamp format of {spec.source!r}",
                    location=f"column {spec.source!r}",
                )
            parsed = base.str.strip_chars().str.to_datetime(formats[1], strict=False)
            return seconds_since_first(parsed)
        factor = unit_factor("time_s", spec.unit) if unit not in TEXT_TIME_UNITS else None
        return duration_seconds(base, factor[0] if factor else 1.0)
    factor = unit_factor("time_s", spec.unit)
    if factor is None:
        raise ParseError(f"numeric time column with unit {spec.unit!r}", location=spec.source)
    return base.cast(pl.Float64) * factor[0]


def canonical_expressions(
    specs: Sequence[ColumnSpec],
    schema: Mapping[str, pl.DataType],
    samples: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, pl.Expr]:
    """Canonical column expressions for the mapped columns (missing ones are left out)."""
    exprs: dict[str, pl.Expr] = {}
    split: dict[str, pl.Expr] = {}
    for spec in specs:
        dtype = schema[spec.source]
        if spec.quantity == "time_s":
            exprs["time_s"] = time_expression(spec, dtype, (samples or {}).get(spec.source, ()))
            continue
        scale, offset = unit_factor(spec.quantity, spec.unit) or (1.0, 0.0)
        base = pl.col(spec.source)
        if isinstance(dtype, pl.String):
            base = base.str.replace(",", ".", literal=True).cast(pl.Float64, strict=False)
        value = base.cast(pl.Float64)
        if scale * spec.sign != 1.0:
            value = value * (scale * spec.sign)
        if offset:
            value = value + offset
        if QUANTITY_FAMILY[spec.quantity] in ("capacity", "energy"):
            value = value.abs()  # canonical capacities and energies are unsigned
        if spec.quantity in SPLIT_QUANTITIES:
            split[spec.quantity] = value
        else:
            exprs[spec.quantity] = value
    for quantity, value in split.items():
        charge, discharge = f"charge_{quantity}", f"discharge_{quantity}"
        if charge in exprs or discharge in exprs:
            continue  # explicit split columns win over a single unsigned column
        current = exprs.get("current_a")
        if current is None:
            raise ParseError(
                f"{quantity} is split into charge/discharge by the current sign: map a current",
                location="column_mapping",
            )
        exprs[charge] = pl.when(current > 0).then(value).otherwise(0.0)
        exprs[discharge] = pl.when(current < 0).then(value).otherwise(0.0)
    return exprs


def derived_step(current: pl.Expr) -> pl.Expr:
    """Segment counter (1-based) that advances whenever the sign of the current changes."""
    sign = current.sign().fill_null(0)
    return (sign != sign.shift(1)).fill_null(True).cum_sum().cast(pl.Int64)
