"""One row per cell with process variables from its lineage and metrics from its records.

The whole table is read with a fixed number of queries whatever the number of cells: the
cells, then the lineage graph of their projects (edges only), then the runs, bottles,
thickness measurements, anneals and exposures that the graph names, each in one query. The
walk up the lineage happens in Python on those edges. Page, API, exports and the bottle page
all read this one selector.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from statistics import fmean, median
from typing import Any

from django.db.models import QuerySet

from cells.explorer.columns import BY_KEY, COLUMNS, NUMERIC
from cells.models import Cell, CycleRecord, CyclingTest, StitchedRecord
from lims.selectors import scope_to_user


@dataclass
class ExplorerTable:
    """Rows (column key -> value) and, per row, where each value came from."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    sources: list[dict[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


def _f(value: Decimal | float | int | None) -> float | None:
    return None if value is None else float(value)


def _pct(value: float | None) -> float | None:
    return None if value is None else value * 100.0


@dataclass
class _Lineage:
    """The edges of the project's lineage graph, read once."""

    made_by: dict[int, int]  # sample -> operation that produced it
    inputs: dict[int, list[int]]  # operation -> samples it took

    def ancestry(self, roots: Iterable[int]) -> tuple[set[int], set[int]]:
        """Samples and operations above (and including) ``roots``."""
        samples: set[int] = set()
        ops: set[int] = set()
        stack = [r for r in roots if r is not None]
        while stack:
            sample = stack.pop()
            if sample in samples:
                continue
            samples.add(sample)
            op = self.made_by.get(sample)
            if op is not None and op not in ops:
                ops.add(op)
                stack.extend(self.inputs.get(op, ()))
        return samples, ops


def _lineage(project_ids: set[int]) -> _Lineage:
    from samples.models import OperationInput, OperationOutput

    made_by = dict(
        OperationOutput.objects.filter(operation__project_id__in=project_ids).values_list(
            "sample_id", "operation_id"
        )
    )
    inputs: dict[int, list[int]] = defaultdict(list)
    for op, sample in OperationInput.objects.filter(
        operation__project_id__in=project_ids
    ).values_list("operation_id", "sample_id"):
        inputs[op].append(sample)
    return _Lineage(made_by, inputs)


def _cells(user: Any, cells: QuerySet[Cell] | None) -> list[Cell]:
    qs = cells if cells is not None else Cell.objects.all()
    qs = scope_to_user(qs, user=user).select_related("project", "stitched", "cathode_sample")
    qs = qs.order_by("code")
    return list(qs)


