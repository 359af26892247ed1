"""Deposition writes: tools and ports, bottles, recipes (versioned, frozen), runs, anneals.

Keyword-only, typed, atomic; every write is validated (``full_clean``) and emits
``depositions.<entity>.<verb>``. Runs and anneals never debit samples themselves: they call
``samples.services.operation_record``, which owns consumption (row locks, over-consumption
refusal) and lineage.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from depositions import expansion, references, selectors
from depositions.choices import LoadRole, LotStatus, RunStatus, StepPhase, TreatmentStatus
from depositions.furnace import selectors as furnace_selectors
from depositions.furnace.profile import planned_profile
from depositions.inputs import (
    AnnealInput,
    BlockInput,
    LoadOutput,
    SegmentInput,
    StepInput,
    SubCycleInput,
)
from depositions.models import (
    AnnealSegment,
    Chemical,
    CompositionMeasurement,
    DepositionRun,
    FilmProperty,
    PostTreatment,
    PrecursorLot,
    ProcessReference,
    Recipe,
    RunCheck,
    RunLoad,
    RunPrecursor,
    SourceInstallation,
    Step,
    SubCycle,
    SupercycleBlock,
    ThicknessMeasurement,
    Tool,
    ToolSource,
)
from lims.events.services import event_emit
from lims.fields import assign_fields, check_fields
from lims.models import Instrument, Project
from lims.selectors import project_ids_visible
from samples.choices import MaterialClass, OperationKind, SampleKind, SampleState, Unit
from samples.models import MaterialLot, Sample
from samples.services import OutputSpec, operation_record

# What a sample becomes when coated or annealed (other kinds keep their kind).
COATED_KIND: dict[str, str] = {
    SampleKind.POWDER.value: SampleKind.COATED_POWDER.value,
    SampleKind.ANNEALED_POWDER.value: SampleKind.COATED_POWDER.value,
}
ANNEALED_KIND: dict[str, str] = {
    SampleKind.POWDER.value: SampleKind.ANNEALED_POWDER.value,
    SampleKind.COATED_POWDER.value: SampleKind.ANNEALED_POWDER.value,
}
# Sample fields an output inherits from the sample it was made from.
# BET is carried over as the best estimate: a nm-thin coating barely changes it.
INHERITED_FIELDS = (
    "material",
    "lot",
    "unit",
    "form_factor",
    "diameter_mm",
    "thickness_um",
    "area_cm2",
    "bet_m2_g",
)
# Elements that are anions or ligand residues, not the "metal" of a Li/metal ratio.
NON_METALS = frozenset({"Li", "O", "N", "C", "H", "S", "F", "Cl", "Br", "I", "Se"})


def _require_member(user: Any, project_id: int | None, field: str, what: str) -> None:
    """A write on behalf of ``user`` (pages and API pass one; shell and tasks do not) lands
    only in the user's projects. The message names nothing of the other project."""
    if user is None:
        return
    ids = project_ids_visible(user=user)
    if ids is not None and project_id not in ids:
        raise ValidationError({field: f"no such {what} in your projects"})


def _clean_save(obj: Any) -> Any:
    obj.full_clean()
    obj.save()
    return obj


# --- tools, ports, chemicals, bottles ----------------------------------------------------


@transaction.atomic
def tool_create(
    *,
    instrument: Instrument,
    reactor_type: str,
    chambers: int = 1,
    notes: str = "",
    check_thresholds: dict[str, Any] | None = None,
    log_mapping: Any = None,
    user: Any = None,
) -> Tool:
    _require_member(user, instrument.project_id, "instrument", "instrument")
    tool = _clean_save(
        Tool(
            instrument=instrument,
            reactor_type=reactor_type,
            chambers=chambers,
            notes=notes,
            check_thresholds=check_thresholds or {},
            log_mapping=log_mapping,
        )
    )
    event_emit(
        topic="depositions.tool.created",
        payload={"tool": tool.pk, "instrument": instrument.name, "project": instrument.project_id},
    )
    return tool


@transaction.atomic
def tool_update(*, tool: Tool, **fields: Any) -> Tool:
    tool = Tool.objects.select_for_update().get(pk=tool.pk)
    assign_fields(tool, fields)
    _clean_save(tool)
    event_emit(topic="depositions.tool.updated", payload={"tool": tool.pk})
    return tool


@transaction.atomic
def tool_source_create(
    *, tool: Tool, label: str, delivery: str, user: Any = None, **fields: Any
) -> ToolSource:
    _require_member(user, tool.instrument.project_id, "tool", "tool")
    check_fields(ToolSource, fields)
    source = _clean_save(ToolSource(tool=tool, label=label, delivery=delivery, **fields))
    event_emit(
        topic="depositions.tool_source.created",
        payload={"tool_source": source.pk, "tool": tool.pk, "label": label},
    )
    return source


@transaction.atomic
def tool_source_update(*, source: ToolSource, **fields: Any) -> ToolSource:
    source = ToolSource.objects.select_for_update().get(pk=source.pk)
    fields.pop("tool", None)  # a port does not move to another tool
    assign_fields(source, fields)
    _clean_save(source)
    event_emit(topic="depositions.tool_source.updated", payload={"tool_source": source.pk})
    return source


