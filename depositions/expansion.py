"""Recipe expansion: from sub-cycles and supercycle blocks to the planned step sequence.

Pure (no ORM): ``selectors.recipe_spec`` builds a :class:`RecipeSpec` from the models and the
run snapshot stores :meth:`RecipeSpec.to_dict`, so a run can be re-expanded years later exactly
as it was planned.

Rules:
- the sequence is: pre steps, then N times (for each block in order: ``repeat`` times the
  block's sub-cycle, each a fixed list of steps), then post steps;
- a *dose* is a step of kind pulse, fill (stop-flow) or plasma; "pulses per source" counts
  doses by ``source_label`` (purge, hold and wait steps are not doses);
- counts, durations and thicknesses are computed arithmetically (count x per-sub-cycle value),
  never by walking the sequence, so a 2000-cycle recipe costs the same as a 1-cycle one;
  :func:`iter_steps` is a generator for when the sequence itself is wanted.
Durations are floats in seconds, rounded to 1 µs in summaries.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from depositions.choices import DOSE_KINDS

_ROUND = 6


class ExpansionError(ValueError):
    """The recipe structure cannot be expanded (unknown sub-cycle, repeat < 1, ...)."""


@dataclass(frozen=True, slots=True)
class StepSpec:
    order: int
    kind: str
    source_label: str
    duration_s: float
    flow_sccm: float | None = None
    plasma_power_w: float | None = None

    @property
    def is_dose(self) -> bool:
        return self.kind in DOSE_KINDS


@dataclass(frozen=True)
class SubCycleSpec:
    name: str
    steps: tuple[StepSpec, ...]
    gpc_angstrom: float | None = None
    target_material: str = ""

    @cached_property
    def duration_s(self) -> float:
        return math.fsum(s.duration_s for s in self.steps)

    @cached_property
    def offsets_s(self) -> tuple[float, ...]:
        """Start of each step relative to the sub-cycle start (fsum: no drift)."""
        durations = [s.duration_s for s in self.steps]
        return tuple(math.fsum(durations[:i]) for i in range(len(durations)))

    @cached_property
    def doses(self) -> dict[str, int]:
        """Doses per source label in one pass of this sub-cycle."""
        out: dict[str, int] = {}
        for step in self.steps:
            if step.is_dose:
                out[step.source_label] = out.get(step.source_label, 0) + 1
        return out


@dataclass(frozen=True, slots=True)
class BlockSpec:
    subcycle: str
    repeat: int


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step of the expanded sequence. Pre/post steps have no supercycle/block/sub-cycle."""

    phase: str  # "pre" | "cycle" | "post"
    supercycle: int | None  # 0-based
    block: int | None  # 0-based position in the block list
    subcycle: str | None
    repetition: int | None  # 0-based repetition of the sub-cycle inside its block
    order: int
    kind: str
    source_label: str
    start_s: float
    duration_s: float