def _runs(ops: set[int]) -> dict[int, dict[str, Any]]:
    """Per deposition operation: the run's process variables and their sources."""
    from depositions.choices import LoadRole
    from depositions.models import DepositionRun, RunLoad, RunPrecursor, ThicknessMeasurement
    from depositions.selectors import with_qc

    runs = list(
        with_qc(DepositionRun.objects.filter(operation_id__in=ops)).select_related("recipe")
    )
    bottles: dict[int, list[str]] = defaultdict(list)
    for run_id, label, lot, chemical in RunPrecursor.objects.filter(run__in=runs).values_list(
        "run_id",
        "precursor_lot__bottle_label",
        "precursor_lot__material_lot__lot_number",
        "precursor_lot__chemical__name",
    ):
        bottles[run_id].append(f"{chemical} bottle {label} (lot {lot})")
    thickness: dict[int, list[float]] = defaultdict(list)
    for run_id, value in ThicknessMeasurement.objects.filter(run__in=runs).values_list(
        "run_id", "value_nm"
    ):
        thickness[run_id].append(float(value))
    bet: dict[int, list[float]] = defaultdict(list)
    for run_id, value in RunLoad.objects.filter(
        run__in=runs, role=LoadRole.PRODUCT, bet_m2_g__isnull=False
    ).values_list("run_id", "bet_m2_g"):
        bet[run_id].append(float(value))
    out: dict[int, dict[str, Any]] = {}
    for run in runs:
        if run.operation_id is None:  # filtered on it above; for the type checker
            continue
        snapshot = run.recipe_snapshot or {}
        recipe = snapshot.get("recipe") or {}
        summary = snapshot.get("summary") or {}
        spec = snapshot.get("spec") or {}
        n = run.actual_cycles if run.actual_cycles is not None else run.planned_cycles
        per_super = _per_supercycle(spec)
        total = sum(per_super) * n if per_super and n else None
        measured = fmean(thickness[run.pk]) if thickness[run.pk] else None
        density = _f(recipe.get("film_density_g_cm3") or run.recipe.film_density_g_cm3)
        loading = _loading_wt_pct(
            bet=fmean(bet[run.pk]) if bet[run.pk] else None,
            thickness_nm=measured if measured is not None else summary.get("expected_thickness_nm"),
            density=density,
        )
        out[run.operation_id] = {
            "pk": run.pk,
            "code": run.code,
            "coating": recipe.get("target_material") or run.recipe.target_material,
            "recipe": "{} v{}".format(
                recipe.get("name", run.recipe.name), recipe.get("version", run.recipe.version)
            ),
            "subcycle_ratio": ":".join(str(c) for c in per_super) if per_super else None,
            "subcycle_ratio_value": per_super[1] / per_super[0]
            if len(per_super) == 2 and per_super[0]
            else None,
            "supercycles": n,
            "supercycles_source": "actual" if run.actual_cycles is not None else "planned",
            "total_ald_cycles": total,
            "expected_thickness_nm": summary.get("expected_thickness_nm"),
            "measured_thickness_nm": measured,
            "thickness_count": len(thickness[run.pk]),
            "gpc_angstrom": measured * 10.0 / total if measured is not None and total else None,
            "expected_loading_wt_pct": loading,
            "loading_basis": "measured" if measured is not None else "expected",
            "run_qc": getattr(run, "qc_verdict", None),
            "precursor_lots": ", ".join(sorted(bottles[run.pk])) or None,
            "deposition_temperature_c": _f(recipe.get("deposition_temperature_c")),
        }
    return out


def _loading_wt_pct(
    *, bet: float | None, thickness_nm: float | None, density: float | None
) -> float | None:
    """Coating mass per powder mass as wt % of the coated powder: a film of ``thickness_nm``
    and ``density`` (g/cm3) over ``bet`` m2/g is bet x t x rho x 1e-3 g per g of powder."""
    if bet is None or thickness_nm is None or density is None:
        return None
    grams = bet * thickness_nm * density * 1e-3
    return 100.0 * grams / (1.0 + grams)


def _measured_loading(samples: set[int]) -> dict[int, tuple[float, str]]:
    from depositions.models import CompositionMeasurement

    out: dict[int, tuple[float, str]] = {}
    for sample, code, value, method in CompositionMeasurement.objects.filter(
        sample_id__in=samples, coating_wt_pct__isnull=False
    ).values_list("sample_id", "sample__code", "coating_wt_pct", "method"):
        out[sample] = (float(value), f"{method} on {code}")
    return out