@transaction.atomic
def chemical_create(*, name: str, state: str, **fields: Any) -> Chemical:
    check_fields(Chemical, fields)
    chemical = _clean_save(Chemical(name=name, state=state, **fields))
    event_emit(topic="depositions.chemical.created", payload={"chemical": chemical.pk})
    return chemical


@transaction.atomic
def chemical_update(*, chemical: Chemical, **fields: Any) -> Chemical:
    chemical = Chemical.objects.select_for_update().get(pk=chemical.pk)
    assign_fields(chemical, fields)
    _clean_save(chemical)
    event_emit(topic="depositions.chemical.updated", payload={"chemical": chemical.pk})
    return chemical


@transaction.atomic
def precursor_lot_create(
    *,
    material_lot: MaterialLot,
    chemical: Chemical,
    bottle_label: str,
    user: Any = None,
    **fields: Any,
) -> PrecursorLot:
    """Give a received precursor lot its chemistry and bottle label."""
    _require_member(user, material_lot.project_id, "material_lot", "material lot")
    if material_lot.material.material_class != MaterialClass.PRECURSOR:
        raise ValidationError({"material_lot": f"{material_lot} is not a precursor material lot"})
    check_fields(PrecursorLot, fields)
    lot = _clean_save(
        PrecursorLot(
            material_lot=material_lot, chemical=chemical, bottle_label=bottle_label, **fields
        )
    )
    event_emit(
        topic="depositions.precursor_lot.created",
        payload={"precursor_lot": lot.pk, "project": material_lot.project_id},
    )
    return lot


@transaction.atomic
def precursor_lot_update(*, lot: PrecursorLot, **fields: Any) -> PrecursorLot:
    lot = PrecursorLot.objects.select_for_update().get(pk=lot.pk)
    fields.pop("material_lot", None)
    assign_fields(lot, fields)
    _clean_save(lot)
    event_emit(
        topic="depositions.precursor_lot.updated",
        payload={"precursor_lot": lot.pk, "status": lot.status},
    )
    return lot


@transaction.atomic
def source_install(
    *,
    tool_source: ToolSource,
    precursor_lot: PrecursorLot,
    installed_at: datetime | None = None,
    installed_by: Any = None,
    notes: str = "",
) -> SourceInstallation:
    """Put a bottle on a port: closes the port's open installation (and the bottle's, if it
    sat on another port) at ``installed_at``, so the history never overlaps."""
    when = installed_at or timezone.now()
    if precursor_lot.status in (LotStatus.EMPTY, LotStatus.DISPOSED):
        raise ValidationError(f"{precursor_lot} is {precursor_lot.get_status_display().lower()}")
    ToolSource.objects.select_for_update().get(pk=tool_source.pk)  # one installer per port
    related = SourceInstallation.objects.filter(
        Q(tool_source=tool_source) | Q(precursor_lot=precursor_lot)
    )
    later = related.filter(Q(installed_at__gt=when) | Q(removed_at__gt=when)).first()
    if later is not None:
        raise ValidationError(
            f"{later} overlaps {when:%Y-%m-%d %H:%M}: record installations in time order"
        )
    for previous in related.select_for_update().filter(removed_at__isnull=True).order_by("pk"):
        previous.removed_at = when
        _clean_save(previous)
    installation = _clean_save(
        SourceInstallation(
            tool_source=tool_source,
            precursor_lot=precursor_lot,
            installed_at=when,
            installed_by=installed_by,
            notes=notes,
        )
    )
    if precursor_lot.status == LotStatus.SEALED:
        precursor_lot_update(
            lot=precursor_lot,
            status=LotStatus.IN_USE,
            opened_on=precursor_lot.opened_on or when.date(),
        )
    event_emit(
        topic="depositions.source.installed",
        payload={
            "installation": installation.pk,
            "tool_source": tool_source.pk,
            "precursor_lot": precursor_lot.pk,
            "installed_at": when,
        },
    )
    return installation


@transaction.atomic
def source_remove(*, tool_source: ToolSource, removed_at: datetime | None = None) -> None:
    when = removed_at or timezone.now()
    current = (
        SourceInstallation.objects.select_for_update()
        .filter(tool_source=tool_source, removed_at__isnull=True)
        .first()
    )
    if current is None:
        raise ValidationError(f"nothing is installed on {tool_source}")
    current.removed_at = when
    _clean_save(current)
    event_emit(
        topic="depositions.source.removed",
        payload={"installation": current.pk, "tool_source": tool_source.pk, "removed_at": when},
    )


# --- recipes --------------------------------------------------------------------------------


def _step_spec(order: int, step: StepInput) -> expansion.StepSpec:
    return expansion.StepSpec(
        order=order,
        kind=step.kind,
        source_label=step.source_label,
        duration_s=float(step.duration_s),
    )


