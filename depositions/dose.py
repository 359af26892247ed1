"""Powder dose check: is each dose big enough to saturate the powder bed's surface?

Pure (no ORM). Under-dosing a powder bed is the classic failure of powder ALD: the surface to
cover is mass x BET (m²), thousands of times a wafer's. The estimate, its assumptions stated:

- required molecules per dose = surface area (m²) x site density. Default site density:
  5e18 /m² (5 per nm²). Saturated TMA/H2O Al2O3 deposits ~4 Al/nm² per cycle (1.1 Å/cycle at
  ~3.0 g/cm³ film density); hydroxylated oxide surfaces carry ~4-9 OH/nm² (Puurunen, J. Appl.
  Phys. 97, 121301 (2005)). Bulky precursors (LiOtBu, Nb(OEt)5) cover more area per molecule,
  so 5/nm² over-estimates their need: the check errs towards "short";
- one dose of a source must cover the whole bed (all product powder loads share the reactor);
  several doses of the same source in one sub-cycle (multi-pulse) add up;
- delivered dose per pulse comes from the port calibration ``ToolSource.dose_umol_per_pulse``
  (e.g. bottle mass loss / pulses counted). Unknown calibration -> "unknown", never a guess;
- a dose is "short" when delivered < required x safety factor (default 2: incomplete precursor
  utilisation in a bed, channelling, reaction by-products occupying sites);
- plasma doses (radicals) are not estimated: "unknown";
- flat witness substrates are left out: a 100 mm wafer adds 0.008 m² per side, negligible next
  to grams of powder at 0.1-10 m²/g.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from depositions.choices import StepKind
from depositions.expansion import RecipeSpec, subcycle_counts

AVOGADRO = 6.02214076e23
DEFAULT_SITE_DENSITY_PER_M2 = 5e18
DEFAULT_SAFETY_FACTOR = 2.0

OK, SHORT, UNKNOWN = "ok", "short", "unknown"


@dataclass(frozen=True)
class LoadArea:
    """A product powder load: what it brings to the bed's surface area."""

    label: str
    mass_g: float | None
    bet_m2_g: float | None

    @property
    def area_m2(self) -> float | None:
        if self.mass_g is None or self.bet_m2_g is None:
            return None
        return self.mass_g * self.bet_m2_g


@dataclass(frozen=True)
class DoseLine:
    subcycle: str | None  # None for pre/post steps
    source_label: str
    doses_per_subcycle: int
    delivered_umol: float | None
    required_umol: float | None
    ratio: float | None  # delivered / required (before the safety factor)
    status: str
    reason: str


@dataclass(frozen=True)
class DoseReport:
    status: str
    total_area_m2: float | None
    loads: list[dict[str, Any]]
    required_umol_per_dose: float | None
    site_density_per_m2: float
    safety_factor: float
    lines: list[DoseLine]
    consumption_umol: dict[str, float | None]
    assumptions: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def required_umol(*, area_m2: float, site_density_per_m2: float) -> float:
    """Molecules to saturate ``area_m2`` once, in µmol."""
    return area_m2 * site_density_per_m2 / AVOGADRO * 1e6