def _conductivity(samples: set[int]) -> dict[int, tuple[float, float | None, str]]:
    """Per sample with fitted spectra: sigma at 25 degC, Ea and the source. Two queries."""
    from cells.eis import conductivity as cond
    from cells.models import EisFit, EisSpectrum

    spectra = {
        pk: (sample, code, temperature)
        for pk, sample, code, temperature in EisSpectrum.objects.filter(
            sample_id__in=samples
        ).values_list("pk", "sample_id", "sample__code", "temperature_c")
    }
    latest: dict[int, float] = {}
    for spectrum, sigma in (
        EisFit.objects.filter(
            spectrum_id__in=spectra, status=EisFit.Status.OK, sigma_s_cm__isnull=False
        )
        .order_by("created_at", "pk")
        .values_list("spectrum_id", "sigma_s_cm")
    ):
        if sigma is not None:  # filtered above; for the type checker
            latest[spectrum] = sigma
    per_sample: dict[int, list[tuple[float, float]]] = defaultdict(list)
    codes: dict[int, str] = {}
    for spectrum, sigma in latest.items():
        sample, code, temperature = spectra[spectrum]
        codes[sample] = code
        if temperature is not None:
            per_sample[sample].append((float(temperature), sigma))
    out: dict[int, tuple[float, float | None, str]] = {}
    for sample, points in per_sample.items():
        try:
            fit = cond.arrhenius([s for _, s in points], temperatures_c=[t for t, _ in points])
            out[sample] = (
                fit.sigma_25c_s_cm,
                fit.ea_ev,
                f"Arrhenius of {len(points)} spectra of {codes[sample]}",
            )
        except cond.ConductivityError:
            t, sigma = min(points, key=lambda p: abs(p[0] - 25.0))
            out[sample] = (sigma, None, f"spectrum of {codes[sample]} at {t:g} °C")
    return out


def _presses(ops: set[int]) -> dict[int, tuple[float, str]]:
    from samples.choices import OperationKind
    from samples.models import Operation

    out: dict[int, tuple[float, str]] = {}
    for pk, label, parameters in Operation.objects.filter(
        pk__in=ops, kind=OperationKind.PRESS
    ).values_list("pk", "label", "parameters"):
        pressure = (parameters or {}).get("pressure_mpa")
        if pressure is not None:
            out[pk] = (float(pressure), f"press {label or pk}")
    return out


def _per_supercycle(spec: dict[str, Any]) -> list[int]:
    """Sub-cycle repeats per supercycle in the order the recipe first runs them."""
    counts: dict[str, int] = {}
    for block in spec.get("blocks") or []:
        name = block.get("subcycle")
        counts[name] = counts.get(name, 0) + int(block.get("repeat") or 0)
    return list(counts.values())


def _anneals(ops: set[int]) -> dict[int, dict[str, Any]]:
    from depositions.choices import SegmentKind
    from depositions.models import AnnealSegment, PostTreatment

    treatments = {
        t.pk: t
        for t in PostTreatment.objects.filter(operation_id__in=ops).only(
            "pk", "code", "atmosphere", "operation_id"
        )
    }
    segments: dict[int, list[AnnealSegment]] = defaultdict(list)
    for seg in AnnealSegment.objects.filter(treatment_id__in=treatments).order_by("order"):
        segments[seg.treatment_id].append(seg)
    out: dict[int, dict[str, Any]] = {}
    for t in treatments.values():
        if t.operation_id is None:
            continue
        segs = segments[t.pk]
        peak = max((float(s.target_c) for s in segs), default=None)
        dwell = sum(
            float(s.duration_min or 0)
            for s in segs
            if s.kind == SegmentKind.DWELL and peak is not None and float(s.target_c) == peak
        )
        out[t.operation_id] = {
            "code": t.code,
            "anneal_peak_c": peak,
            "anneal_dwell_min": dwell if segs else None,
            "anneal_atmosphere": t.get_atmosphere_display(),
        }
    return out


def _air_minutes(samples: set[int]) -> dict[int, float]:
    from samples.choices import Atmosphere
    from samples.models import ExposureEvent

    out: dict[int, float] = defaultdict(float)
    for sample, start, end in ExposureEvent.objects.filter(
        sample_id__in=samples, atmosphere=Atmosphere.AIR
    ).values_list("sample_id", "started_at", "ended_at"):
        out[sample] += (end - start).total_seconds() / 60.0
    return out


def _one(values: Sequence[dict[str, Any]], key: str) -> tuple[Any, str]:
    """The value when the lineage holds one run (or anneal); several: none, said why."""
    if not values:
        return None, ""
    if len(values) == 1:
        return values[0].get(key), values[0]["code"]
    distinct = {v.get(key) for v in values}
    if len(distinct) == 1:
        return distinct.pop(), " + ".join(v["code"] for v in values)
    return None, "several differing: " + ", ".join(f"{v['code']}={v.get(key)}" for v in values)


