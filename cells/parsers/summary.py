"""Per-cycle summary of a canonical series, in one streaming polars pass.

Capacity is the charge that flowed in this file during the cycle. It comes from the
instrument's own capacity counters (what the instrument reported and what peers compare);
a file without any gets counters integrated from its current at parse time. The counters
reset per step, half cycle or cycle depending on the vendor, so the summary sums reset-aware
increments over consecutive rows: ``d = v[i] - v[i-1]``, and ``d = v[i]`` when the value
dropped (a reset). The first value of a counter in the file is its baseline and contributes
nothing: a counter the file starts with (an export cut from a longer test, a restarted
channel) is charge that flowed before this file. The increment of row ``i`` belongs to row
``i``'s cycle, so the interval that ends on a cycle's first row counts in that cycle.
"""

from __future__ import annotations

from typing import cast

import polars as pl

from cells.parsers.types import CANONICAL_SCHEMA
from lims.ingestion.parsing import ParseError
from lims.ingestion.text import collect_or_raise

SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "cycle_index": pl.Int64(),
    "cycle": pl.Int64(),
    "charge_mah": pl.Float64(),
    "discharge_mah": pl.Float64(),
    "charge_wh": pl.Float64(),
    "discharge_wh": pl.Float64(),
    "mean_charge_v": pl.Float64(),
    "mean_discharge_v": pl.Float64(),
    "end_charge_v": pl.Float64(),
    "end_discharge_v": pl.Float64(),
    "start_time_s": pl.Float64(),
    "end_time_s": pl.Float64(),
    "duration_s": pl.Float64(),
    "rows": pl.Int64(),
}


# counter column -> name of its per-row increment
_COUNTERS = {
    "charge_capacity_ah": "_dqc",
    "discharge_capacity_ah": "_dqd",
    "charge_energy_wh": "_dec",
    "discharge_energy_wh": "_ded",
}


def with_increments(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Add reset-aware per-row increments of the counter columns.

    Nulls are carried forward first so a gap never re-adds the whole running value. The first
    value of a counter (the file's first row, or the first after leading gaps) is its baseline:
    increment 0. Built in stages (fill, difference, choose) so each intermediate is computed
    once.
    """
    return (
        rows.with_columns(pl.col(c).forward_fill() for c in _COUNTERS)
        .with_columns(
            (pl.col(c) - pl.col(c).shift(1)).alias(f"{i}_d") for c, i in _COUNTERS.items()
        )
        .with_columns(
            pl.when(pl.col(f"{i}_d") < 0)
            .then(pl.col(c))
            .otherwise(pl.col(f"{i}_d"))
            .fill_null(pl.when(pl.col(c).is_not_null()).then(0.0))  # first value: baseline
            .alias(i)
            for c, i in _COUNTERS.items()
        )
    )


def _q_sum(increment: str) -> pl.Expr:
    """Sum of increments, null when the cycle has no value at all for that column."""
    return pl.when(pl.col(increment).count() > 0).then(pl.col(increment).sum())


def summarize_cycles(series: pl.LazyFrame) -> pl.DataFrame:
    """One row per file cycle, sorted: capacities (mAh), energies (Wh), voltages, times, rows."""
    return collect_or_raise(summary_plan(series), streaming=_streams_from_storage(series))


def summary_plan(series: pl.LazyFrame) -> pl.LazyFrame:
    """The lazy query behind :func:`summarize_cycles`, to run beside other sinks of a scan."""
    schema = series.collect_schema()
    missing = [name for name in CANONICAL_SCHEMA if name not in schema]
    if missing:
        raise ValueError(f"series lacks canonical columns {missing}")
    voltage = pl.col("voltage_v")
    selected = series.select(
        # Files without a cycle column are one cycle; sparse nulls belong to the previous cycle.
        pl.col("cycle").forward_fill().backward_fill(),
        pl.col("time_s", "current_a", "voltage_v", *_COUNTERS),
    )
    rows = with_increments(selected).with_columns(
        (voltage * pl.col("_dqc")).alias("_vdqc"),
        (voltage * pl.col("_dqd")).alias("_vdqd"),
    )
    per_cycle = rows.group_by("cycle").agg(
        _q_sum("_dqc").alias("_qc"),
        _q_sum("_dqd").alias("_qd"),
        _q_sum("_dec").alias("_ec"),
        _q_sum("_ded").alias("_ed"),
        _q_sum("_vdqc").alias("_vqc"),
        _q_sum("_vdqd").alias("_vqd"),
        voltage.filter(pl.col("current_a") > 0).last().alias("end_charge_v"),
        voltage.filter(pl.col("current_a") < 0).last().alias("end_discharge_v"),
        pl.col("time_s").first().alias("start_time_s"),
        pl.col("time_s").last().alias("end_time_s"),
        pl.len().cast(pl.Int64).alias("rows"),
    )
    charge_ah, discharge_ah = pl.col("_qc"), pl.col("_qd")
    return (
        per_cycle.sort("cycle", nulls_last=True)
        .with_columns(
            (pl.col("cycle") - pl.col("cycle").min() + 1).fill_null(1).alias("cycle_index"),
            (charge_ah * 1000.0).alias("charge_mah"),
            (discharge_ah * 1000.0).alias("discharge_mah"),
            pl.coalesce(pl.col("_ec"), pl.col("_vqc")).alias("charge_wh"),
            pl.coalesce(pl.col("_ed"), pl.col("_vqd")).alias("discharge_wh"),
            pl.when(charge_ah > 0).then(pl.col("_vqc") / charge_ah).alias("mean_charge_v"),
            pl.when(discharge_ah > 0).then(pl.col("_vqd") / discharge_ah).alias("mean_discharge_v"),
            (pl.col("end_time_s") - pl.col("start_time_s")).alias("duration_s"),
        )
        .select([pl.col(name).cast(dtype) for name, dtype in SUMMARY_SCHEMA.items()])
    )


# Cycle numbers are stored as 32-bit integers (and cycle_index from 1): a file's own numbers
# must fit, whatever it writes.
_INT32_MAX = 2**31 - 1


def check_summary(summary: pl.DataFrame) -> None:
    """Refuse a summary that cannot be stored as cycle rows, with the reason.

    No rows (every line was blank), a cycle column that has no value in any row, or cycle
    numbers beyond 32 bits (a corrupt or mis-mapped column) are the file's fault, said so here
    rather than as a database error.
    """
    if summary.height == 0:
        raise ParseError("no data rows (only blank lines after the header?)", location="data")
    cycles = summary.get_column("cycle")
    if cycles.null_count():
        raise ParseError(
            "the cycle column has no value in any row: map another column as cycle or none "
            "(a file without a cycle counter gets cycles derived from its current)",
            location="cycle column",
        )
    low, high = cast(int, cycles.min()), cast(int, cycles.max())
    if low < -_INT32_MAX or high > _INT32_MAX or high - low >= _INT32_MAX:
        raise ParseError(
            f"cycle numbers from {low} to {high} are out of range (at most 32-bit integers "
            "spanning fewer than 2**31 cycles): not a cycle counter",
            location="cycle column",
        )


def _streams_from_storage(series: pl.LazyFrame) -> bool:
    """Stream file scans (bounded memory); in-memory frames are faster on the default engine.

    Anything not recognisably an in-memory frame streams, the safe choice for large inputs.
    """
    plan = series.explain(optimized=False)
    return "SCAN" in plan or "DF [" not in plan