def _validate_structure(
    *,
    repeats: int,
    subcycles: Sequence[SubCycleInput],
    blocks: Sequence[BlockInput],
    pre_steps: Sequence[StepInput],
    post_steps: Sequence[StepInput],
) -> None:
    """Build the pure spec once: the same rules the expansion applies, before any write."""
    for step in (*pre_steps, *post_steps, *(s for sc in subcycles for s in sc.steps)):
        if not step.source_label and step.source is not None:
            step.source_label = step.source.reactant or step.source.label
        step.source_label = step.source_label.strip()
    try:
        expansion.RecipeSpec(
            subcycles=tuple(
                expansion.SubCycleSpec(
                    name=sc.name,
                    steps=tuple(_step_spec(i, s) for i, s in enumerate(sc.steps, start=1)),
                )
                for sc in subcycles
            ),
            blocks=tuple(expansion.BlockSpec(b.subcycle, int(b.repeat)) for b in blocks),
            repeats=int(repeats),
            pre_steps=tuple(_step_spec(i, s) for i, s in enumerate(pre_steps, start=1)),
            post_steps=tuple(_step_spec(i, s) for i, s in enumerate(post_steps, start=1)),
        )
    except expansion.ExpansionError as exc:
        raise ValidationError(str(exc)) from exc
    for sc in subcycles:
        if not sc.steps:
            raise ValidationError(f"sub-cycle {sc.name!r} has no steps")


def _step_row(step: StepInput, order: int, **parent: Any) -> Step:
    row = Step(
        order=order,
        kind=step.kind,
        source=step.source,
        source_label=step.source_label,
        duration_s=step.duration_s,
        flow_sccm=step.flow_sccm,
        plasma_power_w=step.plasma_power_w,
        **parent,
    )
    row.full_clean()
    return row


def _structure_write(
    *,
    recipe: Recipe,
    subcycles: Sequence[SubCycleInput],
    blocks: Sequence[BlockInput],
    pre_steps: Sequence[StepInput],
    post_steps: Sequence[StepInput],
) -> None:
    _validate_structure(
        repeats=recipe.supercycle_repeats,
        subcycles=subcycles,
        blocks=blocks,
        pre_steps=pre_steps,
        post_steps=post_steps,
    )
    recipe.blocks.all().delete()
    recipe.extra_steps.all().delete()
    recipe.subcycles.all().delete()
    by_name: dict[str, SubCycle] = {}
    steps: list[Step] = []
    for order, sc in enumerate(subcycles, start=1):
        row = _clean_save(
            SubCycle(
                recipe=recipe,
                name=sc.name,
                order=order,
                gpc_angstrom=sc.gpc_angstrom,
                target_material=sc.target_material,
            )
        )
        by_name[sc.name] = row
        steps += [_step_row(s, i, subcycle=row) for i, s in enumerate(sc.steps, start=1)]
    for phase, group in ((StepPhase.PRE, pre_steps), (StepPhase.POST, post_steps)):
        steps += [_step_row(s, i, recipe=recipe, phase=phase) for i, s in enumerate(group, start=1)]
    Step.objects.bulk_create(steps)
    SupercycleBlock.objects.bulk_create(
        SupercycleBlock(recipe=recipe, order=i, subcycle=by_name[b.subcycle], repeat=b.repeat)
        for i, b in enumerate(blocks, start=1)
    )


def _recipe_payload(recipe: Recipe) -> dict[str, Any]:
    return {
        "recipe": recipe.pk,
        "name": recipe.name,
        "version": recipe.version,
        "project": recipe.project_id,
    }


@transaction.atomic
def recipe_create(
    *,
    project: Project,
    name: str,
    subcycles: Sequence[SubCycleInput],
    blocks: Sequence[BlockInput] = (),  # none: refused as any empty supercycle is (a 400)
    supercycle_repeats: int = 1,
    pre_steps: Sequence[StepInput] = (),
    post_steps: Sequence[StepInput] = (),
    version: int = 1,
    created_by: Any = None,
    **fields: Any,
) -> Recipe:
    """Create a recipe with its sub-cycles, steps and supercycle blocks in one go."""
    check_fields(Recipe, fields)
    recipe = _clean_save(
        Recipe(
            project=project,
            name=name,
            version=version,
            supercycle_repeats=supercycle_repeats,
            created_by=created_by,
            **fields,
        )
    )
    _structure_write(
        recipe=recipe,
        subcycles=subcycles,
        blocks=blocks,
        pre_steps=pre_steps,
        post_steps=post_steps,
    )
    event_emit(topic="depositions.recipe.created", payload=_recipe_payload(recipe))
    return recipe


def _frozen_error(recipe: Recipe) -> ValidationError:
    return ValidationError(
        f"recipe {recipe} is frozen (a run used it); create a new version to change it"
    )


