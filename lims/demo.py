"""The demo data set: a realistic chain from a powder lot to cycled cells, made by services.

NMC811 lot -> split -> two ALD runs (Al2O3 x10; LiNbOx (Li2O x1 + Nb2O5 x4) x5) with witness
wafers and ellipsometry -> anneal of the LiNbOx powder at 400 degC in O2 -> composite cathodes
with Li6PS5Cl -> cells. Idempotent: it does nothing when the lot's first sample exists.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from cells import services as cells
from cells.choices import AnodeKind, CellFormat, CellType
from depositions import services as dep
from depositions.inputs import AnnealInput, BlockInput, SegmentInput, StepInput, SubCycleInput
from depositions.models import DepositionRun
from lims.models import Instrument, Project
from samples import services as smp
from samples.choices import MaterialClass, SampleKind
from samples.models import Material, Sample

D = Decimal
DEMO_CELL = "DEMO-NMC811-001"


def _material(name: str, material_class: str, formula: str = "") -> Material:
    found = Material.objects.filter(name=name).first()
    return found or smp.material_create(name=name, material_class=material_class, formula=formula)


def _binary(name: str, precursor: str, gpc: str, target: str) -> SubCycleInput:
    return SubCycleInput(
        name=name,
        gpc_angstrom=D(gpc),
        target_material=target,
        steps=[
            StepInput(kind="pulse", source_label=precursor, duration_s=D("2")),
            StepInput(kind="purge", duration_s=D("20")),
            StepInput(kind="pulse", source_label="H2O", duration_s=D("0.5")),
            StepInput(kind="purge", duration_s=D("20")),
        ],
    )


@transaction.atomic
def process_chain(*, project: Project, user: Any) -> bool:
    """Create the chain once; returns False when it was already there."""
    if Sample.objects.filter(code="NMC811-A").exists():
        if not DepositionRun.objects.filter(code=QCM_RUN).exists():  # a demo made before it
            si = _material("Si wafer", MaterialClass.SUBSTRATE, "Si")
            qcm_run(project=project, user=user, wafer_material=si)
        return False
    now = timezone.now()
    nmc = _material("NMC811", MaterialClass.CATHODE_ACTIVE, "LiNi0.8Mn0.1Co0.1O2")
    lpsc = _material("Li6PS5Cl", MaterialClass.SOLID_ELECTROLYTE, "Li6PS5Cl")
    si = _material("Si wafer", MaterialClass.SUBSTRATE, "Si")
    _, lot_sample = smp.lot_receive(
        project=project,
        material=nmc,
        lot_number="NMC-2026-031",
        quantity=D("50"),
        supplier="Targray",
        sample_code="NMC811-A",
    )
    assert lot_sample is not None
    lot_sample.bet_m2_g = D("0.45")
    lot_sample.save(update_fields=["bet_m2_g"])
    smp.sample_split(
        sample=lot_sample,
        aliquots=[
            smp.OutputSpec("NMC811-A1", SampleKind.POWDER, D("10"), fields={"bet_m2_g": D("0.45")}),
            smp.OutputSpec("NMC811-A2", SampleKind.POWDER, D("10"), fields={"bet_m2_g": D("0.45")}),
        ],
        operator=user,
    )
    for code in ("SI-W01", "SI-W02"):
        smp.sample_create(
            project=project,
            code=code,
            kind=SampleKind.WAFER,
            quantity=D("1"),
            unit="count",
            material=si,
        )
    _, se = smp.lot_receive(
        project=project,
        material=lpsc,
        lot_number="LPSC-2026-007",
        quantity=D("20"),
        supplier="NEI",
        sample_code="LPSC-01",
    )
    assert se is not None

    instrument, _ = Instrument.objects.get_or_create(
        name="FB-ALD-1",
        defaults={
            "kind": Instrument.Kind.ALD_TOOL,
            "project": project,
            "vendor": "home-built",
            "model": "fluidized bed",
        },
    )
    tool = dep.tool_create(instrument=instrument, reactor_type="fluidized_bed", chambers=1)
    for label, reactant, channel in (
        ("P1", "TMA", "do1"),
        ("P2", "H2O", "do2"),
        ("P3", "LiOtBu", "do3"),
        ("P4", "Nb(OEt)5", "do4"),
    ):
        dep.tool_source_create(
            tool=tool, label=label, reactant=reactant, delivery="vapour_draw", log_channel=channel
        )
    al2o3 = dep.recipe_create(
        project=project,
        name="Al2O3 thermal",
        target_material="Al2O3",
        subcycles=[_binary("Al2O3", "TMA", "1.1", "Al2O3")],
        blocks=[BlockInput("Al2O3", 1)],
        supercycle_repeats=10,
        deposition_temperature_c=D("150"),
        created_by=user,
    )
    linbo = dep.recipe_create(
        project=project,
        name="LiNbOx 1:4",
        target_material="LiNbOx",
        subcycles=[
            _binary("Li2O", "LiOtBu", "0.6", "Li2O"),
            _binary("Nb2O5", "Nb(OEt)5", "0.45", "Nb2O5"),
        ],
        blocks=[BlockInput("Li2O", 1), BlockInput("Nb2O5", 4)],
        supercycle_repeats=5,
        deposition_temperature_c=D("235"),
        created_by=user,
    )
    coated: dict[str, str] = {}
    for code, recipe, powder, wafer, nm in (
        ("RUN-AL-01", al2o3, "NMC811-A1", "SI-W01", "1.08"),
        ("RUN-LNO-01", linbo, "NMC811-A2", "SI-W02", "1.17"),
    ):
        run = dep.run_create(
            project=project,
            code=code,
            tool=tool,
            recipe=recipe,
            operator=user,
            started_at=now - timedelta(days=3),
        )
        dep.run_load_add(
            run=run, sample=Sample.objects.get(code=powder), mass_g=D("9.5"), bet_m2_g=D("0.45")
        )
        dep.run_load_add(
            run=run, sample=Sample.objects.get(code=wafer), role="witness", area_cm2=D("4")
        )
        run = dep.run_complete(
            run=run,
            ended_at=now - timedelta(days=3) + timedelta(hours=2),
            actual_cycles=recipe.supercycle_repeats,
        )
        for load in run.loads.select_related("output_sample", "sample"):
            assert load.output_sample is not None
            coated[load.sample.code] = load.output_sample.code
            if load.role == "witness":
                dep.thickness_measurement_add(
                    sample=load.output_sample,
                    method="ellipsometry",
                    value_nm=D(nm),
                    uncertainty_nm=D("0.1"),
                    location="wafer centre",
                )
    anneal = dep.post_treatment_create(
        project=project,
        code="ANN-400-O2-01",
        atmosphere="o2",
        operator=user,
        segments=[
            SegmentInput(kind="ramp", target_c=D("400"), rate_k_per_min=D("5")),
            SegmentInput(kind="dwell", target_c=D("400"), duration_min=D("120")),
        ],
    )
    dep.post_treatment_complete(
        treatment=anneal,
        inputs=[
            AnnealInput(
                sample=Sample.objects.get(code=coated["NMC811-A2"]),
                output_code="NMC811-A2-LNO-A400",
            )
        ],
        started_at=now - timedelta(days=2),
        ended_at=now - timedelta(days=2, hours=-3),
    )
    se.refresh_from_db()
    for cathode, powder_code in (
        ("CATH-AL-01", coated["NMC811-A1"]),
        ("CATH-LNO-01", "NMC811-A2-LNO-A400"),
    ):
        smp.sample_mix(
            project=project,
            inputs=[
                (Sample.objects.get(code=powder_code), D("0.7")),
                (Sample.objects.get(code="LPSC-01"), D("0.3")),
            ],
            output=smp.OutputSpec(cathode, SampleKind.COMPOSITE, D("1.0")),
            operator=user,
        )
    for code, cathode in ((DEMO_CELL, "CATH-LNO-01"), ("DEMO-AL-002", "CATH-AL-01")):
        _pellet_cell(project, user, code, cathode, assembled_at=now - timedelta(days=1))
    qcm_run(project=project, user=user, wafer_material=si)
    return True


def _pellet_cell(
    project: Project, user: Any, code: str, cathode: str, *, assembled_at: Any, notes: str = ""
) -> Any:
    """A bulk-type half cell as the demo builds them: 12 mg of the composite ``cathode`` on
    80 mg Li6PS5Cl, Li-In anode, 10 mm pellet pressed at 375 MPa, 50 MPa stack, 25 degC."""
    return cells.cell_create(
        project=project,
        code=code,
        format=CellFormat.BULK_PELLET,
        cell_type=CellType.CATHODE_HALF,
        cathode_active_material="NMC811",
        cathode_sample=Sample.objects.get(code=cathode),
        cathode_mass_mg=D("12.0"),
        se_material="Li6PS5Cl",
        se_mass_mg=D("80"),
        anode_kind=AnodeKind.LI_IN,
        pellet_diameter_mm=D("10"),
        fabrication_pressure_mpa=D("375"),
        stack_pressure_mpa=D("50"),
        temperature_c=D("25"),
        operator=user,
        assembled_at=assembled_at,
        notes=notes,
    )


QCM_RUN = "RUN-QCM-01"
QCM_TOOL = "ald-qcm-01"
# The LabVIEW run in tests/fixtures/ald/labview_qcm_run (SOURCES.md): push its four files with
# kind=ald_log and run=RUN-QCM-01 to see a real tool log checked against this recipe.
QCM_FILES = "tests/fixtures/ald/labview_qcm_run"


def qcm_run(*, project: Project, user: Any, wafer_material: Material) -> DepositionRun:
    """A QCM calibration run planned like the fixture LabVIEW run: 5 min purge, 50 TMA/H2O
    cycles (1 s / 20 s, 2 s / 20 s), 5 min, 10 TMA-only doses, 5 min, 20 cycles, 10 min."""
    instrument, _ = Instrument.objects.get_or_create(
        name=QCM_TOOL,
        defaults={
            "kind": Instrument.Kind.ALD_TOOL,
            "project": project,
            "vendor": "home-built (LabVIEW)",
            "model": "cross-flow with QCM",
        },
    )
    tool = dep.tool_create(instrument=instrument, reactor_type="cross_flow", chambers=1)
    # The LabVIEW program names its digital outputs, not its precursors: the ports say which.
    dep.tool_source_create(
        tool=tool, label="A1", reactant="TMA", delivery="vapour_draw", log_channel="Mod8/do1"
    )
    dep.tool_source_create(
        tool=tool, label="B1", reactant="H2O", delivery="vapour_draw", log_channel="Mod8/do2"
    )

    def purge(seconds: str) -> StepInput:
        return StepInput(kind="purge", duration_s=D(seconds))

    def pulse(label: str, seconds: str) -> StepInput:
        return StepInput(kind="pulse", duration_s=D(seconds), source_label=label)

    recipe = dep.recipe_create(
        project=project,
        name="Al2O3 QCM saturation test",
        target_material="Al2O3",
        subcycles=[
            SubCycleInput(
                "Al2O3",
                [pulse("TMA", "1"), purge("20"), pulse("H2O", "2"), purge("20")],
                gpc_angstrom=D("1.1"),
                target_material="Al2O3",
            ),
            # one precursor alone is self-limiting: no film (the QCM test of exactly that)
            SubCycleInput("TMA only", [pulse("TMA", "1"), purge("20")], gpc_angstrom=D("0")),
            SubCycleInput("long purge", [purge("300")]),
        ],
        blocks=[
            BlockInput("Al2O3", 50),
            BlockInput("long purge", 1),
            BlockInput("TMA only", 10),
            BlockInput("long purge", 1),
            BlockInput("Al2O3", 20),
        ],
        supercycle_repeats=1,
        pre_steps=[purge("300")],
        post_steps=[purge("600")],
        deposition_temperature_c=D("125"),
        created_by=user,
    )
    witness = smp.sample_create(
        project=project,
        code="SI-W03",
        kind=SampleKind.WAFER,
        material=wafer_material,
        quantity=D("1"),
        unit="count",
    )
    run = dep.run_create(project=project, code=QCM_RUN, tool=tool, recipe=recipe, operator=user)
    dep.run_load_add(run=run, sample=witness, role="witness", area_cm2=D("4"))
    return run


# -- the explorer's designed experiment ------------------------------------------------------
# LiNbOx coatings on NMC811 varied along three process axes: the Li2O : Nb2O5 sub-cycle ratio,
# the supercycle count N and the anneal temperature. Each cell gets 100 cycles of
# constant-current data from a stated fade model (below), written as a CSV and ingested through
# the real pipeline (store -> job -> parser -> summary -> records), so the explorer has a trend
# to show. The data are simulated, and the cells' notes and file names say so.

MATRIX_LOT = "NMC-2026-044"
MATRIX_RATIOS = (1, 4, 8)  # Nb2O5 sub-cycles per Li2O sub-cycle
MATRIX_SUPERCYCLES = (5, 20)
MATRIX_ANNEALS = (300, 400, 500)
FADE_MODEL = (
    "simulated: first discharge 195 - 3.5 x thickness(nm) mAh/g; fade per cycle "
    "0.0006 + 0.0035 x exp(-thickness/1.5 nm) + 0.0012 x |log2(ratio/4)| + 0.0009 x "
    "|T_anneal - 400|/100 + 0.0015 for the second Nb(OEt)5 bottle (NB-B2, as if it had "
    "hydrolysed); +-1 % seeded noise"
)
NB_BOTTLES = ("NB-B1", "NB-B2")


def _fade_capacities(
    thickness_nm: float, ratio: int, anneal_c: int, seed: int, bottle: str = ""
) -> list[float]:
    import math
    import random

    rng = random.Random(seed)
    first = 195.0 - 3.5 * thickness_nm
    fade = (
        0.0006
        + 0.0035 * math.exp(-thickness_nm / 1.5)
        + 0.0012 * abs(math.log2(ratio / 4))
        + 0.0009 * abs(anneal_c - 400) / 100
        + (0.0015 if bottle == NB_BOTTLES[1] else 0.0)
    )
    return [first * math.exp(-fade * n) * (1 + rng.uniform(-0.01, 0.01)) for n in range(100)]


def _cycling_csv(capacities_mah_g: list[float], active_g: float) -> bytes:
    """Constant-current charge/discharge, 20 points a half cycle, capacity counters per step
    (the generic ``lims_csv`` layout the parser reads)."""
    lines = ["time_s,cycle,step,current_a,voltage_v,charge_capacity_ah,discharge_capacity_ah"]
    t = 0.0
    for n, q in enumerate(capacities_mah_g, start=1):
        cap_ah = q * active_g / 1000.0
        current = cap_ah / 10.0  # C/10
        dt = 10 * 3600 / 20
        for half, sign in ((0, 1), (1, -1)):
            for k in range(1, 21):
                t += dt
                frac = k / 20
                volt = 3.6 + 0.6 * frac if sign > 0 else 4.2 - 1.2 * frac**1.5
                done = cap_ah * frac * (1.01 if sign > 0 else 1.0)
                ch, dis = (done, 0.0) if sign > 0 else (0.0, done)
                lines.append(
                    f"{t:.0f},{n},{2 * n - 1 + half},{sign * current:.6e},{volt:.4f},"
                    f"{ch:.6e},{dis:.6e}"
                )
    return ("\n".join(lines) + "\n").encode()


def explorer_matrix(*, project: Project, user: Any) -> bool:
    """Create the designed experiment once (12 coated-and-annealed cells with cycling data);
    False when it is already there."""
    import io

    from lims.ingestion import services as ingest

    if Sample.objects.filter(code="NMC811-B").exists():
        return False
    now = timezone.now()
    nmc = _material("NMC811", MaterialClass.CATHODE_ACTIVE, "LiNi0.8Mn0.1Co0.1O2")
    _, lot_sample = smp.lot_receive(
        project=project,
        material=nmc,
        lot_number=MATRIX_LOT,
        quantity=D("40"),
        supplier="Targray",
        sample_code="NMC811-B",
    )
    assert lot_sample is not None
    # run order: each bottle (swapped after the third run) sees every ratio once
    combos = [(1, 5), (4, 20), (8, 5), (1, 20), (4, 5), (8, 20)]
    smp.sample_split(
        sample=lot_sample,
        aliquots=[
            smp.OutputSpec(
                f"NMC811-B-R{r}N{n}", SampleKind.POWDER, D("3"), fields={"bet_m2_g": D("0.45")}
            )
            for r, n in combos
        ],
        operator=user,
    )
    tool = DepositionRun.objects.get(code="RUN-LNO-01").tool
    se = Sample.objects.get(code="LPSC-01")
    start = now - timedelta(days=12)
    _nb_bottles(project, tool, start - timedelta(days=1), start + timedelta(days=1))
    seed = 0
    for i, (ratio, supercycles) in enumerate(combos):
        recipe = _ratio_recipe(project, user, ratio)
        run = dep.run_create(
            project=project,
            code=f"RUN-LNO-R{ratio}N{supercycles}",
            tool=tool,
            recipe=recipe,
            operator=user,
            started_at=start + timedelta(hours=9 * i),  # the bottle is swapped after the 3rd
        )
        bottle = run.precursors.get(tool_source__label="P4").precursor_lot.bottle_label
        dep.run_load_add(
            run=run,
            sample=Sample.objects.get(code=f"NMC811-B-R{ratio}N{supercycles}"),
            mass_g=D("3"),
            bet_m2_g=D("0.45"),
        )
        run = dep.run_complete(
            run=run, ended_at=start + timedelta(hours=9 * i + 2), actual_cycles=supercycles
        )
        coated = run.loads.get().output_sample
        assert coated is not None
        thickness = (0.6 + 0.45 * ratio) / 10 * supercycles  # nm, the recipe's GPCs
        smp.sample_split(
            sample=coated,
            aliquots=[
                smp.OutputSpec(f"{coated.code}-{t}", SampleKind.POWDER, D("1"))
                for t in MATRIX_ANNEALS
            ],
            operator=user,
        )
        for anneal_c in MATRIX_ANNEALS:
            seed += 1
            code = f"R{ratio}N{supercycles}T{anneal_c}"
            treatment = dep.post_treatment_create(
                project=project,
                code=f"ANN-{code}",
                atmosphere="o2",
                operator=user,
                segments=[
                    SegmentInput(kind="ramp", target_c=D(anneal_c), rate_k_per_min=D("5")),
                    SegmentInput(kind="dwell", target_c=D(anneal_c), duration_min=D("120")),
                ],
            )
            dep.post_treatment_complete(
                treatment=treatment,
                inputs=[
                    AnnealInput(
                        sample=Sample.objects.get(code=f"{coated.code}-{anneal_c}"),
                        output_code=f"NMC-{code}",
                    )
                ],
                started_at=now - timedelta(days=5),
                ended_at=now - timedelta(days=5, hours=-3),
            )
            smp.sample_mix(
                project=project,
                inputs=[
                    (Sample.objects.get(code=f"NMC-{code}"), D("0.07")),
                    (se, D("0.03")),
                ],
                output=smp.OutputSpec(f"CATH-{code}", SampleKind.COMPOSITE, D("0.1")),
                operator=user,
            )
            cell = _pellet_cell(
                project,
                user,
                f"EXP-{code}",
                f"CATH-{code}",
                assembled_at=now - timedelta(days=4),
                notes=f"Demo cell with simulated cycling data ({FADE_MODEL}).",
            )
            active_g = float(cell.active_mass_mg or 0) / 1000
            capacities = _fade_capacities(thickness, ratio, anneal_c, seed, bottle)
            content = _cycling_csv(capacities, active_g)
            job, _ = ingest.ingest_submit(
                stream=io.BytesIO(content),
                filename=f"{cell.code}_simulated.csv",
                project=project,
                params={"cell": cell.code},
            )
            ingest.job_run(job_id=job.pk)  # here, not on a worker: the demo is ready at once
    return True


def _nb_bottles(project: Project, tool: Any, first: Any, swap: Any) -> list[Any]:
    """Two Nb(OEt)5 bottles on port P4 (the second from ``swap`` on) and one LiOtBu on P3."""
    from depositions.models import Chemical

    out = []
    for name, label, port, at in (
        ("LiOtBu", "LI-B1", "P3", first),
        ("Nb(OEt)5", NB_BOTTLES[0], "P4", first),
        ("Nb(OEt)5", NB_BOTTLES[1], "P4", swap),
    ):
        chemical = Chemical.objects.filter(name=name).first() or dep.chemical_create(
            name=name, state="liquid" if name.startswith("Nb") else "solid"
        )
        material = _material(name, MaterialClass.PRECURSOR, name)
        lot, _ = smp.lot_receive(
            project=project,
            material=material,
            lot_number=f"{label}-2026",
            quantity=D("50"),
            supplier="Strem",
        )
        bottle = dep.precursor_lot_create(material_lot=lot, chemical=chemical, bottle_label=label)
        dep.source_install(
            tool_source=tool.sources.get(label=port), precursor_lot=bottle, installed_at=at
        )
        out.append(bottle)
    return out


def _ratio_recipe(project: Project, user: Any, ratio: int) -> Any:
    from depositions.models import Recipe

    name = f"LiNbOx 1:{ratio}"
    found = Recipe.objects.filter(project=project, name=name).first()
    if found is not None:
        return found
    return dep.recipe_create(
        project=project,
        name=name,
        target_material="LiNbOx",
        subcycles=[
            _binary("Li2O", "LiOtBu", "0.6", "Li2O"),
            _binary("Nb2O5", "Nb(OEt)5", "0.45", "Nb2O5"),
        ],
        blocks=[BlockInput("Li2O", 1), BlockInput("Nb2O5", ratio)],
        supercycle_repeats=5,
        deposition_temperature_c=D("235"),
        created_by=user,
    )