def explorer_table(*, user: Any, cells: QuerySet[Cell] | None = None) -> ExplorerTable:
    """The explorer's rows for the cells ``user`` may see (optionally a subset)."""
    cell_rows = _cells(user, cells)
    table = ExplorerTable()
    if not cell_rows:
        return table
    graph = _lineage({c.project_id for c in cell_rows})
    per_cell: dict[int, tuple[set[int], set[int]]] = {}
    all_samples: set[int] = set()
    all_ops: set[int] = set()
    for cell in cell_rows:
        roots = [cell.cathode_sample_id, cell.se_sample_id, cell.anode_sample_id]
        samples, ops = graph.ancestry(r for r in roots if r is not None)
        per_cell[cell.pk] = (samples, ops)
        all_samples |= samples
        all_ops |= ops
    runs = _runs(all_ops)
    anneals = _anneals(all_ops)
    air = _air_minutes(all_samples)
    loadings = _measured_loading(all_samples)
    conductivity = _conductivity(all_samples)
    presses = _presses(all_ops)
    for cell in cell_rows:
        samples, ops = per_cell[cell.pk]
        cell_runs = [runs[o] for o in sorted(ops) if o in runs]
        cell_anneals = [anneals[o] for o in sorted(ops) if o in anneals]
        row, src = _cell_part(cell)
        for key in (
            "coating",
            "recipe",
            "subcycle_ratio",
            "subcycle_ratio_value",
            "supercycles",
            "total_ald_cycles",
            "expected_thickness_nm",
            "measured_thickness_nm",
            "gpc_angstrom",
            "expected_loading_wt_pct",
            "run_qc",
            "precursor_lots",
            "deposition_temperature_c",
        ):
            row[key], src[key] = _one(cell_runs, key)
        row["runs"] = ", ".join(r["code"] for r in cell_runs) or None
        src["runs"] = f"{len(samples)} samples in the lineage" if samples else "no linked sample"
        for key in ("anneal_peak_c", "anneal_dwell_min", "anneal_atmosphere"):
            row[key], src[key] = _one(cell_anneals, key)
        row["anneals"] = ", ".join(a["code"] for a in cell_anneals) or None
        if row["expected_loading_wt_pct"] is not None and len(cell_runs) == 1:
            src["expected_loading_wt_pct"] += f" ({cell_runs[0]['loading_basis']} thickness)"
        measured = [loadings[s] for s in sorted(samples) if s in loadings]
        row["measured_loading_wt_pct"] = fmean(v for v, _ in measured) if measured else None
        src["measured_loading_wt_pct"] = "; ".join(where for _, where in measured)
        measured_sigma = [conductivity[s] for s in sorted(samples) if s in conductivity]
        row["ionic_conductivity_s_cm"], row["activation_energy_ev"] = (
            (measured_sigma[0][0], measured_sigma[0][1])
            if len(measured_sigma) == 1
            else (None, None)
        )
        src["ionic_conductivity_s_cm"] = src["activation_energy_ev"] = (
            "; ".join(where for *_, where in measured_sigma)
            if len(measured_sigma) < 2
            else "several samples with spectra: " + "; ".join(w for *_, w in measured_sigma)
        )
        pressed = [presses[o] for o in sorted(ops) if o in presses]
        if pressed:
            row["fabrication_pressure_mpa"] = max(p for p, _ in pressed)
            src["fabrication_pressure_mpa"] = ", ".join(where for _, where in pressed)
        exposed = [s for s in samples if s in air]
        row["air_exposure_min"] = sum(air[s] for s in exposed) if samples else None
        src["air_exposure_min"] = f"{len(exposed)} of {len(samples)} lineage samples exposed"
        _metrics(cell, row, src)
        table.rows.append(row)
        table.sources.append(src)
    return table