@transaction.atomic
def recipe_update(
    *,
    recipe: Recipe,
    subcycles: Sequence[SubCycleInput] | None = None,
    blocks: Sequence[BlockInput] | None = None,
    pre_steps: Sequence[StepInput] | None = None,
    post_steps: Sequence[StepInput] | None = None,
    **fields: Any,
) -> Recipe:
    """Edit a recipe that no run has used; structure arguments replace the whole structure."""
    recipe = Recipe.objects.select_for_update().get(pk=recipe.pk)
    if recipe.frozen:
        raise _frozen_error(recipe)
    for name in ("project", "name", "version", "frozen", "frozen_at"):
        if name in fields and fields[name] != getattr(recipe, name):
            raise ValidationError({name: "cannot be changed; create a new recipe or version"})
        fields.pop(name, None)
    assign_fields(recipe, fields)
    _clean_save(recipe)
    structure = (subcycles, blocks, pre_steps, post_steps)
    if any(part is not None for part in structure):
        if subcycles is None or blocks is None:
            current = selectors.recipe_inputs(recipe=recipe)
            subcycles = current["subcycles"] if subcycles is None else subcycles
            blocks = current["blocks"] if blocks is None else blocks
            pre_steps = current["pre_steps"] if pre_steps is None else pre_steps
            post_steps = current["post_steps"] if post_steps is None else post_steps
        _structure_write(
            recipe=recipe,
            subcycles=subcycles,
            blocks=blocks,
            pre_steps=pre_steps or (),
            post_steps=post_steps or (),
        )
    event_emit(topic="depositions.recipe.updated", payload=_recipe_payload(recipe))
    return recipe


@transaction.atomic
def recipe_new_version(*, recipe: Recipe, created_by: Any = None, **changes: Any) -> Recipe:
    """Copy a recipe (frozen or not) to the next free version; ``changes`` apply to the copy."""
    source = Recipe.objects.select_for_update().get(pk=recipe.pk)
    latest = Recipe.objects.filter(project=source.project, name=source.name).aggregate(
        v=Max("version")
    )["v"]
    structure = selectors.recipe_inputs(recipe=source)
    for key in ("subcycles", "blocks", "pre_steps", "post_steps"):
        if key in changes:
            structure[key] = changes.pop(key)
    copied = {
        f.name: getattr(source, f.name)
        for f in Recipe._meta.concrete_fields
        if f.editable
        and f.name
        not in ("id", "project", "name", "version", "previous_version", "created_by", "notes")
    }
    copied.update(
        notes=changes.pop("notes", source.notes),
        **changes,
    )
    new = recipe_create(
        project=source.project,
        name=source.name,
        version=(latest or 0) + 1,
        previous_version=source,
        created_by=created_by,
        subcycles=structure["subcycles"],
        blocks=structure["blocks"],
        pre_steps=structure["pre_steps"],
        post_steps=structure["post_steps"],
        **copied,
    )
    event_emit(
        topic="depositions.recipe.versioned",
        payload={**_recipe_payload(new), "previous": source.pk},
    )
    return new


def _recipe_freeze(recipe: Recipe) -> Recipe:
    recipe = Recipe.objects.select_for_update().get(pk=recipe.pk)
    if not recipe.frozen:
        recipe.frozen = True
        recipe.frozen_at = timezone.now()
        recipe.save(update_fields=["frozen", "frozen_at", "updated_at"])
        event_emit(topic="depositions.recipe.frozen", payload=_recipe_payload(recipe))
    return recipe


@transaction.atomic
def process_references_load(*, update: bool = False) -> tuple[int, int]:
    """(Re)load the reference processes shipped in ``depositions/data``."""
    created, updated = references.load(model=ProcessReference, update=update)
    event_emit(
        topic="depositions.process_reference.loaded",
        payload={"created": created, "updated": updated},
    )
    return created, updated


@transaction.atomic
def process_reference_save(
    *, reference: ProcessReference | None = None, **fields: Any
) -> ProcessReference:
    """Staff edits of the reference table (create when ``reference`` is None)."""
    obj = reference or ProcessReference()
    assign_fields(obj, fields)
    _clean_save(obj)
    event_emit(topic="depositions.process_reference.saved", payload={"reference": obj.key})
    return obj


# --- runs -------------------------------------------------------------------------------------


def _run_payload(run: DepositionRun) -> dict[str, Any]:
    return {"run": run.code, "id": run.pk, "project": run.project_id, "status": run.status}


def _snapshot(recipe: Recipe) -> dict[str, Any]:
    spec = selectors.recipe_spec(recipe=recipe)
    return {
        "recipe": {
            "id": recipe.pk,
            "name": recipe.name,
            "version": recipe.version,
            "mode": recipe.mode,
            "target_material": recipe.target_material,
            "deposition_temperature_c": recipe.deposition_temperature_c,
            "chamber_pressure_torr": recipe.chamber_pressure_torr,
            "carrier_gas": recipe.carrier_gas,
            "carrier_flow_sccm": recipe.carrier_flow_sccm,
            "film_density_g_cm3": recipe.film_density_g_cm3,
            "process_reference": recipe.process_reference.key if recipe.process_reference else None,
        },
        "spec": spec.to_dict(),
        "summary": expansion.summary(spec),
        "snapshot_at": timezone.now(),
    }


