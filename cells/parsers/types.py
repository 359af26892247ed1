"""The parser output contract shared by every cycler format.

Every parser returns the same canonical columns so that the summary, storage and plots never
need to know which instrument wrote a file; everything vendor-specific is recorded in
``conventions`` and ``metadata`` instead of being hidden in the numbers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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

    ``cycles`` is set only by files that hold per-cycle records and no series (Battery Archive
    ``*_cycle_data.csv``): the vendor's own cycle table in the columns of
    ``summary.SUMMARY_SCHEMA``, stored as it is instead of summarising ``series`` (which is
    then empty).
    """

    series: pl.LazyFrame
    vendor: str
    conventions: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    cycles: pl.DataFrame | None = None

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


def drop_blank_rows(frame: pl.LazyFrame, columns: Iterable[str]) -> pl.LazyFrame:
    """Drop rows in which every used column is empty: blank lines of a text export.

    polars turns each blank line after the last row (Arbin CSVs often end with several) into a
    row of nulls; such a row is no measurement and would count in ``rows``.
    """
    names = list(dict.fromkeys(columns))
    if not names:
        return frame
    return frame.filter(pl.any_horizontal(pl.col(name).is_not_null() for name in names))


INTEGRATED_CAPACITY = (
    "derived: the file has no capacity column, so charge/discharge capacity is the time "
    "integral of the current (trapezoid between rows of one step; across a step change the "
    "new step's current over the whole interval), charge for current > 0, discharge for < 0"
)


def integrated_capacity(
    exprs: dict[str, pl.Expr], conventions: dict[str, str], *, step: pl.Expr | None = None
) -> None:
    """Fill charge/discharge capacity from the current integral when a file has none.

    The counters start at 0 on the first row and never reset; the summary differences them
    like any instrument counter. ``step`` (or ``exprs["step"]``) keeps a step change from
    averaging the old step's current into the new step's first interval.
    """
    if "charge_capacity_ah" in exprs or "discharge_capacity_ah" in exprs:
        return
    current, time = exprs.get("current_a"), exprs.get("time_s")
    if current is None or time is None:
        return
    step = step if step is not None else exprs.get("step")
    dt = (time - time.shift(1)).clip(lower_bound=0.0).fill_null(0.0)  # time going back: 0
    mean = (current + current.shift(1)) / 2.0
    if step is not None:
        mean = pl.when(step == step.shift(1)).then(mean).otherwise(current)
    dq = (mean.fill_null(current) * dt / 3600.0).fill_null(0.0)
    exprs["charge_capacity_ah"] = dq.clip(lower_bound=0.0).cum_sum()
    exprs["discharge_capacity_ah"] = (-dq).clip(lower_bound=0.0).cum_sum()
    conventions["capacity"] = INTEGRATED_CAPACITY


def derived_cycle(exprs: dict[str, pl.Expr], conventions: dict[str, str]) -> None:
    """Give a file without a cycle counter one, so no cycle ever comes out without a number.

    From the current (charge/discharge alternance, as EC-Lab defines it): a cycle starts with
    each charge that follows a discharge. Rows without current are rests, never half cycles:
    they belong to the half cycle before them. No current at all: the whole file is cycle 0.
    """
    if "cycle" in exprs:
        return
    current = exprs.get("current_a")
    if current is None:
        exprs["cycle"] = pl.lit(0, dtype=pl.Int64)
        conventions["cycle"] = "none in the file and no current: the whole file is cycle 0"
        return
    direction = pl.when(current > 0).then(1).when(current < 0).then(-1).forward_fill()
    starts = (direction == 1) & (direction.shift(1) == -1)
    exprs["cycle"] = starts.fill_null(False).cum_sum().cast(pl.Int64)
    conventions["cycle"] = (
        "derived (the file has no cycle counter): 0-based, +1 at each charge that follows a "
        "discharge; rows without current are rests and do not start half cycles"
    )


def canonical_eager(frame: pl.DataFrame, exprs: Mapping[str, pl.Expr]) -> pl.DataFrame:
    """Eager variant for in-memory reads (binary formats): no query-planning overhead."""
    try:
        return frame.select(canonical_select(exprs))
    except pl.exceptions.PolarsError as exc:
        raise polars_parse_error(exc) from exc
