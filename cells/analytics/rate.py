"""Rate capability: current and C-rate per cycle, consecutive cycles grouped into rate steps.

Mean |current| of a half cycle is time-weighted: the trapezoidal integral of |I| dt over
consecutive rows of that direction divided by their duration, so logging density (BioLogic
logs more often where V moves) does not bias it; a CV hold lowers it. C-rate = mean |I| (mA) /
nominal capacity (mAh), in 1/h. Consecutive cycles whose grouping current (discharge by
default) stays within ``tolerance`` (relative) of the step's first cycle form one rate step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

METHOD_VERSION = "1"


def cycle_currents(series: pl.DataFrame, *, rest_fraction: float = 0.01) -> pl.DataFrame:
    """Per ``cycle_index``: time-weighted mean |I| (mA) and duration (s) of charge, discharge.

    A ``segment`` column (the file of a stitched test) keeps two rows of different files from
    forming a pair: the interval between two files is in neither (a pause, a restart)."""
    i = pl.col("current_a")
    limit = rest_fraction * i.abs().max().over("cycle_index")
    direction = pl.when(i > limit).then(1).when(i < -limit).then(-1).otherwise(0)
    segment = pl.col("segment") if "segment" in series.columns else pl.lit(0)
    rows = series.select(
        "cycle_index", "time_s", "current_a", segment.alias("segment")
    ).with_columns(direction.alias("dir"))
    prev = rows.select(
        pl.col("dir").shift(1).alias("pdir"),
        pl.col("current_a").shift(1).alias("pi"),
        pl.col("time_s").shift(1).alias("pt"),
        pl.col("cycle_index").shift(1).alias("pc"),
        pl.col("segment").shift(1).alias("pseg"),
    )
    pairs = pl.concat([rows, prev], how="horizontal").filter(
        (pl.col("dir") != 0)
        & (pl.col("dir") == pl.col("pdir"))
        & (pl.col("cycle_index") == pl.col("pc"))
        & (pl.col("segment") == pl.col("pseg"))
    )
    pairs = pairs.with_columns(
        (pl.col("time_s") - pl.col("pt")).alias("dt"),
    ).with_columns(
        (pl.col("dt") * (pl.col("current_a").abs() + pl.col("pi").abs()) / 2).alias("as"),
    )
    out = pairs.group_by("cycle_index").agg(
        *(
            expr
            for name, sign in (("charge", 1), ("discharge", -1))
            for expr in (
                (
                    pl.col("as").filter(pl.col("dir") == sign).sum()
                    / pl.col("dt").filter(pl.col("dir") == sign).sum()
                    * 1000.0
                ).alias(f"{name}_current_ma"),
                pl.col("dt").filter(pl.col("dir") == sign).sum().alias(f"{name}_duration_s"),
            )
        )
    )
    cycles = series.select(pl.col("cycle_index").unique())
    return (
        cycles.join(out, on="cycle_index", how="left")
        .sort("cycle_index")
        .with_columns(
            pl.col(c).fill_nan(None) for c in ("charge_current_ma", "discharge_current_ma")
        )
    )


@dataclass
class RateStep:
    index: int
    first_cycle: int
    last_cycle: int
    cycles: int
    current_ma: float
    c_rate: float | None
    capacity_mean_mah: float | None
    capacity_first_mah: float | None
    capacity_last_mah: float | None
    capacity_mean_mah_g: float | None = None


@dataclass
class RateCapability:
    per_cycle: list[dict[str, Any]]
    steps: list[RateStep]
    method: dict[str, Any] = field(default_factory=dict)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def rate_steps(
    cycles: list[dict[str, Any]],
    *,
    nominal_mah: float | None,
    by: str = "discharge",
    tolerance: float = 0.1,
) -> RateCapability:
    """Group cycles into rate steps.

    ``cycles``: dicts with ``cycle_index``, ``charge_current_ma``, ``discharge_current_ma``,
    ``charge_mah``, ``discharge_mah`` and optionally ``discharge_mah_g``/``charge_mah_g``.
    Cycles without a current in the ``by`` direction break a step and belong to none.
    """
    per_cycle = []
    for c in cycles:
        row = dict(c)
        for name in ("charge", "discharge"):
            current = c.get(f"{name}_current_ma")
            row[f"{name}_c_rate"] = (
                current / nominal_mah if current is not None and nominal_mah else None
            )
        per_cycle.append(row)
    steps: list[list[dict[str, Any]]] = []
    open_step: list[dict[str, Any]] | None = None
    for row in per_cycle:
        current = row.get(f"{by}_current_ma")
        if current is None or current <= 0:
            open_step = None
            continue
        ref: float = open_step[0][f"{by}_current_ma"] if open_step else 0.0
        if not open_step or abs(current - ref) > tolerance * ref:
            open_step = [row]
            steps.append(open_step)
        else:
            open_step.append(row)
    out: list[RateStep] = []
    for n, members in enumerate(steps, start=1):
        caps = [m[f"{by}_mah"] for m in members if m.get(f"{by}_mah") is not None]
        per_g = [m[f"{by}_mah_g"] for m in members if m.get(f"{by}_mah_g") is not None]
        current = _mean([m[f"{by}_current_ma"] for m in members])
        assert current is not None
        out.append(
            RateStep(
                index=n,
                first_cycle=members[0]["cycle_index"],
                last_cycle=members[-1]["cycle_index"],
                cycles=len(members),
                current_ma=current,
                c_rate=current / nominal_mah if nominal_mah else None,
                capacity_mean_mah=_mean(caps),
                capacity_first_mah=caps[0] if caps else None,
                capacity_last_mah=caps[-1] if caps else None,
                capacity_mean_mah_g=_mean(per_g),
            )
        )
    method = {
        "version": METHOD_VERSION,
        "current": "time-weighted mean |I| of the half cycle's rows (trapezoidal integral of "
        "|I| dt / duration), mA",
        "c_rate": f"mean |I| / nominal capacity {nominal_mah:g} mAh (1/h)"
        if nominal_mah
        else "not computed: the cell has no nominal capacity (steps grouped by current)",
        "grouping": f"consecutive cycles whose {by} current is within {tolerance:.0%} of the "
        "step's first cycle",
        "capacity": f"{by} capacity of the cycle table, mAh (mean, first and last of the step)",
    }
    return RateCapability(per_cycle=per_cycle, steps=out, method=method)
