"""Test data builders shared by the deposition tests (recipes, furnace logs)."""

from __future__ import annotations

from decimal import Decimal

from depositions import services
from depositions.inputs import BlockInput, StepInput, SubCycleInput


def _binary(
    name: str, metal: str, metal_s: str, gpc: str | None, purge: str = "10"
) -> SubCycleInput:
    return SubCycleInput(
        name=name,
        gpc_angstrom=None if gpc is None else Decimal(gpc),
        steps=[
            StepInput(kind="pulse", source_label=metal, duration_s=Decimal(metal_s)),
            StepInput(kind="purge", source_label="N2", duration_s=Decimal(purge)),
            StepInput(kind="pulse", source_label="H2O", duration_s=Decimal("0.1")),
            StepInput(kind="purge", source_label="N2", duration_s=Decimal(purge)),
        ],
    )


def make_linbox(project, *, name: str = "LiNbOx", repeats: int = 5, **fields):
    """1 x (LiOtBu/H2O) + 4 x (Nb(OEt)5/H2O), repeated ``repeats`` times."""
    return services.recipe_create(
        project=project,
        name=name,
        mode="thermal",
        target_material="LiNbOx",
        deposition_temperature_c=Decimal("235"),
        supercycle_repeats=repeats,
        subcycles=[
            _binary("Li2O", "LiOtBu", "2", "0.5"),
            _binary("Nb2O5", "Nb(OEt)5", "3", "0.4"),
        ],
        blocks=[BlockInput("Li2O", 1), BlockInput("Nb2O5", 4)],
        **fields,
    )


def make_al2o3(project, *, name: str = "Al2O3", repeats: int = 100, gpc: str = "1.1", **fields):
    """TMA 0.015 s / N2 20 s / H2O 0.015 s / N2 20 s (the DOMAIN example), binary."""
    return services.recipe_create(
        project=project,
        name=name,
        deposition_temperature_c=Decimal("150"),
        supercycle_repeats=repeats,
        subcycles=[
            SubCycleInput(
                name="Al2O3",
                gpc_angstrom=Decimal(gpc),
                steps=[
                    StepInput(kind="pulse", source_label="TMA", duration_s=Decimal("0.015")),
                    StepInput(kind="purge", source_label="N2", duration_s=Decimal("20")),
                    StepInput(kind="pulse", source_label="H2O", duration_s=Decimal("0.015")),
                    StepInput(kind="purge", source_label="N2", duration_s=Decimal("20")),
                ],
            )
        ],
        blocks=[BlockInput("Al2O3", 1)],
        **fields,
    )


def furnace_csv(
    *,
    hold_s: float = 7200.0,
    offset_k: float = 0.0,
    period_s: int = 30,
    dip_at_s: float | None = None,
    dip_k: float = 0.0,
    encoding: str = "latin-1",
    sep: str = ",",
) -> bytes:
    """A log as a furnace writes it: a preamble, units in the header, degree signs."""
    ramp_s = (600 - 25) / 5 * 60  # 6900 s
    rows = ["Nabertherm P330 export", "Program: Li3PO4 600C 2h", ""]
    rows.append(sep.join(["time (s)", "Setpoint [°C]", "Temperature [°C]"]))
    end = ramp_s + hold_s + 3600
    t = 0
    while t <= end:
        if t < ramp_s:
            temp = 25 + 5 * t / 60
        elif t <= ramp_s + hold_s:
            temp = 600.0 + offset_k
        else:
            temp = max(25.0, 600 - 5 * (t - ramp_s - hold_s) / 60)
        setpoint = temp
        if dip_at_s is not None and abs(t - dip_at_s) < period_s / 2:
            temp += dip_k
        values = [str(t), f"{setpoint:.1f}", f"{temp:.1f}"]
        if sep == ";":
            values = [v.replace(".", ",") for v in values]
        rows.append(sep.join(values))
        t += period_s
    return "\n".join(rows).encode(encoding)