def _cell_part(cell: Cell) -> tuple[dict[str, Any], dict[str, str]]:
    fraction = cell.active_fraction
    row: dict[str, Any] = {
        "cell": cell.code,
        "project": cell.project.name,
        "cell_type": cell.get_cell_type_display(),
        "format": cell.get_format_display(),
        "cathode_material": cell.cathode_active_material or None,
        "solid_electrolyte": cell.se_material or None,
        "anode": cell.get_anode_kind_display() if cell.anode_kind else None,
        "active_pct": _pct(_f(fraction)),
        "fabrication_pressure_mpa": _f(cell.fabrication_pressure_mpa),
        "stack_pressure_mpa": _f(cell.stack_pressure_mpa),
        "test_temperature_c": _f(cell.temperature_c),
    }
    src = {key: f"cell {cell.code}" for key in row}
    src["active_pct"] = cell.active_mass_source if fraction is not None else ""
    return row, src


def _metrics(cell: Cell, row: dict[str, Any], src: dict[str, str]) -> None:
    record: StitchedRecord | None = getattr(cell, "stitched", None)
    keys = (
        "first_discharge_mah_g",
        "initial_ce_pct",
        "capacity_c10_mah_g",
        "capacity_c50_mah_g",
        "capacity_c100_mah_g",
        "retention_c100_pct",
        "retention_pct",
        "cycles_to_80",
        "mean_ce_pct",
        "cycles",
        "interface_r_first_ohm",
        "interface_r_last_ohm",
    )
    if record is None:
        row.update(dict.fromkeys(keys))
        src.update(dict.fromkeys(keys, "no cycling test"))
        return
    files = ", ".join(
        f"{s['file']} ({s['raw_sha256'][:12]})"
        for s in record.sources
        if s.get("role") == CyclingTest.ChainRole.MEMBER
    )
    where = f"stitched record {record.pk} of {record.tests} test(s): {files}"
    row["first_discharge_mah_g"] = record.first_discharge_mah_g
    row["initial_ce_pct"] = _pct(record.initial_ce)
    row["capacity_c10_mah_g"] = record.capacity_c10_mah_g
    row["capacity_c50_mah_g"] = record.capacity_c50_mah_g
    row["capacity_c100_mah_g"] = record.capacity_c100_mah_g
    row["retention_c100_pct"] = None
    row["retention_pct"] = record.retention_pct
    row["cycles_to_80"] = record.cycles_to_80
    row["mean_ce_pct"] = _pct(record.mean_ce)
    row["cycles"] = record.cycles
    series = (record.interface_resistance or {}).get("series") or []
    row["interface_r_first_ohm"] = series[0]["r_ohm"] if series else None
    row["interface_r_last_ohm"] = series[-1]["r_ohm"] if series else None
    src.update(dict.fromkeys(keys, where))
    if series:
        src["interface_r_first_ohm"] = f"{series[0]['file']} at cycle {series[0]['cycle']}"
        src["interface_r_last_ohm"] = f"{series[-1]['file']} at cycle {series[-1]['cycle']}"
    _retention_100(record, row, src)


def _retention_100(record: StitchedRecord, row: dict[str, Any], src: dict[str, str]) -> None:
    """Retention at cycle 100 against the reference cycle's capacity (same basis: mAh/g
    when the mass is known, else mAh)."""
    c100 = record.capacity_c100_mah_g
    ref = record.first_discharge_mah_g
    if c100 is None:
        c100, ref = record.capacity_c100_mah, record.first_discharge_mah
    if c100 is not None and ref:
        row["retention_c100_pct"] = c100 / ref * 100.0
        src["retention_c100_pct"] += f"; reference cycle {record.reference_cycle}"


# -- query: filter, group, plots --------------------------------------------------------


