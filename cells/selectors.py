"""Reads for cells: scoped to the user's projects, constant query counts for lists."""

from __future__ import annotations

from typing import Any

import polars as pl
from django.db.models import Count, Prefetch, QuerySet

from cells.filtersets import CellFilterSet, CyclingTestFilterSet
from cells.models import Cell, CycleRecord, CyclingTest
from lims.ingestion import storage
from lims.selectors import scope_to_user


def cell_list(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[Cell]:
    qs = (
        Cell.objects.select_related(
            "project", "operator", "cathode_sample", "se_sample", "anode_sample"
        )
        .annotate(test_count=Count("tests", distinct=True))
        .order_by("-created_at")
    )
    qs = scope_to_user(qs, user=user)
    return CellFilterSet(filters or {}, queryset=qs).qs


def cell_get(*, user: Any, code: str) -> Cell:
    qs = Cell.objects.select_related(
        "project", "operator", "cathode_sample", "se_sample", "anode_sample"
    )
    qs = scope_to_user(qs, user=user)
    return qs.get(code=code)


def cycling_test_list(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[CyclingTest]:
    qs = CyclingTest.objects.select_related(
        "cell", "raw_file", "instrument", "job", "performance", "project"
    )
    qs = scope_to_user(qs, user=user)
    return CyclingTestFilterSet(filters or {}, queryset=qs).qs


def cell_tests(*, cell: Cell) -> list[CyclingTest]:
    return list(
        cell.tests.select_related("raw_file", "instrument", "job", "performance")
        .prefetch_related(Prefetch("cycles", queryset=CycleRecord.objects.order_by("cycle_index")))
        .order_by("created_at")
    )


def voltage_curves(
    *, test: CyclingTest, cycle_indices: list[int], max_points: int = 4000
) -> dict[int, dict[str, list[float]]]:
    """Voltage vs capacity of chosen cycles, read from the Parquet series (downsampled)."""
    if not test.series_path or not cycle_indices:
        return {}
    lf = pl.scan_parquet(storage.absolute(test.series_path))
    first = lf.select(pl.col("cycle").min()).collect().item()
    if first is None:
        return {}
    wanted = [int(first) + i - 1 for i in cycle_indices]
    df = (
        lf.filter(pl.col("cycle").is_in(wanted))
        .select(
            "cycle",
            "voltage_v",
            "current_a",
            pl.max_horizontal(
                pl.col("charge_capacity_ah").fill_null(0),
                pl.col("discharge_capacity_ah").fill_null(0),
            ).alias("cap"),
        )
        .collect()
    )
    out: dict[int, dict[str, list[float]]] = {}
    for (cycle,), part in df.group_by(["cycle"], maintain_order=True):
        step = max(1, part.height // max_points)
        part = part.gather_every(step)
        index = int(cycle) - int(first) + 1
        out[index] = {
            "capacity_mah": (part["cap"] * 1000).to_list(),
            "voltage_v": part["voltage_v"].to_list(),
        }
    return out