def dose_check(
    *,
    spec: RecipeSpec,
    loads: list[LoadArea],
    dose_umol_per_pulse: dict[str, float | None],
    site_density_per_m2: float = DEFAULT_SITE_DENSITY_PER_M2,
    safety_factor: float = DEFAULT_SAFETY_FACTOR,
) -> DoseReport:
    """Check every (sub-cycle, source) dose of ``spec`` against the bed's surface area.

    ``dose_umol_per_pulse`` maps a recipe source label to the port's calibrated dose (None or
    missing = unknown).
    """
    if site_density_per_m2 <= 0 or safety_factor <= 0:
        raise ValueError("site density and safety factor must be positive")
    areas = [a.area_m2 for a in loads]
    load_rows = [
        {"label": a.label, "mass_g": a.mass_g, "bet_m2_g": a.bet_m2_g, "area_m2": a.area_m2}
        for a in loads
    ]
    if not loads:
        total_area, area_reason = None, "no product powder load in the run"
    elif any(a is None for a in areas):
        missing = ", ".join(a.label for a in loads if a.area_m2 is None)
        total_area, area_reason = None, f"mass or BET unknown for {missing}"
    else:
        total_area, area_reason = sum(a for a in areas if a is not None), ""
    need = (
        None
        if total_area is None
        else required_umol(area_m2=total_area, site_density_per_m2=site_density_per_m2)
    )

    lines: list[DoseLine] = []
    groups: list[tuple[str | None, dict[str, int], dict[str, bool]]] = []
    used = subcycle_counts(spec)
    for sc in spec.subcycles:
        if sc.name in used:
            groups.append((sc.name, sc.doses, _plasma_labels(sc.steps)))
    for steps in (spec.pre_steps, spec.post_steps):
        counts: dict[str, int] = {}
        for s in steps:
            if s.is_dose:
                counts[s.source_label] = counts.get(s.source_label, 0) + 1
        if counts:
            groups.append((None, counts, _plasma_labels(steps)))
    for subcycle, doses, plasma in groups:
        for label, n in doses.items():
            per_pulse = dose_umol_per_pulse.get(label)
            delivered = None if per_pulse is None else per_pulse * n
            if plasma.get(label):
                status, reason, ratio = UNKNOWN, "plasma dose: radical flux is not estimated", None
            elif need is None:
                status, reason, ratio = UNKNOWN, area_reason, None
            elif delivered is None:
                status, reason, ratio = UNKNOWN, f"no dose calibration for {label}", None
            else:
                ratio = delivered / need if need > 0 else None
                if delivered < need * safety_factor:
                    status = SHORT
                    reason = (
                        f"{delivered:.4g} µmol per sub-cycle < {need:.4g} µmol x "
                        f"{safety_factor:g} needed for {total_area:.4g} m²"
                    )
                else:
                    status, reason = OK, ""
            lines.append(
                DoseLine(
                    subcycle=subcycle,
                    source_label=label,
                    doses_per_subcycle=n,
                    delivered_umol=delivered,
                    required_umol=need,
                    ratio=ratio,
                    status=status,
                    reason=reason,
                )
            )

    statuses = {line.status for line in lines}
    overall = SHORT if SHORT in statuses else UNKNOWN if (UNKNOWN in statuses or not lines) else OK
    return DoseReport(
        status=overall,
        total_area_m2=total_area,
        loads=load_rows,
        required_umol_per_dose=need,
        site_density_per_m2=site_density_per_m2,
        safety_factor=safety_factor,
        lines=lines,
        consumption_umol=_consumption(spec, dose_umol_per_pulse),
        assumptions=[
            f"site density {site_density_per_m2:g} /m² (one molecule per site per dose)",
            f"short when delivered < required x {safety_factor:g}",
            "area = sum over product powder loads of mass x BET; witness wafers ignored",
            "delivered = port calibration (µmol/pulse) x doses of that source per sub-cycle",
        ],
    )


def _plasma_labels(steps: Any) -> dict[str, bool]:
    return {s.source_label: True for s in steps if s.kind == StepKind.PLASMA}


def _consumption(spec: RecipeSpec, per_pulse: dict[str, float | None]) -> dict[str, float | None]:
    """Total µmol a run draws from each source (pulses x calibration); None when unknown."""
    totals: dict[str, float | None] = {}
    counts = subcycle_counts(spec)
    pulses: dict[str, int] = {}
    for sc in spec.subcycles:
        for label, n in sc.doses.items():
            pulses[label] = pulses.get(label, 0) + n * counts.get(sc.name, 0)
    for s in (*spec.pre_steps, *spec.post_steps):
        if s.is_dose:
            pulses[s.source_label] = pulses.get(s.source_label, 0) + 1
    for label, n in pulses.items():
        dose = per_pulse.get(label)
        totals[label] = None if dose is None else round(dose * n, 6)
    return totals