OPS = {
    "eq": "=",
    "ne": "≠",
    "lt": "<",
    "le": "≤",
    "gt": ">",
    "ge": "≥",
    "has": "contains",
}


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Filter | None:
        """``column:op:value`` as the page and API send it; None when it names nothing."""
        column, _, rest = text.partition(":")
        op, _, value = rest.partition(":")
        if column not in BY_KEY or op not in OPS:
            return None
        return cls(column, op, value)

    def __str__(self) -> str:
        return f"{self.column}:{self.op}:{self.value}"

    def matches(self, row: dict[str, Any]) -> bool:
        value = row.get(self.column)
        if self.op == "has":
            return value is not None and self.value.lower() in str(value).lower()
        if value is None:
            return self.op == "eq" and self.value == ""
        if BY_KEY[self.column].numeric:
            try:
                wanted: Any = float(self.value)
            except ValueError:
                return False
            value = float(value)
        else:
            wanted, value = self.value.lower(), str(value).lower()
        return {
            "eq": value == wanted,
            "ne": value != wanted,
            "lt": value < wanted,
            "le": value <= wanted,
            "gt": value > wanted,
            "ge": value >= wanted,
        }[self.op]


def explorer_filter(table: ExplorerTable, filters: Sequence[Filter]) -> ExplorerTable:
    out = ExplorerTable()
    for row, src in zip(table.rows, table.sources, strict=True):
        if all(f.matches(row) for f in filters):
            out.rows.append(row)
            out.sources.append(src)
    return out