def _precursors_from_installations(run: DepositionRun, at: datetime) -> None:
    """Record the bottles installed on the tool's ports at ``at`` (hand entries stay)."""
    run.precursors.filter(from_installation=True).delete()
    manual = set(run.precursors.values_list("tool_source_id", flat=True))
    rows = [
        RunPrecursor(
            run=run,
            tool_source_id=inst.tool_source_id,
            precursor_lot_id=inst.precursor_lot_id,
            from_installation=True,
        )
        for inst in selectors.installations_at(tool=run.tool, at=at)
        if inst.tool_source_id not in manual
    ]
    RunPrecursor.objects.bulk_create(rows)


@transaction.atomic
def run_create(
    *,
    project: Project,
    code: str,
    tool: Tool,
    recipe: Recipe,
    chamber: int = 1,
    operator: Any = None,
    started_at: datetime | None = None,
    **fields: Any,
) -> DepositionRun:
    """Plan a run: freezes the recipe and snapshots it (structure + expansion summary)."""
    if recipe.project_id != project.pk:
        raise ValidationError({"recipe": "the recipe belongs to another project"})
    if chamber > tool.chambers:
        raise ValidationError({"chamber": f"{tool} has {tool.chambers} chamber(s)"})
    recipe = _recipe_freeze(recipe)
    check_fields(DepositionRun, fields)
    fields.setdefault("setpoint_temperature_c", recipe.deposition_temperature_c)
    run = _clean_save(
        DepositionRun(
            project=project,
            code=code,
            tool=tool,
            chamber=chamber,
            recipe=recipe,
            recipe_snapshot=_snapshot(recipe),
            planned_cycles=recipe.supercycle_repeats,
            operator=operator,
            started_at=started_at,
            **fields,
        )
    )
    _precursors_from_installations(run, started_at or timezone.now())
    event_emit(topic="depositions.run.created", payload=_run_payload(run))
    return run


def _lock_run(run: DepositionRun, *allowed: str) -> DepositionRun:
    locked = DepositionRun.objects.select_for_update().get(pk=run.pk)
    if allowed and locked.status not in allowed:
        raise ValidationError(f"run {locked.code} is {locked.get_status_display().lower()}")
    return locked


@transaction.atomic
def run_update(*, run: DepositionRun, **fields: Any) -> DepositionRun:
    """Edit a run's conditions and notes; the recipe, tool and lineage fields are fixed."""
    run = _lock_run(run)
    for name in ("project", "code", "recipe", "tool", "status", "operation", "planned_cycles"):
        if name in fields and fields[name] != getattr(run, name):
            raise ValidationError({name: "cannot be changed here"})
        fields.pop(name, None)
    assign_fields(run, fields)
    if run.chamber > run.tool.chambers:
        raise ValidationError({"chamber": f"{run.tool} has {run.tool.chambers} chamber(s)"})
    _clean_save(run)
    event_emit(topic="depositions.run.updated", payload=_run_payload(run))
    return run


@transaction.atomic
def run_precursor_set(
    *, run: DepositionRun, tool_source: ToolSource, precursor_lot: PrecursorLot
) -> RunPrecursor:
    """Say by hand which bottle was on a port (overrides the installation history)."""
    if tool_source.tool_id != run.tool_id:
        raise ValidationError({"tool_source": f"{tool_source} is not a port of {run.tool}"})
    row, _ = RunPrecursor.objects.update_or_create(
        run=run,
        tool_source=tool_source,
        defaults={"precursor_lot": precursor_lot, "from_installation": False},
    )
    event_emit(
        topic="depositions.run.precursor_set",
        payload={**_run_payload(run), "tool_source": tool_source.pk, "lot": precursor_lot.pk},
    )
    return row


def _default_quantity(sample: Sample, mass_g: Decimal | None, area: Decimal | None) -> Decimal:
    """What the run takes from the sample: the loaded mass/area in its unit, else all of it."""
    if sample.unit == Unit.GRAM and mass_g is not None:
        return mass_g
    if sample.unit == Unit.SQUARE_CM and area is not None:
        return area
    return sample.remaining


@transaction.atomic
def run_load_add(
    *,
    run: DepositionRun,
    sample: Sample,
    role: str = LoadRole.PRODUCT,
    position: str = "",
    mass_g: Decimal | None = None,
    bet_m2_g: Decimal | None = None,
    area_cm2: Decimal | None = None,
    quantity: Decimal | None = None,
    notes: str = "",
) -> RunLoad:
    """Put a sample in the reactor. Nothing is debited until the run completes."""
    run = _lock_run(run, RunStatus.PLANNED, RunStatus.RUNNING)
    if sample.project_id != run.project_id:
        raise ValidationError({"sample": f"{sample.code} belongs to another project"})
    if mass_g is None and sample.unit == Unit.GRAM and quantity is not None:
        mass_g = quantity
    area = area_cm2 if area_cm2 is not None else sample.area_cm2
    load = _clean_save(
        RunLoad(
            run=run,
            sample=sample,
            role=role,
            position=position,
            mass_g=mass_g,
            bet_m2_g=bet_m2_g if bet_m2_g is not None else sample.bet_m2_g,
            area_cm2=area,
            quantity=quantity if quantity is not None else _default_quantity(sample, mass_g, area),
            notes=notes,
        )
    )
    if load.quantity <= 0:
        raise ValidationError({"quantity": f"nothing left of {sample.code} to load"})
    event_emit(
        topic="depositions.run.load_added",
        payload={**_run_payload(run), "sample": sample.code, "role": role},
    )
    return load


