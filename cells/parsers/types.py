"""The parser output contract shared by every cycler format.

Every parser returns the same canonical columns so that the summary, storage and plots never
need to know which instrument wrote a file; everything vendor-specific is recorded in
``conventions`` and ``metadata`` instead of being hidden in the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from lims.ingestion.text import collect_or_raise, polars_parse_error

CANONICAL_SCHEMA: dict[str, pl.DataType] = {
    "time_s": pl.Float64(),
    "cycle": pl.Int64(),
    "step": pl.Int64(),
    "current_a": pl.Float64(),
    "voltage_v": pl.Float64(),
    "charge_capacity_ah": pl.Float64(),
    "discharge_capacity_ah": pl.Float64(),
    "charge_energy_wh": pl.Float64(),
    "discharge_energy_wh": pl.Float64(),
    "temperature_c": pl.Float64(),
}
CANONICAL_COLUMNS: tuple[str, ...] = tuple(CANONICAL_SCHEMA)
INTEGER_COLUMNS = frozenset({"cycle", "step"})


@dataclass
class CyclerData:
    """One cycler file in canonical form.

    ``series`` is lazy so that very large CSV exports are streamed rather than loaded; binary
    formats (whose libraries read eagerly) wrap an in-memory frame.
    """

    series: pl.LazyFrame
    vendor: str
    conventions: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def collect(self) -> pl.DataFrame:
        """Materialise ``series``; bad rows found late in a streamed file become ParseError."""
        return collect_or_raise(self.series)


def canonical_select(exprs: Mapping[str, pl.Expr]) -> list[pl.Expr]:
    """The canonical columns in order: given expressions cast, the others typed nulls."""
    selected: list[pl.Expr] = []
    for name, dtype in CANONICAL_SCHEMA.items():
        expr = exprs.get(name)
        if expr is None:
            selected.append(pl.lit(None, dtype=dtype).alias(name))
        elif name in INTEGER_COLUMNS:
            # Some exports write "1.0" for indices: round before the (non-strict) integer cast.
            selected.append(expr.cast(pl.Float64).round(0).cast(dtype, strict=False).alias(name))
        else:
            selected.append(expr.cast(dtype, strict=False).alias(name))
    return selected


def canonical_frame(frame: pl.LazyFrame, exprs: Mapping[str, pl.Expr]) -> pl.LazyFrame:
    return frame.select(canonical_select(exprs))


def canonical_eager(frame: pl.DataFrame, exprs: Mapping[str, pl.Expr]) -> pl.DataFrame:
    """Eager variant for in-memory reads (binary formats): no query-planning overhead."""
    try:
        return frame.select(canonical_select(exprs))
    except pl.exceptions.PolarsError as exc:
        raise polars_parse_error(exc) from exc