@dataclass(frozen=True)
class RecipeSpec:
    subcycles: tuple[SubCycleSpec, ...]
    blocks: tuple[BlockSpec, ...]
    repeats: int
    pre_steps: tuple[StepSpec, ...] = ()
    post_steps: tuple[StepSpec, ...] = ()
    _by_name: dict[str, SubCycleSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_name: dict[str, SubCycleSpec] = {}
        for sc in self.subcycles:
            if sc.name in by_name:
                raise ExpansionError(f"two sub-cycles are named {sc.name!r}")
            by_name[sc.name] = sc
        if self.repeats < 1:
            raise ExpansionError("the supercycle must repeat at least once")
        if not self.blocks:
            raise ExpansionError("a recipe needs at least one supercycle block")
        for i, block in enumerate(self.blocks):
            if block.subcycle not in by_name:
                raise ExpansionError(f"block {i + 1} names unknown sub-cycle {block.subcycle!r}")
            if block.repeat < 1:
                raise ExpansionError(f"block {i + 1} ({block.subcycle}) must repeat at least once")
        for sc in self.subcycles:
            for step in sc.steps:
                _check_step(step, where=f"sub-cycle {sc.name}")
        for step in (*self.pre_steps, *self.post_steps):
            _check_step(step, where="pre/post steps")
        object.__setattr__(self, "_by_name", by_name)

    def subcycle(self, name: str) -> SubCycleSpec:
        return self._by_name[name]

    # -- serialisation (run snapshots) -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def step(s: StepSpec) -> dict[str, Any]:
            return {
                "order": s.order,
                "kind": s.kind,
                "source_label": s.source_label,
                "duration_s": s.duration_s,
                "flow_sccm": s.flow_sccm,
                "plasma_power_w": s.plasma_power_w,
            }

        return {
            "repeats": self.repeats,
            "subcycles": [
                {
                    "name": sc.name,
                    "gpc_angstrom": sc.gpc_angstrom,
                    "target_material": sc.target_material,
                    "steps": [step(s) for s in sc.steps],
                }
                for sc in self.subcycles
            ],
            "blocks": [{"subcycle": b.subcycle, "repeat": b.repeat} for b in self.blocks],
            "pre_steps": [step(s) for s in self.pre_steps],
            "post_steps": [step(s) for s in self.post_steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RecipeSpec:
        def step(d: dict[str, Any]) -> StepSpec:
            return StepSpec(
                order=int(d["order"]),
                kind=str(d["kind"]),
                source_label=str(d.get("source_label") or ""),
                duration_s=float(d["duration_s"]),
                flow_sccm=_opt_float(d.get("flow_sccm")),
                plasma_power_w=_opt_float(d.get("plasma_power_w")),
            )

        return cls(
            subcycles=tuple(
                SubCycleSpec(
                    name=str(sc["name"]),
                    steps=tuple(step(s) for s in sc.get("steps", [])),
                    gpc_angstrom=_opt_float(sc.get("gpc_angstrom")),
                    target_material=str(sc.get("target_material") or ""),
                )
                for sc in data["subcycles"]
            ),
            blocks=tuple(
                BlockSpec(subcycle=str(b["subcycle"]), repeat=int(b["repeat"]))
                for b in data["blocks"]
            ),
            repeats=int(data["repeats"]),
            pre_steps=tuple(step(s) for s in data.get("pre_steps", [])),
            post_steps=tuple(step(s) for s in data.get("post_steps", [])),
        )


def _opt_float(value: Any) -> float | None:
    return None if value is None or value == "" else float(value)


def _check_step(step: StepSpec, *, where: str) -> None:
    if step.duration_s < 0 or not math.isfinite(step.duration_s):
        raise ExpansionError(f"{where}: step {step.order} has a negative or invalid duration")
    if step.is_dose and not step.source_label.strip():
        raise ExpansionError(f"{where}: dose step {step.order} ({step.kind}) names no source")


# --- the sequence ------------------------------------------------------------------------


def iter_steps(spec: RecipeSpec) -> Iterator[PlannedStep]:
    """The planned steps in execution order, with start offsets from the recipe start.

    Offsets are computed from per-sub-cycle sums (not accumulated step by step), so they do
    not drift over thousands of cycles.
    """
    t = 0.0
    for step in spec.pre_steps:
        yield _outside("pre", step, t)
        t += step.duration_s
    pre_s = math.fsum(s.duration_s for s in spec.pre_steps)
    block_starts: list[float] = []
    acc: list[float] = []
    for block in spec.blocks:
        block_starts.append(math.fsum(acc))
        acc.append(block.repeat * spec.subcycle(block.subcycle).duration_s)
    supercycle_s = math.fsum(acc)
    for k in range(spec.repeats):
        base_k = pre_s + k * supercycle_s
        for b, block in enumerate(spec.blocks):
            sc = spec.subcycle(block.subcycle)
            offsets = sc.offsets_s
            for r in range(block.repeat):
                base = base_k + block_starts[b] + r * sc.duration_s
                for step, offset in zip(sc.steps, offsets, strict=True):
                    yield PlannedStep(
                        phase="cycle",
                        supercycle=k,
                        block=b,
                        subcycle=sc.name,
                        repetition=r,
                        order=step.order,
                        kind=step.kind,
                        source_label=step.source_label,
                        start_s=round(base + offset, _ROUND),
                        duration_s=step.duration_s,
                    )
    t = pre_s + spec.repeats * supercycle_s
    for step in spec.post_steps:
        yield _outside("post", step, t)
        t += step.duration_s


def _outside(phase: str, step: StepSpec, start_s: float) -> PlannedStep:
    """A pre or post step: outside every supercycle."""
    return PlannedStep(
        phase=phase,
        supercycle=None,
        block=None,
        subcycle=None,
        repetition=None,
        order=step.order,
        kind=step.kind,
        source_label=step.source_label,
        start_s=round(start_s, _ROUND),
        duration_s=step.duration_s,
    )


# --- counts and totals (arithmetic, O(recipe size)) ---------------------------------------


def subcycle_counts(spec: RecipeSpec) -> dict[str, int]:
    """How many times each sub-cycle runs over the whole recipe."""
    counts: dict[str, int] = {}
    for block in spec.blocks:
        counts[block.subcycle] = counts.get(block.subcycle, 0) + block.repeat * spec.repeats
    return counts


def step_count(spec: RecipeSpec) -> int:
    per_super = sum(b.repeat * len(spec.subcycle(b.subcycle).steps) for b in spec.blocks)
    return len(spec.pre_steps) + spec.repeats * per_super + len(spec.post_steps)


def pulses_per_source(spec: RecipeSpec) -> dict[str, int]:
    """Doses per source label over the whole recipe, in order of first use."""
    out: dict[str, int] = {}

    def add(label: str, n: int) -> None:
        out[label] = out.get(label, 0) + n

    for step in spec.pre_steps:
        if step.is_dose:
            add(step.source_label, 1)
    counts = subcycle_counts(spec)
    seen: set[str] = set()
    for block in spec.blocks:  # block order gives first-use order
        if block.subcycle in seen:
            continue
        seen.add(block.subcycle)
        for label, n in spec.subcycle(block.subcycle).doses.items():
            add(label, n * counts[block.subcycle])
    for step in spec.post_steps:
        if step.is_dose:
            add(step.source_label, 1)
    return out


def supercycle_duration_s(spec: RecipeSpec) -> float:
    return math.fsum(b.repeat * spec.subcycle(b.subcycle).duration_s for b in spec.blocks)


def planned_duration_s(spec: RecipeSpec) -> float:
    """Sum of all step durations, pre and post steps included."""
    return round(
        math.fsum(
            [
                *(s.duration_s for s in spec.pre_steps),
                spec.repeats * supercycle_duration_s(spec),
                *(s.duration_s for s in spec.post_steps),
            ]
        ),
        _ROUND,
    )


@dataclass(frozen=True)
class ThicknessEstimate:
    """Expected thickness = sum over sub-cycles of count x GPC; None when a GPC is missing."""

    total_nm: float | None
    by_subcycle_nm: dict[str, float | None]
    missing_gpc: list[str]

    @property
    def known_nm(self) -> float:
        return math.fsum(v for v in self.by_subcycle_nm.values() if v is not None)


def expected_thickness(spec: RecipeSpec) -> ThicknessEstimate:
    by: dict[str, float | None] = {}
    missing: list[str] = []
    for name, count in subcycle_counts(spec).items():
        subcycle = spec.subcycle(name)
        gpc = subcycle.gpc_angstrom
        if gpc is None and not any(step.is_dose for step in subcycle.steps):
            by[name] = 0.0  # a purge/wait-only sub-cycle puts nothing down: no GPC to ask for
        elif gpc is None:
            by[name] = None
            missing.append(name)
        else:
            by[name] = round(count * gpc / 10.0, _ROUND)  # Å -> nm
    total = None if missing else round(math.fsum(v for v in by.values() if v is not None), _ROUND)
    return ThicknessEstimate(total_nm=total, by_subcycle_nm=by, missing_gpc=missing)


@dataclass(frozen=True)
class CompositionHint:
    """Sub-cycle ratio per supercycle: the first-order guide to the film's composition."""

    per_supercycle: dict[str, int]
    fractions: dict[str, float]
    text: str


def composition_hint(spec: RecipeSpec) -> CompositionHint:
    per: dict[str, int] = {}
    for block in spec.blocks:
        per[block.subcycle] = per.get(block.subcycle, 0) + block.repeat
    total = sum(per.values())
    fractions = {name: round(n / total, _ROUND) for name, n in per.items()}
    text = ":".join(per) + " = " + ":".join(str(n) for n in per.values())
    return CompositionHint(per_supercycle=per, fractions=fractions, text=text)


def summary(spec: RecipeSpec) -> dict[str, Any]:
    """What the API and run snapshots show: counts, duration, thickness, composition."""
    thickness = expected_thickness(spec)
    composition = composition_hint(spec)
    per_super_nm = (
        None if thickness.total_nm is None else round(thickness.total_nm / spec.repeats, _ROUND)
    )
    return {
        "supercycle_repeats": spec.repeats,
        "subcycle_counts": subcycle_counts(spec),
        "pulses_per_source": pulses_per_source(spec),
        "total_doses": sum(pulses_per_source(spec).values()),
        "step_count": step_count(spec),
        "supercycle_duration_s": round(supercycle_duration_s(spec), _ROUND),
        "planned_duration_s": planned_duration_s(spec),
        "expected_thickness_nm": thickness.total_nm,
        "expected_thickness_by_subcycle_nm": thickness.by_subcycle_nm,
        "expected_gpc_angstrom_per_supercycle": None
        if per_super_nm is None
        else round(per_super_nm * 10, _ROUND),
        "missing_gpc": thickness.missing_gpc,
        "composition": {
            "per_supercycle": composition.per_supercycle,
            "fractions": composition.fractions,
            "text": composition.text,
        },
    }
