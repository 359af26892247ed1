"""Sample writes: receiving lots, creating samples, lineage operations with mass bookkeeping.

Every operation debits what it consumes from the inputs' remaining quantity under a row lock
(inputs locked in primary-key order, so two operations never deadlock) and refuses to take
more than is left. Outputs are new samples linked to the operation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from lims.events.services import event_emit
from lims.fields import assign_fields, check_fields
from lims.models import Project
from samples.choices import OperationKind, SampleKind, SampleState, Unit
from samples.models import (
    ExposureEvent,
    Material,
    MaterialLot,
    Operation,
    OperationInput,
    OperationOutput,
    Sample,
)

DEFAULT_SPLIT_TOLERANCE_G = Decimal("0.001")  # 1 mg: a lab balance's honest resolution


def _q(value: Decimal) -> str:
    """A quantity as people write it: 60, 9.9995 (never 6E+1)."""
    return f"{value.normalize():f}"


@dataclass
class OutputSpec:
    """A sample an operation produces."""

    code: str
    kind: str
    quantity: Decimal
    state: str = SampleState.AS_RECEIVED
    fields: dict[str, Any] = field(default_factory=dict)


@transaction.atomic
def material_create(
    *,
    name: str,
    material_class: str,
    formula: str = "",
    default_supplier: str = "",
    notes: str = "",
) -> Material:
    material = Material(
        name=name,
        material_class=material_class,
        formula=formula,
        default_supplier=default_supplier,
        notes=notes,
    )
    material.full_clean()
    material.save()
    return material


@transaction.atomic
def lot_receive(
    *,
    project: Project,
    material: Material,
    lot_number: str,
    quantity: Decimal,
    unit: str = Unit.GRAM,
    sample_code: str | None = None,
    sample_kind: str = SampleKind.POWDER,
    **fields: Any,
) -> tuple[MaterialLot, Sample | None]:
    """Record a lot as received and, with ``sample_code``, the sample that starts its lineage."""
    check_fields(MaterialLot, fields)
    lot = MaterialLot(
        project=project,
        material=material,
        lot_number=lot_number,
        quantity_received=quantity,
        unit=unit,
        supplier=fields.pop("supplier", material.default_supplier),
        **fields,
    )
    lot.full_clean()
    lot.save()
    sample = None
    if sample_code:
        sample = sample_create(
            project=project,
            code=sample_code,
            kind=sample_kind,
            quantity=quantity,
            unit=unit,
            material=material,
            lot=lot,
        )
    event_emit(topic="samples.lot.received", payload={"lot": lot.pk, "project": project.pk})
    return lot, sample


@transaction.atomic
def sample_create(
    *,
    project: Project,
    code: str,
    kind: str,
    quantity: Decimal,
    unit: str = Unit.GRAM,
    **fields: Any,
) -> Sample:
    check_fields(Sample, fields)
    sample = Sample(
        project=project,
        code=code,
        kind=kind,
        quantity=Decimal(quantity),
        remaining=Decimal(quantity),
        unit=unit,
        **fields,
    )
    sample.full_clean()
    sample.save()
    event_emit(topic="samples.sample.created", payload={"sample": code, "project": project.pk})
    return sample


def _lock_and_take(inputs: list[tuple[Sample, Decimal]]) -> dict[int, Sample]:
    """Lock the inputs (pk order) and debit each; refuse over-consumption with the numbers."""
    wanted: dict[int, Decimal] = {}
    for sample, quantity in inputs:
        if Decimal(quantity) <= 0:
            raise ValidationError(f"{sample.code}: the amount taken must be positive")
        wanted[sample.pk] = wanted.get(sample.pk, Decimal(0)) + Decimal(quantity)
    locked = {
        s.pk: s for s in Sample.objects.select_for_update().filter(pk__in=wanted).order_by("pk")
    }
    for pk, quantity in wanted.items():
        sample = locked[pk]
        if sample.state in (SampleState.CONSUMED, SampleState.DISCARDED):
            raise ValidationError(f"{sample.code} is {sample.get_state_display().lower()}")
        if quantity > sample.remaining:
            raise ValidationError(
                f"cannot take {_q(quantity)} {sample.unit} from {sample.code}: "
                f"only {_q(sample.remaining)} {sample.unit} remain"
            )
        sample.remaining -= quantity
        if sample.remaining == 0:
            sample.state = SampleState.CONSUMED
        sample.save(update_fields=["remaining", "state", "updated_at"])
    return locked


@transaction.atomic
def operation_record(
    *,
    project: Project,
    kind: str,
    inputs: list[tuple[Sample, Decimal]],
    outputs: list[OutputSpec],
    label: str = "",
    performed_at: datetime | None = None,
    operator: Any = None,
    notes: str = "",
    tolerance: Decimal | None = None,
    mass_fractions: dict[int, Decimal] | None = None,
    parameters: dict[str, Any] | None = None,
) -> Operation:
    """Consume ``inputs`` and produce ``outputs`` in one step of lineage."""
    if kind not in OperationKind.values:
        raise ValidationError(f"unknown operation kind {kind!r}")
    if not inputs and not outputs:
        raise ValidationError("an operation needs inputs or outputs")
    for sample, _ in inputs:
        if sample.project_id != project.pk:
            raise ValidationError(f"{sample.code} belongs to another project")
    locked = _lock_and_take(inputs)
    operation = Operation(
        project=project,
        kind=kind,
        label=label,
        performed_at=performed_at,
        operator=operator,
        notes=notes,
        tolerance=tolerance,
        parameters=parameters or {},
    )
    operation.full_clean()
    operation.save()
    OperationInput.objects.bulk_create(
        OperationInput(
            operation=operation,
            sample_id=sample.pk,
            quantity=Decimal(quantity),
            mass_fraction=(mass_fractions or {}).get(sample.pk),
        )
        for sample, quantity in inputs
    )
    first = locked[inputs[0][0].pk] if inputs else None
    for spec in outputs:
        extra = dict(spec.fields)
        if first is not None:
            extra.setdefault("material", first.material)
            extra.setdefault("lot", first.lot)
            extra.setdefault("unit", first.unit)
        produced = sample_create(
            project=project,
            code=spec.code,
            kind=spec.kind,
            quantity=spec.quantity,
            state=spec.state,
            **extra,
        )
        OperationOutput.objects.create(operation=operation, sample=produced, quantity=spec.quantity)
    event_emit(
        topic="samples.operation.recorded",
        payload={
            "operation": operation.pk,
            "kind": kind,
            "inputs": [s.code for s, _ in inputs],
            "outputs": [o.code for o in outputs],
        },
    )
    return operation


def sample_split(
    *,
    sample: Sample,
    aliquots: list[OutputSpec],
    taken: Decimal | None = None,
    tolerance: Decimal = DEFAULT_SPLIT_TOLERANCE_G,
    **kwargs: Any,
) -> Operation:
    """One sample -> n aliquots; the aliquots must add up to what was taken, within tolerance."""
    if not aliquots:
        raise ValidationError("a split needs at least one aliquot")
    total = sum((Decimal(a.quantity) for a in aliquots), Decimal(0))
    amount = total if taken is None else Decimal(taken)
    if abs(total - amount) > tolerance:
        raise ValidationError(
            f"aliquots of {sample.code} add up to {_q(total)} {sample.unit} but "
            f"{_q(amount)} {sample.unit} were taken (tolerance "
            f"{_q(tolerance)} {sample.unit})"
        )
    for a in aliquots:  # an aliquot is what its parent was (coated stays coated) unless told
        if a.state == SampleState.AS_RECEIVED:
            a.state = sample.state
    return operation_record(
        project=sample.project,
        kind=OperationKind.SPLIT,
        inputs=[(sample, amount)],
        outputs=aliquots,
        tolerance=tolerance,
        **kwargs,
    )


def sample_mix(
    *, project: Project, inputs: list[tuple[Sample, Decimal]], output: OutputSpec, **kwargs: Any
) -> Operation:
    """n samples -> one composite; each input's mass fraction is recorded on the edge."""
    total = sum((Decimal(q) for _, q in inputs), Decimal(0))
    if total <= 0:
        raise ValidationError("a mix needs inputs with mass")
    fractions = {s.pk: (Decimal(q) / total).quantize(Decimal("0.000001")) for s, q in inputs}
    output.state = SampleState.MIXED
    output.fields.setdefault("material", None)
    output.fields.setdefault("lot", None)
    return operation_record(
        project=project,
        kind=OperationKind.MIX,
        inputs=inputs,
        outputs=[output],
        mass_fractions=fractions,
        **kwargs,
    )


