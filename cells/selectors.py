"""Reads for cells: scoped to the user's projects, constant query counts for lists."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.db.models.functions import Coalesce

from cells.filtersets import CellFilterSet, CyclingTestFilterSet
from cells.models import (
    Cell,
    CycleRecord,
    CyclingTest,
    PerformanceRecordVersion,
    StitchedRecordVersion,
)
from lims.ingestion import storage
from lims.selectors import scope_to_user


def cell_list(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[Cell]:
    qs = (
        Cell.objects.select_related(
            "project", "operator", "cathode_sample", "se_sample", "anode_sample"
        )
        # a correlated count, evaluated for the page's rows only: a COUNT over a join made
        # PostgreSQL group every cell of the project before the LIMIT (0.6 s at 100 k cells)
        .annotate(
            test_count=Coalesce(
                Subquery(
                    CyclingTest.objects.filter(cell=OuterRef("pk"))
                    .order_by()
                    .values("cell")
                    .annotate(n=Count("pk"))
                    .values("n")
                ),
                0,
            )
        )
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
        cell.tests.select_related("cell", "raw_file", "instrument", "job", "performance")
        .prefetch_related(
            Prefetch("cycles", queryset=CycleRecord.objects.order_by("cycle_index")),
            Prefetch(
                "performance_versions",
                queryset=PerformanceRecordVersion.objects.order_by("-version"),
            ),
        )
        .order_by("created_at")
    )


def stitched_versions(*, cell: Cell) -> list[StitchedRecordVersion]:
    return list(cell.stitched_versions.order_by("-version")[:50])


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


@dataclass
class LotCellGroup:
    """Cells descended from one lot that share a coating recipe and an anneal."""

    recipe: str
    anneal: str
    cells: list[Cell] = field(default_factory=list)


def cells_from_lot(*, user: Any, lot: Any) -> list[LotCellGroup]:
    """Every cell built from material of ``lot``, grouped by coating recipe and anneal.

    Walks the lineage down from the lot's samples one generation at a time (a fixed number of
    queries per generation), then carries the deposition and anneal operations met on the way
    down the graph in topological order.
    """
    from depositions.models import DepositionRun, PostTreatment
    from samples.choices import OperationKind
    from samples.models import Operation, OperationInput, OperationOutput, Sample

    # 1. the subgraph below the lot's root samples, a generation per query pair
    roots = set(
        Sample.objects.filter(lot=lot, produced_by__isnull=True).values_list("pk", flat=True)
    )
    ins: list[tuple[int, int]] = []  # (operation, sample taken)
    outs: list[tuple[int, int]] = []  # (operation, sample made)
    seen_ops: set[int] = set()
    frontier = set(roots)
    while frontier:
        new_ins = list(
            OperationInput.objects.filter(sample_id__in=frontier)
            .exclude(operation_id__in=seen_ops)
            .values_list("operation_id", "sample_id")
        )
        op_ids = {op for op, _ in new_ins}
        if not op_ids:
            break
        seen_ops |= op_ids
        ins += new_ins
        new_outs = list(
            OperationOutput.objects.filter(operation_id__in=op_ids).values_list(
                "operation_id", "sample_id"
            )
        )
        outs += new_outs
        frontier = {sample for _, sample in new_outs}
    kinds = dict(Operation.objects.filter(pk__in=seen_ops).values_list("pk", "kind"))
    # 2. carry (deposition, anneal) down in topological order: an operation runs after every
    #    operation that made one of its inputs, so a mix sees all its coated inputs
    made_by = {sample: op for op, sample in outs}
    taken_by_op: dict[int, list[int]] = defaultdict(list)
    made_by_op: dict[int, list[int]] = defaultdict(list)
    needs: dict[int, set[int]] = defaultdict(set)
    for op, sample in ins:
        taken_by_op[op].append(sample)
        if sample in made_by:
            needs[op].add(made_by[sample])
    for op, sample in outs:
        made_by_op[op].append(sample)
    context: dict[int, set[tuple[int | None, int | None]]] = defaultdict(set)
    for pk in roots:
        context[pk].add((None, None))
    done: set[int] = set()
    pending = set(seen_ops)
    while pending:
        ready = {op for op in pending if needs[op] <= done}
        if not ready:  # a cycle cannot happen in lineage; stop rather than loop
            break
        for op in ready:
            carried = set()
            for sample in taken_by_op[op]:
                for dep, ann in context[sample]:
                    if kinds[op] == OperationKind.DEPOSITION:
                        dep = op
                    elif kinds[op] == OperationKind.ANNEAL:
                        ann = op
                    carried.add((dep, ann))
            for sample in made_by_op[op]:
                context[sample] |= carried
        done |= ready
        pending -= ready
    runs = {
        r.operation_id: r
        for r in DepositionRun.objects.filter(operation_id__in=seen_ops).select_related("recipe")
    }
    anneals = {a.operation_id: a for a in PostTreatment.objects.filter(operation_id__in=seen_ops)}
    cells = (
        cell_list(user=user)
        .filter(cathode_sample_id__in=list(context))
        .select_related("cathode_sample")
        .prefetch_related("tests__performance")
    )
    groups: dict[tuple[str, str], LotCellGroup] = {}
    for cell in cells:
        assert cell.cathode_sample_id is not None  # filtered on it above
        for dep, ann in sorted(context[cell.cathode_sample_id], key=str):
            run = runs.get(dep) if dep else None
            recipe = f"{run.recipe.name} v{run.recipe.version}" if run else "uncoated"
            anneal = str(anneals[ann]) if ann in anneals else "not annealed"
            group = groups.setdefault((recipe, anneal), LotCellGroup(recipe, anneal))
            group.cells.append(cell)
    return sorted(groups.values(), key=lambda g: (g.recipe, g.anneal))


# -- analytics (dQ/dV, rate capability, symmetric cells) ----------------------------------


def _provenance(test: CyclingTest) -> dict[str, Any]:
    return {
        "test": test.pk,
        "raw_sha256": test.raw_file.sha256,
        "raw_file": test.raw_file.original_name,
        "parser": f"{test.parser_name} {test.parser_version}",
        "series": test.series_path,
    }


def _series(test: CyclingTest, cycle_indices: list[int] | None = None) -> pl.DataFrame:
    """The stored series with ``cycle_index`` (cycle in file - first + 1, as the cycle table)."""
    lf = pl.scan_parquet(storage.absolute(test.series_path))
    first = lf.select(pl.col("cycle").min()).collect().item()
    if first is None:
        return pl.DataFrame()
    lf = lf.with_columns((pl.col("cycle") - int(first) + 1).alias("cycle_index"))
    if cycle_indices is not None:
        lf = lf.filter(pl.col("cycle_index").is_in(cycle_indices))
    return lf.collect()


def dqdv_of_test(
    *, test: CyclingTest, cycle_indices: list[int], params: Any = None
) -> dict[str, Any]:
    """dQ/dV and dV/dQ of the chosen cycles (charge and discharge), with the method used."""
    from dataclasses import asdict

    from cells.analytics.dqdv import DqdvParams, dqdv_cycles

    p = params or DqdvParams()
    provenance = {**_provenance(test), "cycles": cycle_indices}
    out: dict[str, Any] = {"provenance": provenance, "method": p.method(), "curves": []}
    if not test.series_path or not cycle_indices:
        return out
    frame = _series(test, cycle_indices)
    if frame.height:
        out["curves"] = [
            asdict(r) for r in dqdv_cycles(frame, cycle_indices=cycle_indices, params=p)
        ]
    return out


def rate_capability_of_test(*, test: CyclingTest) -> dict[str, Any]:
    """Current and C-rate per cycle (C-rate from the cell's nominal capacity), rate steps."""
    from dataclasses import asdict

    from cells.analytics.rate import cycle_currents, rate_steps

    cell = test.cell
    nominal = float(cell.nominal_capacity_mah) if cell and cell.nominal_capacity_mah else None
    currents: dict[int, dict[str, Any]] = {}
    if test.series_path:
        frame = _series(test)
        if frame.height:
            currents = {r["cycle_index"]: r for r in cycle_currents(frame).to_dicts()}
    cycles = []
    for record in sorted(test.cycles.all(), key=lambda c: c.cycle_index):  # prefetched on pages
        row = currents.get(record.cycle_index, {"cycle_index": record.cycle_index})
        cycles.append(
            {
                **row,
                "charge_mah": record.charge_mah,
                "discharge_mah": record.discharge_mah,
                "charge_mah_g": record.charge_mah_g,
                "discharge_mah_g": record.discharge_mah_g,
            }
        )
    result = rate_steps(cycles, nominal_mah=nominal)
    return {
        "provenance": {**_provenance(test), "nominal_capacity_mah": nominal},
        "method": result.method,
        "per_cycle": result.per_cycle,
        "steps": [asdict(s) for s in result.steps],
    }


def symmetric_of_test(*, test: CyclingTest, max_points: int = 4000) -> dict[str, Any]:
    """Li-symmetric analysis: steps, overpotentials, the first failure, V(t) for the plot."""
    from dataclasses import asdict

    from cells.analytics.symmetric import analyse

    cell = test.cell
    area = float(cell.area_cm2) if cell and cell.area_cm2 else None
    out: dict[str, Any] = {"provenance": {**_provenance(test), "area_cm2": area}}
    frame = _series(test) if test.series_path else pl.DataFrame()
    if not frame.height:
        return {**out, "steps": [], "failure": None, "trace": {}}
    result = analyse(frame, area_cm2=area)
    every = max(1, frame.height // max_points)
    thin = frame.gather_every(every)
    return {
        **out,
        "method": result.method,
        "steps": [
            {
                **asdict(s),
                "overpotential_mv": s.overpotential_v * 1000
                if s.overpotential_v is not None
                else None,
            }
            for s in result.steps
        ],
        "failure": asdict(result.failure) if result.failure else None,
        "trace": {
            "time_h": (thin["time_s"] / 3600).to_list(),
            "voltage_v": thin["voltage_v"].to_list(),
            "current_ma": (thin["current_a"] * 1000).to_list(),
        },
    }


# -- stitching ---------------------------------------------------------------------------

_MERGED = (
    "charge_mah",
    "discharge_mah",
    "charge_wh",
    "discharge_wh",
    "duration_s",
    "mean_charge_v",
    "mean_discharge_v",
    "end_charge_v",
    "end_discharge_v",
)


def cell_chain(*, cell: Cell) -> list[CyclingTest]:
    """The cell's tests: the stitched test's members in chain order, then the duplicates and
    the detached ones (each says why in ``chain_notes``)."""
    tests = cell.tests.select_related("raw_file", "duplicate_of__raw_file").prefetch_related(
        Prefetch("cycles", queryset=CycleRecord.objects.order_by("cycle_index"))
    )
    out = sorted(tests, key=lambda t: (t.chain_position is None, t.chain_position or 0, t.pk))
    for t in out:  # start and end on the stitched clock, hours (members only)
        t.cycle_list = list(t.cycles.all())  # type: ignore[attr-defined]
        offset = t.chain_time_offset_s
        known = offset is not None and t.series_first_s is not None and t.series_last_s is not None
        t.stitched_start_h = (t.series_first_s + offset) / 3600 if known else None  # type: ignore[attr-defined,operator]
        t.stitched_end_h = (t.series_last_s + offset) / 3600 if known else None  # type: ignore[attr-defined,operator]
    return out


def chain_members(*, cell: Cell) -> list[CyclingTest]:
    """The stitched test's members in chain order, with their raw files (one query)."""
    return list(
        cell.tests.filter(chain_role=CyclingTest.ChainRole.MEMBER)
        .select_related("raw_file")
        .order_by("chain_position")
    )


def stitched_cycle_table(
    *,
    cell: Cell,
    mass_g: float | None = None,
    anode_half: bool | None = None,
    members: list[CyclingTest] | None = None,
) -> list[CycleRecord]:
    """The stitched cycle table (unsaved rows): the members' cycles in chain order, numbered
    ``cycle_index + chain_cycle_offset``; a cycle split between two files is added into one.
    Each row carries ``test_id`` (the file of its first part), ``parts`` (the tests of all its
    parts) and ``stitched_start_s`` (continuous time). ``members``: from ``chain_members``.
    """
    from cells.choices import CellType
    from cells.stitching import merge_split_cycle

    if anode_half is None:
        anode_half = cell.cell_type == CellType.ANODE_HALF
    if mass_g is None and cell.active_mass_mg:
        mass_g = float(cell.active_mass_mg) / 1000
    if members is None:
        members = list(
            cell.tests.filter(chain_role=CyclingTest.ChainRole.MEMBER).order_by("chain_position")
        )
    offsets = {t.pk: (t.chain_cycle_offset or 0, t.chain_time_offset_s) for t in members}
    rows: dict[int, CycleRecord] = {}
    records = CycleRecord.objects.filter(test__in=members) if members else []
    order = {t.pk: t.chain_position for t in members}
    for c in sorted(records, key=lambda c: (order[c.test_id], c.cycle_index)):
        cycle_offset, time_offset = offsets[c.test_id]
        number = c.cycle_index + cycle_offset
        start = (
            c.start_time_s + time_offset
            if c.start_time_s is not None and time_offset is not None
            else None
        )
        if number in rows:  # the second part of a cycle split between two files
            first = rows[number]
            merged = merge_split_cycle(
                {k: getattr(first, k) for k in _MERGED}, {k: getattr(c, k) for k in _MERGED}
            )
            for key, value in merged.items():
                setattr(first, key, value)
            first.parts.append(c.test_id)  # type: ignore[attr-defined]
            continue
        c.cycle_index = number
        c.stitched_start_s = start  # type: ignore[attr-defined]
        c.parts = [c.test_id]  # type: ignore[attr-defined]
        rows[number] = c
    table = [rows[n] for n in sorted(rows)]
    reversible, irreversible = ("charge", "discharge") if anode_half else ("discharge", "charge")
    for c in table:  # the same rules as cells.services._cycles_normalise, on merged rows too
        c.charge_mah_g = c.charge_mah / mass_g if mass_g and c.charge_mah is not None else None
        c.discharge_mah_g = (
            c.discharge_mah / mass_g if mass_g and c.discharge_mah is not None else None
        )
        num, den = getattr(c, f"{reversible}_mah"), getattr(c, f"{irreversible}_mah")
        c.coulombic_efficiency = num / den if num is not None and den else None
        num, den = getattr(c, f"{reversible}_wh"), getattr(c, f"{irreversible}_wh")
        c.energy_efficiency = num / den if num is not None and den else None
    return table


# -- analytics over the stitched test -------------------------------------------------------


def _member_provenance(test: CyclingTest) -> dict[str, Any]:
    return {
        **_provenance(test),
        "chain_position": test.chain_position,
        "cycle_offset": test.chain_cycle_offset or 0,
        "time_offset_s": test.chain_time_offset_s,
    }


def _stitched_provenance(cell: Cell, members: list[CyclingTest]) -> dict[str, Any]:
    return {
        "cell": cell.code,
        "stitched": "the cell's stitched test (cells.stitching): stitched cycle = the file's "
        "cycle_index + its cycle_offset; stitched time = time_s + time_offset_s",
        "tests": [_member_provenance(t) for t in members],
    }


def _stitched_series(
    members: list[CyclingTest],
    *,
    cycle_indices: list[int] | None = None,
    columns: tuple[str, ...] | None = None,
) -> pl.DataFrame:
    """The members' stored series in chain order, ``cycle_index`` in stitched numbering, time
    on the stitched clock where the chain knows it, ``segment`` = the test's id; only
    ``columns`` (plus those three) are read from the Parquet files when given."""
    frames = []
    for test in members:
        if not test.series_path:
            continue
        lf = pl.scan_parquet(storage.absolute(test.series_path))
        first = lf.select(pl.col("cycle").min()).collect().item()
        if first is None:
            continue
        number = pl.col("cycle") - int(first) + 1 + (test.chain_cycle_offset or 0)
        lf = lf.with_columns(number.alias("cycle_index"), pl.lit(test.pk).alias("segment"))
        if test.chain_time_offset_s is not None:
            lf = lf.with_columns(pl.col("time_s") + test.chain_time_offset_s)
        if cycle_indices is not None:
            lf = lf.filter(pl.col("cycle_index").is_in(cycle_indices))
        if columns is not None:
            lf = lf.select("cycle_index", "segment", "time_s", *columns)
        frames.append(lf)
    if not frames:
        return pl.DataFrame()
    return pl.concat(frames, how="diagonal_relaxed").collect()


def stitched_capacity(*, table: list[CycleRecord], members: list[CyclingTest]) -> dict[str, Any]:
    """Capacity and CE vs stitched cycle, one trace per file, every point naming its file,
    test and file cycle (a cycle split between two files names both)."""
    names = {t.pk: t.raw_file.original_name for t in members}
    per_gram = bool(table) and all(c.discharge_mah_g is not None for c in table)
    files: list[dict[str, Any]] = []
    for test in members:
        rows = [c for c in table if c.test_id == test.pk]
        if not rows:
            continue
        files.append(
            {
                "test": test.pk,
                "file": names[test.pk],
                "raw_sha256": test.raw_file.sha256,
                "parser": f"{test.parser_name} {test.parser_version}",
                "chain_position": test.chain_position,
                "cycle": [c.cycle_index for c in rows],
                "cycle_in_file": [c.cycle_in_file for c in rows],
                "charge": [c.charge_mah_g if per_gram else c.charge_mah for c in rows],
                "discharge": [c.discharge_mah_g if per_gram else c.discharge_mah for c in rows],
                "ce": [
                    c.coulombic_efficiency * 100 if c.coulombic_efficiency is not None else None
                    for c in rows
                ],
                "split_with": [
                    " + ".join(names[p] for p in c.parts[1:])  # type: ignore[attr-defined]
                    for c in rows
                ],
            }
        )
    return {"unit": "mAh/g" if per_gram else "mAh", "files": files}


def dqdv_of_stitched(
    *,
    cell: Cell,
    cycle_indices: list[int],
    members: list[CyclingTest] | None = None,
    params: Any = None,
) -> dict[str, Any]:
    """dQ/dV and dV/dQ of chosen stitched cycles: the rows of every file that holds part of the
    cycle, in chain order (a cycle split between two files is one half cycle each way)."""
    from dataclasses import asdict

    from cells.analytics.dqdv import DqdvParams, dqdv_cycles

    p = params or DqdvParams()
    members = chain_members(cell=cell) if members is None else members
    provenance = {**_stitched_provenance(cell, members), "cycles": cycle_indices}
    out: dict[str, Any] = {
        "stitched": True,
        "provenance": provenance,
        "method": p.method(),
        "curves": [],
    }
    if not members or not cycle_indices:
        return out
    frame = _stitched_series(members, cycle_indices=cycle_indices)
    if not frame.height:
        return out
    names = {t.pk: t.raw_file.original_name for t in members}
    segments = frame.group_by("cycle_index").agg(pl.col("segment").unique(maintain_order=True))
    files = {row["cycle_index"]: row["segment"] for row in segments.to_dicts()}
    for curve in dqdv_cycles(frame, cycle_indices=cycle_indices, params=p):
        tests = files.get(curve.cycle_index, [])
        out["curves"].append({**asdict(curve), "tests": tests, "files": [names[t] for t in tests]})
    return out


def rate_capability_of_stitched(
    *,
    cell: Cell,
    members: list[CyclingTest] | None = None,
    table: list[CycleRecord] | None = None,
) -> dict[str, Any]:
    """Rate capability over the stitched test: currents from every file's rows (never across
    two files), capacities from the stitched cycle table, steps across file boundaries."""
    from dataclasses import asdict

    from cells.analytics.rate import cycle_currents, rate_steps

    members = chain_members(cell=cell) if members is None else members
    if table is None:
        table = stitched_cycle_table(cell=cell, members=members)
    nominal = float(cell.nominal_capacity_mah) if cell.nominal_capacity_mah else None
    frame = _stitched_series(members, columns=("current_a",))
    currents: dict[int, dict[str, Any]] = {}
    if frame.height:
        currents = {r["cycle_index"]: r for r in cycle_currents(frame).to_dicts()}
    names = {t.pk: t.raw_file.original_name for t in members}
    cycles = [
        {
            **currents.get(c.cycle_index, {"cycle_index": c.cycle_index}),
            "charge_mah": c.charge_mah,
            "discharge_mah": c.discharge_mah,
            "charge_mah_g": c.charge_mah_g,
            "discharge_mah_g": c.discharge_mah_g,
            "file": " + ".join(names[p] for p in c.parts),  # type: ignore[attr-defined]
        }
        for c in table
    ]
    result = rate_steps(cycles, nominal_mah=nominal)
    steps = []
    for step in result.steps:
        inside = [c for c in cycles if step.first_cycle <= c["cycle_index"] <= step.last_cycle]
        files = list(dict.fromkeys(name for c in inside for name in c["file"].split(" + ")))
        steps.append({**asdict(step), "files": files})
    return {
        "stitched": True,
        "provenance": {**_stitched_provenance(cell, members), "nominal_capacity_mah": nominal},
        "method": result.method,
        "per_cycle": result.per_cycle,
        "steps": steps,
    }


def stitched_views(*, cell: Cell, cycle_indices: list[int] | None = None) -> dict[str, Any] | None:
    """Everything the cell page draws for the stitched test, in a fixed number of queries
    (members with their raw files, then their cycle rows): capacity vs stitched cycle, and for
    a cell that is not Li-symmetric, rate capability and dQ/dV of the chosen stitched cycles
    (by default the second cycle of each file, so the curves cross the file boundaries).
    None when fewer than two tests are stitched (then the test's own section says it all)."""
    from cells.choices import CellType

    members = chain_members(cell=cell)
    if len(members) < 2:
        return None
    table = stitched_cycle_table(cell=cell, members=members)
    if not cycle_indices:
        per_file: dict[int, list[int]] = defaultdict(list)
        for c in table:
            per_file[c.test_id].append(c.cycle_index)
        cycle_indices = [n[1] if len(n) > 1 else n[0] for n in per_file.values()][:6]
    out: dict[str, Any] = {
        "capacity": stitched_capacity(table=table, members=members),
        "cycles": cycle_indices,
        "cycle_count": len(table),
    }
    if cell.cell_type != CellType.LI_SYMMETRIC:
        out["dqdv"] = dqdv_of_stitched(cell=cell, cycle_indices=cycle_indices, members=members)
        out["rate"] = rate_capability_of_stitched(cell=cell, members=members, table=table)
    return out


# -- data out (downloads and .eln) --------------------------------------------------------

CYCLE_TABLE_COLUMNS = (
    "cycle_index",
    "cycle_in_file",
    "charge_mah",
    "discharge_mah",
    "charge_mah_g",
    "discharge_mah_g",
    "coulombic_efficiency",
    "charge_wh",
    "discharge_wh",
    "energy_efficiency",
    "mean_charge_v",
    "mean_discharge_v",
    "end_charge_v",
    "end_discharge_v",
    "duration_s",
    "start_time_s",
)


def cycle_table(*, test: CyclingTest) -> QuerySet[CycleRecord]:
    return test.cycles.order_by("cycle_index")


def cycle_table_csv(*, test: CyclingTest) -> bytes:
    """The cycle table as CSV bytes (the .eln's copy; the download streams the same rows)."""
    import csv
    import io

    from lims.export import csv_cell

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CYCLE_TABLE_COLUMNS)
    for row in cycle_table(test=test).values_list(*CYCLE_TABLE_COLUMNS):
        writer.writerow([csv_cell(v) for v in row])
    return buf.getvalue().encode()


def series_provenance(*, test: CyclingTest) -> dict[str, Any]:
    """Where a test's derived files come from: sent with every download (headers, Parquet
    metadata) and written into the .eln."""
    from django.utils import timezone

    record = getattr(test, "performance", None)
    return {
        "test": test.pk,
        "cell": test.cell.code if test.cell else None,
        "raw_file": test.raw_file.original_name,
        "raw_sha256": test.raw_file.sha256,
        "raw_size": test.raw_file.size,
        "parser": test.parser_name,
        "parser_version": test.parser_version,
        "vendor": test.vendor,
        "rows": test.row_count,
        "conventions": test.conventions,
        "active_mass_mg": record.active_mass_mg if record else None,
        "active_mass_source": record.active_mass_source if record else None,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
    }


def export_stem(*, test: CyclingTest) -> str:
    """File name stem of a test's downloads: cell, test, raw sha256 prefix, parser version."""
    owner = test.cell.code if test.cell else "unlinked"
    return (
        f"{owner}_test{test.pk}_{test.raw_file.sha256[:12]}"
        f".{test.parser_name}-{test.parser_version}"
    )


# -- the cell in its lineage ---------------------------------------------------------------


def cell_lineage_figure(*, cell: Cell) -> dict[str, Any] | None:
    """The lineage picture of the cell's samples with the cell itself as the last node: joined
    to the assembly that took its cathode, and to its separator and anode samples."""
    from samples.selectors import lineage_figure, lineage_of_many

    linked = [x for x in (cell.cathode_sample, cell.se_sample, cell.anode_sample) if x]
    if not linked:
        return None
    figure = lineage_figure(lineage_of_many(samples=linked, root=linked[0].code))
    label = f"cell {cell.code}"
    assembly = [op for op in figure["operations"] if op["text"].endswith(label)]
    by_code = {n["code"]: n for n in figure["nodes"]}
    sources = [(op["x"], op["y"]) for op in assembly]
    sources += [
        (by_code[s.code]["x"], by_code[s.code]["y"])
        for s in (cell.se_sample, cell.anode_sample)
        if s is not None and s.code in by_code
    ]
    x = max([p[0] for p in sources] + [n["x"] for n in figure["nodes"]]) + 1.5
    y = sum(p[1] for p in sources) / len(sources) if sources else 0.0
    figure["cells"] = [
        {
            "x": x,
            "y": y,
            "code": cell.code,
            "text": f"cell {cell.code}<br>{cell.get_cell_type_display()}",
        }
    ]
    figure["edges"] += [{"from": p, "to": (x, y), "label": ""} for p in sources]
    return figure


PROCESS_KEYS = (
    "runs",
    "recipe",
    "subcycle_ratio",
    "supercycles",
    "total_ald_cycles",
    "expected_thickness_nm",
    "measured_thickness_nm",
    "expected_loading_wt_pct",
    "measured_loading_wt_pct",
    "precursor_lots",
    "anneals",
    "anneal_peak_c",
    "anneal_dwell_min",
    "air_exposure_min",
    "fabrication_pressure_mpa",
)


def cell_process_summary(*, user: Any, cell: Cell) -> list[dict[str, Any]]:
    """What was done to the cell's materials, read through its lineage (the explorer's row):
    label, value and where it came from."""
    from cells.explorer.columns import BY_KEY
    from cells.explorer.selectors import explorer_table

    table = explorer_table(user=user, cells=Cell.objects.filter(pk=cell.pk))
    if not table.rows:
        return []
    row, src = table.rows[0], table.sources[0]
    return [
        {
            "label": BY_KEY[key].title,
            "value": row[key],
            "text": f"{row[key]:.4g}" if isinstance(row[key], float) else str(row[key]),
            "source": src.get(key, ""),
        }
        for key in PROCESS_KEYS
        if row.get(key) is not None
    ]