@transaction.atomic
def run_start(*, run: DepositionRun, started_at: datetime | None = None) -> DepositionRun:
    run = _lock_run(run, RunStatus.PLANNED)
    run.started_at = started_at or timezone.now()
    run.status = RunStatus.RUNNING
    _clean_save(run)
    _precursors_from_installations(run, run.started_at)
    event_emit(topic="depositions.run.started", payload=_run_payload(run))
    return run


def _output_fields(sample: Sample, notes: str) -> dict[str, Any]:
    out: dict[str, Any] = {name: getattr(sample, name) for name in INHERITED_FIELDS}
    out["notes"] = notes
    return out


def _output_code(sample: Sample, suffix: str) -> str:
    code = f"{sample.code}.{suffix}"
    if len(code) > 64:
        raise ValidationError(
            f"the default output code {code!r} is longer than 64 characters; give one"
        )
    return code


@transaction.atomic
def run_complete(
    *,
    run: DepositionRun,
    ended_at: datetime | None = None,
    actual_cycles: int | None = None,
    outputs: dict[int, LoadOutput] | None = None,
    measured_temperature_c: Decimal | None = None,
    notes: str | None = None,
) -> DepositionRun:
    """Finish a run: its loads are consumed and coated samples produced, in one operation.

    ``outputs`` maps a load id to its output code/quantity. Over-consumption (a load taking
    more than is left of its sample) is refused by ``operation_record`` and nothing is written.
    """
    run = _lock_run(run, RunStatus.PLANNED, RunStatus.RUNNING)
    loads = list(run.loads.select_related("sample__material", "sample__lot").order_by("pk"))
    if not loads:
        raise ValidationError(f"run {run.code} has no loads: nothing was coated")
    outputs = outputs or {}
    unknown = set(outputs) - {load.pk for load in loads}
    if unknown:
        raise ValidationError(f"outputs name loads that are not in run {run.code}: {unknown}")
    end = ended_at or timezone.now()
    specs: list[OutputSpec] = []
    codes: list[str] = []
    for load in loads:
        choice = outputs.get(load.pk) or LoadOutput()
        code = choice.code or _output_code(load.sample, run.code)
        codes.append(code)
        specs.append(
            OutputSpec(
                code=code,
                kind=COATED_KIND.get(load.sample.kind, load.sample.kind),
                quantity=choice.quantity if choice.quantity is not None else load.quantity,
                state=SampleState.COATED,
                fields=_output_fields(load.sample, f"coated in run {run.code} ({load.role})"),
            )
        )
    operation = operation_record(
        project=run.project,
        kind=OperationKind.DEPOSITION,
        inputs=[(load.sample, load.quantity) for load in loads],
        outputs=specs,
        label=run.code,
        performed_at=end,
        operator=run.operator,
        notes=f"deposition run {run.code}, recipe {run.recipe}",
    )
    produced = {s.code: s for s in Sample.objects.filter(code__in=codes)}
    for load, code in zip(loads, codes, strict=True):
        load.output_sample = produced[code]
        load.save(update_fields=["output_sample"])
    run.operation = operation
    run.status = RunStatus.COMPLETED
    run.started_at = run.started_at or end
    run.ended_at = end
    if actual_cycles is not None:
        run.actual_cycles = actual_cycles
    if measured_temperature_c is not None:
        run.measured_temperature_c = measured_temperature_c
    if notes:
        run.notes = f"{run.notes}\n{notes}".strip()
    _clean_save(run)
    event_emit(
        topic="depositions.run.completed",
        payload={**_run_payload(run), "operation": operation.pk, "outputs": codes},
    )
    # its log may have been checked while it ran: a failing check fails the completed run
    failing = list(
        RunCheck.objects.filter(run=run, status="fail").values_list("name", flat=True)[:10]
    )
    if failing:
        run.status = RunStatus.FAILED_QC
        run.qc_failed_by_log = True
        run.notes = f"{run.notes}\nfailed QC (tool log): {', '.join(failing)}".strip()
        _clean_save(run)
        event_emit(
            topic="depositions.run.failed_qc",
            payload={**_run_payload(run), "reason": f"tool-log checks: {', '.join(failing)}"},
        )
    return run


@transaction.atomic
def run_abort(
    *, run: DepositionRun, reason: str, ended_at: datetime | None = None
) -> DepositionRun:
    """Stop a run without lineage: the loads stay as they were (record a split if needed)."""
    run = _lock_run(run, RunStatus.PLANNED, RunStatus.RUNNING)
    if not reason.strip():
        raise ValidationError({"reason": "say why the run was aborted"})
    run.status = RunStatus.ABORTED
    run.ended_at = ended_at or timezone.now()
    if run.started_at is None or run.started_at > run.ended_at:
        run.started_at = run.started_at or run.ended_at
    run.notes = f"{run.notes}\naborted: {reason}".strip()
    _clean_save(run)
    event_emit(topic="depositions.run.aborted", payload={**_run_payload(run), "reason": reason})
    return run


