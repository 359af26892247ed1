"""Reads for samples: lists, lineage graphs, exposure totals, composite fractions."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, QuerySet

from lims.selectors import scope_to_user
from samples.choices import MaterialClass, OperationKind
from samples.filtersets import MaterialLotFilterSet, SampleFilterSet
from samples.models import (
    ExposureEvent,
    Material,
    MaterialLot,
    Operation,
    OperationInput,
    OperationOutput,
    Sample,
)


def sample_list(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[Sample]:
    qs = Sample.objects.select_related("project", "material", "lot").order_by("-created_at")
    return SampleFilterSet(filters or {}, queryset=scope_to_user(qs, user=user)).qs


def lot_list(*, user: Any, filters: dict[str, Any] | None = None) -> QuerySet[MaterialLot]:
    qs = (
        MaterialLot.objects.select_related("material", "project")
        .annotate(sample_count=Count("samples"))
        .order_by("material__name", "lot_number")
    )
    return MaterialLotFilterSet(filters or {}, queryset=scope_to_user(qs, user=user)).qs


def material_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Material]:
    qs = Material.objects.annotate(lot_count=Count("lots")).order_by("name")
    query = (filters or {}).get("q")
    return qs.filter(name__icontains=query) if query else qs


def sample_get(*, user: Any, code: str) -> Sample:
    qs = Sample.objects.select_related("project", "material", "lot")
    return scope_to_user(qs, user=user).get(code=code)


@dataclass
class Lineage:
    """Samples and operations around one sample: the picture and the API share it."""

    root: str
    samples: dict[int, Sample] = field(default_factory=dict)
    operations: dict[int, Operation] = field(default_factory=dict)
    inputs: list[OperationInput] = field(default_factory=list)
    outputs: list[OperationOutput] = field(default_factory=list)
    depth: dict[int, int] = field(default_factory=dict)  # sample pk -> generation (root 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sample": self.root,
            "samples": [
                {
                    "code": s.code,
                    "kind": s.kind,
                    "state": s.state,
                    "material": s.material.name if s.material else None,
                    "quantity": s.quantity,
                    "remaining": s.remaining,
                    "unit": s.unit,
                    "generation": self.depth.get(pk, 0),
                }
                for pk, s in self.samples.items()
            ],
            "operations": [
                {
                    "id": op.pk,
                    "kind": op.kind,
                    "label": op.label,
                    "performed_at": op.performed_at,
                    "inputs": [
                        {
                            "sample": self.samples[i.sample_id].code,
                            "quantity": i.quantity,
                            "mass_fraction": i.mass_fraction,
                        }
                        for i in self.inputs
                        if i.operation_id == op.pk
                    ],
                    "outputs": [
                        {"sample": self.samples[o.sample_id].code, "quantity": o.quantity}
                        for o in self.outputs
                        if o.operation_id == op.pk
                    ],
                }
                for op in self.operations.values()
            ],
        }


def lineage(*, sample: Sample, max_depth: int = 12) -> Lineage:
    """Ancestors and descendants of ``sample``: a few queries per generation, never per node."""
    graph = Lineage(root=sample.code)
    graph.samples[sample.pk] = sample
    graph.depth[sample.pk] = 0
    seen_ops: set[int] = set()
    for direction in (-1, 1):
        frontier = {sample.pk}
        for level in range(1, max_depth + 1):
            if not frontier:
                break
            # ancestors: operations that produced the frontier; descendants: that consumed it
            link_model = OperationOutput if direction < 0 else OperationInput
            linked = link_model.objects.filter(sample_id__in=frontier)
            op_ids = set(linked.values_list("operation_id", flat=True)) - seen_ops
            if not op_ids:
                break
            seen_ops |= op_ids
            for op in Operation.objects.filter(pk__in=op_ids):
                graph.operations[op.pk] = op
            ins = list(OperationInput.objects.filter(operation_id__in=op_ids))
            outs = list(OperationOutput.objects.filter(operation_id__in=op_ids))
            graph.inputs += ins
            graph.outputs += outs
            new_ids = {link.sample_id for link in (ins if direction < 0 else outs)}
            others = {link.sample_id for link in (outs if direction < 0 else ins)}
            missing = (new_ids | others) - graph.samples.keys()
            for s in Sample.objects.filter(pk__in=missing).select_related("material"):
                graph.samples[s.pk] = s
            for pk in new_ids:
                graph.depth.setdefault(pk, direction * level)
            for pk in others:
                graph.depth.setdefault(pk, direction * (level - 1))
            frontier = new_ids - {sample.pk}
    return graph


def exposure_totals(*, sample: Sample) -> dict[str, timedelta]:
    totals: dict[str, timedelta] = defaultdict(timedelta)
    for event in ExposureEvent.objects.filter(sample=sample):
        totals[event.atmosphere] += event.ended_at - event.started_at
    return dict(totals)


def composite_active_fraction(*, sample: Sample) -> Decimal | None:
    """Mass fraction of cathode active material in a composite, from the mix that made it."""
    mix = (
        OperationOutput.objects.filter(sample=sample, operation__kind=OperationKind.MIX)
        .select_related("operation")
        .first()
    )
    if mix is None:
        return None
    fractions = OperationInput.objects.filter(
        operation_id=mix.operation_id,
        sample__material__material_class=MaterialClass.CATHODE_ACTIVE,
    ).values_list("mass_fraction", flat=True)
    known = [f for f in fractions if f is not None]
    return sum(known, Decimal(0)) if known else None


def lineage_figure(graph: Lineage) -> dict[str, Any]:
    """Node and edge coordinates for the lineage picture (Plotly draws them in the page).

    Samples sit in columns by generation (ancestors left, descendants right); every operation
    is a diamond between its inputs and outputs, its edges labelled with the quantities.
    """
    columns: dict[int, list[int]] = defaultdict(list)
    for pk in sorted(graph.samples, key=lambda k: graph.samples[k].code):
        columns[graph.depth.get(pk, 0)].append(pk)
    pos: dict[int, tuple[float, float]] = {}
    for gen, pks in columns.items():
        for i, pk in enumerate(pks):
            pos[pk] = (gen * 2.0, -(i - (len(pks) - 1) / 2))
    nodes = [
        {
            "x": pos[pk][0],
            "y": pos[pk][1],
            "code": s.code,
            "root": s.code == graph.root,
            "text": f"{s.code}<br>{s.get_kind_display()}"
            f"<br>{_fmt(s.remaining)} of {_fmt(s.quantity)} {s.unit} left",
        }
        for pk, s in graph.samples.items()
    ]
    ops, edges = [], []
    for op in graph.operations.values():
        ins = [i for i in graph.inputs if i.operation_id == op.pk]
        outs = [o for o in graph.outputs if o.operation_id == op.pk]
        members = [pos[i.sample_id] for i in ins] + [pos[o.sample_id] for o in outs]
        xs_in = [pos[i.sample_id][0] for i in ins]
        xs_out = [pos[o.sample_id][0] for o in outs]
        if xs_in and xs_out:
            x = (max(xs_in) + min(xs_out)) / 2
        else:
            x = max(xs_in) + 1 if xs_in else min(xs_out) - 1
        y = sum(p[1] for p in members) / len(members)
        ops.append({"x": x, "y": y, "text": f"{op.get_kind_display()} {op.label}".strip()})
        for taken in ins:
            share = taken.mass_fraction
            frac = f" ({float(share) * 100:.0f} %)" if share is not None else ""
            edges.append(
                {
                    "from": pos[taken.sample_id],
                    "to": (x, y),
                    "label": f"-{_fmt(taken.quantity)}{frac}",
                }
            )
        for o in outs:
            edges.append({"from": (x, y), "to": pos[o.sample_id], "label": f"+{_fmt(o.quantity)}"})
    return {"nodes": nodes, "operations": ops, "edges": edges}


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"


def lineage_of_many(*, samples: list[Sample], root: str) -> Lineage:
    """One picture for several samples (a cell's cathode, separator and anode)."""
    merged = Lineage(root=root)
    for sample in samples:
        graph = lineage(sample=sample)
        for pk, s in graph.samples.items():
            merged.samples.setdefault(pk, s)
            merged.depth.setdefault(pk, graph.depth.get(pk, 0))
        merged.operations.update(graph.operations)
        known_in = {i.pk for i in merged.inputs}
        known_out = {o.pk for o in merged.outputs}
        merged.inputs += [i for i in graph.inputs if i.pk not in known_in]
        merged.outputs += [o for o in graph.outputs if o.pk not in known_out]
    return merged


@dataclass(frozen=True)
class HistoryEntry:
    at: Any  # datetime
    what: str
    detail: str
    who: str = ""


def sample_history(*, sample: Sample) -> list[HistoryEntry]:
    """Everything that happened to a sample, oldest first: changes, operations, exposures."""
    from django.contrib.contenttypes.models import ContentType

    from lims.models import ObjectChange

    entries: list[HistoryEntry] = []
    ct = ContentType.objects.get_for_model(Sample)
    for change in ObjectChange.objects.filter(content_type=ct, object_id=str(sample.pk)):
        changed = ""
        if change.prechange and change.postchange:
            keys = [
                k
                for k in change.postchange
                if change.prechange.get(k) != change.postchange.get(k) and k != "updated_at"
            ]
            changed = ", ".join(
                f"{k}: {change.prechange.get(k)} -> {change.postchange.get(k)}" for k in keys
            )
        entries.append(
            HistoryEntry(
                at=change.time,
                what=f"{change.get_action_display()} ({change.context})",
                detail=changed,
                who=change.user_name,
            )
        )
    for taken in OperationInput.objects.filter(sample=sample).select_related("operation"):
        op = taken.operation
        entries.append(
            HistoryEntry(
                at=op.performed_at or op.created_at,
                what=f"used in {op.get_kind_display().lower()} {op.label}".strip(),
                detail=f"{_fmt(taken.quantity)} {sample.unit} taken",
            )
        )
    for made in OperationOutput.objects.filter(sample=sample).select_related("operation"):
        op = made.operation
        entries.append(
            HistoryEntry(
                at=op.performed_at or op.created_at,
                what=f"made by {op.get_kind_display().lower()} {op.label}".strip(),
                detail=f"{_fmt(made.quantity)} {sample.unit}",
            )
        )
    for event in ExposureEvent.objects.filter(sample=sample):
        ppm = ", ".join(
            f"{name} {value} ppm"
            for name, value in (("H2O", event.h2o_ppm), ("O2", event.o2_ppm))
            if value is not None
        )
        entries.append(
            HistoryEntry(
                at=event.started_at,
                what=f"in {event.get_atmosphere_display()}",
                detail=f"{event.ended_at - event.started_at}" + (f" ({ppm})" if ppm else ""),
            )
        )
    return sorted(entries, key=lambda e: e.at)