@transaction.atomic
def exposure_add(
    *,
    sample: Sample,
    atmosphere: str,
    started_at: datetime,
    ended_at: datetime,
    h2o_ppm: Decimal | None = None,
    o2_ppm: Decimal | None = None,
    notes: str = "",
) -> ExposureEvent:
    event = ExposureEvent(
        sample=sample,
        atmosphere=atmosphere,
        started_at=started_at,
        ended_at=ended_at,
        h2o_ppm=h2o_ppm,
        o2_ppm=o2_ppm,
        notes=notes,
    )
    if ended_at < started_at:
        raise ValidationError("an exposure cannot end before it starts")
    event.full_clean()
    event.save()
    return event


@transaction.atomic
def material_update(*, material: Material, **fields: Any) -> Material:
    material = Material.objects.select_for_update().get(pk=material.pk)
    assign_fields(material, fields)
    material.full_clean()
    material.save()
    return material


@transaction.atomic
def lot_update(*, lot: MaterialLot, **fields: Any) -> MaterialLot:
    """Edit a lot's paperwork; its material, number and received quantity are history."""
    lot = MaterialLot.objects.select_for_update().get(pk=lot.pk)
    for name in ("material", "lot_number", "quantity_received", "unit", "project"):
        if name in fields:
            raise ValidationError({name: "cannot be changed after receipt"})
    assign_fields(lot, fields)
    lot.full_clean()
    lot.save()
    return lot


def sample_press(
    *,
    project: Project,
    inputs: list[tuple[Sample, Decimal]],
    output: OutputSpec,
    pressure_mpa: Decimal,
    die_diameter_mm: Decimal | None = None,
    hold_s: Decimal | None = None,
    temperature_c: Decimal | None = None,
    **kwargs: Any,
) -> Operation:
    """Press powders into a pellet (a composite cathode on a solid-electrolyte layer, a
    separator): a step of lineage whose pressure the cells built from it report."""
    if Decimal(pressure_mpa) <= 0:
        raise ValidationError({"pressure_mpa": "a press needs a pressure above zero"})
    parameters = {
        name: float(value)
        for name, value in (
            ("pressure_mpa", pressure_mpa),
            ("die_diameter_mm", die_diameter_mm),
            ("hold_s", hold_s),
            ("temperature_c", temperature_c),
        )
        if value is not None
    }
    output.state = SampleState.PRESSED
    if die_diameter_mm is not None:
        output.fields.setdefault("diameter_mm", Decimal(die_diameter_mm))
    return operation_record(
        project=project,
        kind=OperationKind.PRESS,
        inputs=inputs,
        outputs=[output],
        parameters=parameters,
        **kwargs,
    )