@transaction.atomic
def run_qc_fail(*, run: DepositionRun, reason: str) -> DepositionRun:
    """Mark a completed run as failed QC; its outputs stay in the lineage, flagged by the run.

    A run its tool log already failed can be failed by a person too: the decision is then
    theirs, and no later re-check of the log takes it back."""
    run = _lock_run(run, RunStatus.COMPLETED, RunStatus.FAILED_QC)
    if not reason.strip():
        raise ValidationError({"reason": "say why the run failed QC"})
    if run.status == RunStatus.FAILED_QC and not run.qc_failed_by_log:
        raise ValidationError(f"run {run.code} already failed QC")
    run.status = RunStatus.FAILED_QC
    run.qc_failed_by_log = False
    run.notes = f"{run.notes}\nfailed QC: {reason}".strip()
    _clean_save(run)
    event_emit(topic="depositions.run.failed_qc", payload={**_run_payload(run), "reason": reason})
    return run


# --- measurements ------------------------------------------------------------------------------


def _infer_run(sample: Sample, run: DepositionRun | None) -> DepositionRun | None:
    if run is not None:
        if run.project_id != sample.project_id:
            raise ValidationError({"run": "the run belongs to another project"})
        return run
    load = RunLoad.objects.select_related("run").filter(output_sample=sample).first()
    return load.run if load else None


@transaction.atomic
def thickness_measurement_add(
    *,
    sample: Sample,
    method: str,
    value_nm: Decimal,
    measured_at: datetime | None = None,
    run: DepositionRun | None = None,
    **fields: Any,
) -> ThicknessMeasurement:
    """Record a thickness; the run defaults to the one that coated the sample."""
    check_fields(ThicknessMeasurement, fields)
    row = _clean_save(
        ThicknessMeasurement(
            sample=sample,
            method=method,
            value_nm=value_nm,
            measured_at=measured_at or timezone.now(),
            run=_infer_run(sample, run),
            **fields,
        )
    )
    event_emit(
        topic="depositions.thickness.measured",
        payload={"measurement": row.pk, "sample": sample.code, "run": row.run_id},
    )
    return row


def derive_li_to_metal_ratio(fractions: dict[str, float]) -> Decimal | None:
    """Li / the one other metal in the film; None unless exactly one other metal is present."""
    if not fractions.get("Li"):
        return None
    metals = [el for el, v in fractions.items() if el not in NON_METALS and v]
    if len(metals) != 1:
        return None
    return (Decimal(str(fractions["Li"])) / Decimal(str(fractions[metals[0]]))).quantize(
        Decimal("0.0001")
    )


def _validate_fractions(fractions: Any) -> dict[str, float]:
    if not isinstance(fractions, dict) or not fractions:
        raise ValidationError({"fractions": 'give element fractions, e.g. {"Li": 0.2}'})
    clean: dict[str, float] = {}
    for element, value in fractions.items():
        if not isinstance(element, str) or not element[:1].isupper() or len(element) > 2:
            raise ValidationError({"fractions": f"{element!r} is not an element symbol"})
        if not isinstance(value, int | float | Decimal) or isinstance(value, bool) or value < 0:
            raise ValidationError({"fractions": f"{element}: a non-negative number"})
        clean[element] = float(value)
    if sum(clean.values()) > 1.01:
        raise ValidationError({"fractions": "fractions add up to more than 1 (give fractions)"})
    return clean


@transaction.atomic
def composition_measurement_add(
    *,
    sample: Sample,
    method: str,
    fractions: dict[str, float],
    measured_at: datetime | None = None,
    li_to_metal_ratio: Decimal | None = None,
    run: DepositionRun | None = None,
    **fields: Any,
) -> CompositionMeasurement:
    """Record element fractions; the Li/metal ratio is derived when one other metal is present."""
    check_fields(CompositionMeasurement, fields)
    clean = _validate_fractions(fractions)
    ratio = li_to_metal_ratio if li_to_metal_ratio is not None else derive_li_to_metal_ratio(clean)
    row = _clean_save(
        CompositionMeasurement(
            sample=sample,
            method=method,
            fractions=clean,
            li_to_metal_ratio=ratio,
            measured_at=measured_at or timezone.now(),
            run=_infer_run(sample, run),
            **fields,
        )
    )
    event_emit(
        topic="depositions.composition.measured",
        payload={"measurement": row.pk, "sample": sample.code, "run": row.run_id},
    )
    return row


PROPERTY_FIELDS = (
    "density_g_cm3",
    "refractive_index",
    "roughness_nm",
    "ionic_conductivity_s_cm",
)