def explorer_groups(table: ExplorerTable, by: str | None) -> dict[str, list[int]]:
    """Row indices per group value (a missing value is its own group, "—")."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(table.rows):
        value = row.get(by) if by else None
        groups["—" if value is None else _label(value)].append(i)
    return dict(groups)


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def explorer_scatter(
    table: ExplorerTable, *, x: str, y: str, color: str | None
) -> list[dict[str, Any]]:
    """One trace per group; each point names its cell and the sources of x and y."""
    traces = []
    for name, idx in explorer_groups(table, color).items():
        pts = [
            i for i in idx if table.rows[i].get(x) is not None and table.rows[i].get(y) is not None
        ]
        if not pts:
            continue
        traces.append(
            {
                "name": name,
                "x": [table.rows[i][x] for i in pts],
                "y": [table.rows[i][y] for i in pts],
                "cells": [table.rows[i]["cell"] for i in pts],
                "sources": [
                    f"x: {table.sources[i].get(x, '')} | y: {table.sources[i].get(y, '')}"
                    for i in pts
                ],
            }
        )
    return traces


def explorer_box(table: ExplorerTable, *, y: str, by: str | None) -> list[dict[str, Any]]:
    out = []
    for name, idx in explorer_groups(table, by).items():
        pts = [i for i in idx if table.rows[i].get(y) is not None]
        if pts:
            out.append(
                {
                    "name": name,
                    "y": [table.rows[i][y] for i in pts],
                    "cells": [table.rows[i]["cell"] for i in pts],
                }
            )
    return out


def column_median(table: ExplorerTable, key: str) -> float | None:
    values = [row[key] for row in table.rows if row.get(key) is not None]
    return median(values) if values and key in NUMERIC else None


def capacity_overlay(*, user: Any, codes: Sequence[str]) -> list[dict[str, Any]]:
    """Discharge capacity vs stitched cycle of the chosen cells, one query for all of them.

    The stitched cycle number is the file's cycle index plus its test's offset in the chain
    (cells.stitching); each trace names its cell and its files.
    """
    cells = {c.pk: c for c in _cells(user, Cell.objects.filter(code__in=list(codes)))}
    rows = (
        CycleRecord.objects.filter(
            test__cell_id__in=list(cells), test__chain_role=CyclingTest.ChainRole.MEMBER
        )
        .order_by("test__cell_id", "test__chain_position", "cycle_index")
        .values_list(
            "test__cell_id",
            "test__chain_cycle_offset",
            "cycle_index",
            "discharge_mah_g",
            "discharge_mah",
            "test__raw_file__original_name",
        )
    )
    per_cell: dict[int, dict[str, Any]] = {}
    for cell_id, offset, index, per_g, mah, name in rows:
        trace = per_cell.setdefault(
            cell_id, {"cell": cells[cell_id].code, "x": [], "y": [], "files": [], "per_gram": True}
        )
        trace["x"].append(index + (offset or 0))
        trace["y"].append(per_g if per_g is not None else mah)
        trace["per_gram"] = trace["per_gram"] and per_g is not None
        if name not in trace["files"]:
            trace["files"].append(name)
    return [per_cell[pk] for pk in cells if pk in per_cell]


def voltage_overlay(*, user: Any, codes: Sequence[str], cycle: int) -> list[dict[str, Any]]:
    """Voltage vs capacity of one stitched cycle of each chosen cell, from its Parquet series."""
    from cells.selectors import voltage_curves

    cells = _cells(user, Cell.objects.filter(code__in=list(codes)))
    tests = CyclingTest.objects.filter(
        cell__in=cells, chain_role=CyclingTest.ChainRole.MEMBER
    ).select_related("raw_file", "performance")
    by_cell: dict[int, list[CyclingTest]] = defaultdict(list)
    for test in tests.order_by("chain_position"):
        if test.cell_id is not None:
            by_cell[test.cell_id].append(test)
    out = []
    for cell in cells:
        for test in by_cell.get(cell.pk, []):
            offset = test.chain_cycle_offset or 0
            local = cycle - offset
            if local < 1 or (test.row_count and local > _cycles_of(test)):
                continue
            curve = voltage_curves(test=test, cycle_indices=[local], max_points=1500).get(local)
            if curve:
                mass = test.performance.active_mass_mg if hasattr(test, "performance") else None
                capacity = curve["capacity_mah"]
                per_gram = bool(mass)
                if mass:
                    capacity = [c / (mass / 1000.0) for c in capacity]
                out.append(
                    {
                        "cell": cell.code,
                        "file": test.raw_file.original_name,
                        "cycle": cycle,
                        "x": capacity,
                        "y": curve["voltage_v"],
                        "per_gram": per_gram,
                    }
                )
            break
    return out


def _cycles_of(test: CyclingTest) -> int:
    record = getattr(test, "performance", None)
    return record.cycles if record is not None else 10**9


def columns_payload() -> list[dict[str, Any]]:
    return [
        {
            "key": c.key,
            "label": c.label,
            "title": c.title,
            "group": c.group,
            "unit": c.unit,
            "numeric": c.numeric,
            "derivation": c.derivation,
        }
        for c in COLUMNS
    ]


BOTTLE_METRICS = (
    "first_discharge_mah_g",
    "initial_ce_pct",
    "capacity_c100_mah_g",
    "retention_c100_pct",
    "mean_ce_pct",
)


@dataclass
class BottleReport:
    """Cells built from a bottle's runs, each metric against its project's median."""

    table: ExplorerTable
    runs: list[str]
    medians: dict[str, dict[str, float | None]]  # metric -> {"bottle", "project"}
    project_cells: int


def bottle_cells(*, user: Any, lot: Any) -> BottleReport:
    """``lot`` is a precursor bottle (depositions.PrecursorLot): its runs are found by the
    bottles recorded on them; the comparison is with every cell of the same project(s)."""
    from depositions.models import RunPrecursor

    codes = sorted(
        set(RunPrecursor.objects.filter(precursor_lot=lot).values_list("run__code", flat=True))
    )
    everything = explorer_table(user=user)
    wanted = set(codes)
    mine = ExplorerTable()
    projects = set()
    for row, src in zip(everything.rows, everything.sources, strict=True):
        if wanted & set((row.get("runs") or "").split(", ")):
            mine.rows.append(row)
            mine.sources.append(src)
            projects.add(row["project"])
    peers = ExplorerTable()
    for row, src in zip(everything.rows, everything.sources, strict=True):
        if row["project"] in projects:
            peers.rows.append(row)
            peers.sources.append(src)
    medians = {
        key: {"bottle": column_median(mine, key), "project": column_median(peers, key)}
        for key in BOTTLE_METRICS
    }
    return BottleReport(mine, codes, medians, len(peers))