@transaction.atomic
def film_property_add(
    *,
    sample: Sample,
    measured_at: datetime | None = None,
    run: DepositionRun | None = None,
    **fields: Any,
) -> FilmProperty:
    check_fields(FilmProperty, fields)
    if all(fields.get(name) is None for name in PROPERTY_FIELDS):
        raise ValidationError("give at least one property: " + ", ".join(PROPERTY_FIELDS))
    row = _clean_save(
        FilmProperty(
            sample=sample,
            measured_at=measured_at or timezone.now(),
            run=_infer_run(sample, run),
            **fields,
        )
    )
    event_emit(
        topic="depositions.film_property.measured",
        payload={"measurement": row.pk, "sample": sample.code, "run": row.run_id},
    )
    return row


# --- anneals ---------------------------------------------------------------------------------


def _segments_write(
    treatment: PostTreatment, segments: Sequence[SegmentInput], start_c: Decimal
) -> None:
    if not segments:
        raise ValidationError({"segments": "an anneal needs at least one segment"})
    rows = [
        AnnealSegment(
            treatment=treatment,
            order=i,
            kind=s.kind,
            target_c=s.target_c,
            rate_k_per_min=s.rate_k_per_min,
            duration_min=s.duration_min,
        )
        for i, s in enumerate(segments, start=1)
    ]
    for row in rows:
        row.full_clean(exclude=["treatment"])
    try:
        planned_profile(furnace_selectors.segment_specs(rows), start_c=float(start_c))
    except ValueError as exc:
        raise ValidationError({"segments": str(exc)}) from exc
    treatment.segments.all().delete()
    AnnealSegment.objects.bulk_create(rows)


def _treatment_payload(t: PostTreatment) -> dict[str, Any]:
    return {"post_treatment": t.code, "id": t.pk, "project": t.project_id, "status": t.status}


@transaction.atomic
def post_treatment_create(
    *,
    project: Project,
    code: str,
    atmosphere: str,
    segments: Sequence[SegmentInput],
    furnace: Instrument | None = None,
    **fields: Any,
) -> PostTreatment:
    check_fields(PostTreatment, fields)
    treatment = _clean_save(
        PostTreatment(project=project, code=code, atmosphere=atmosphere, furnace=furnace, **fields)
    )
    _segments_write(treatment, segments, treatment.start_temperature_c)
    event_emit(topic="depositions.post_treatment.created", payload=_treatment_payload(treatment))
    return treatment


@transaction.atomic
def post_treatment_update(
    *, treatment: PostTreatment, segments: Sequence[SegmentInput] | None = None, **fields: Any
) -> PostTreatment:
    treatment = PostTreatment.objects.select_for_update().get(pk=treatment.pk)
    if treatment.status in (TreatmentStatus.COMPLETED, TreatmentStatus.ABORTED):
        raise ValidationError(f"anneal {treatment.code} is {treatment.status}: it is history")
    for name in ("project", "code", "operation", "status"):
        fields.pop(name, None)
    assign_fields(treatment, fields)
    _clean_save(treatment)
    if segments is not None:
        _segments_write(treatment, segments, treatment.start_temperature_c)
    event_emit(topic="depositions.post_treatment.updated", payload=_treatment_payload(treatment))
    return treatment


@transaction.atomic
def post_treatment_complete(
    *,
    treatment: PostTreatment,
    inputs: Sequence[AnnealInput],
    started_at: datetime | None = None,
    ended_at: datetime | None = None,
) -> PostTreatment:
    """Anneal done: inputs are consumed and annealed samples produced, in one operation."""
    treatment = PostTreatment.objects.select_for_update().get(pk=treatment.pk)
    if treatment.status not in (TreatmentStatus.PLANNED, TreatmentStatus.RUNNING):
        raise ValidationError(f"anneal {treatment.code} is {treatment.status}")
    if not inputs:
        raise ValidationError({"inputs": "say which samples were annealed"})
    end = ended_at or timezone.now()
    pairs: list[tuple[Sample, Decimal]] = []
    specs: list[OutputSpec] = []
    for item in inputs:
        sample = item.sample
        quantity = item.quantity if item.quantity is not None else sample.remaining
        pairs.append((sample, quantity))
        specs.append(
            OutputSpec(
                code=item.output_code or _output_code(sample, treatment.code),
                kind=ANNEALED_KIND.get(sample.kind, sample.kind),
                quantity=quantity,
                state=SampleState.ANNEALED,
                fields=_output_fields(sample, f"annealed in {treatment.code}"),
            )
        )
    plan = ", ".join(str(s) for s in treatment.segments.order_by("order"))
    operation = operation_record(
        project=treatment.project,
        kind=OperationKind.ANNEAL,
        inputs=pairs,
        outputs=specs,
        label=treatment.code,
        performed_at=end,
        operator=treatment.operator,
        notes=f"{treatment.get_atmosphere_display()}: {plan}",
    )
    treatment.operation = operation
    treatment.status = TreatmentStatus.COMPLETED
    treatment.started_at = started_at or treatment.started_at
    treatment.ended_at = end
    _clean_save(treatment)
    event_emit(
        topic="depositions.post_treatment.completed",
        payload={
            **_treatment_payload(treatment),
            "operation": operation.pk,
            "outputs": [s.code for s in specs],
        },
    )
    return treatment
