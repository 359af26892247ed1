"""Deposition fixtures: a tool with two calibrated ports, a TMA bottle, a powder, a wafer."""

from __future__ import annotations

from decimal import Decimal

import pytest

from depositions import services


@pytest.fixture
def ald_tool(project):
    from lims.models import Instrument

    instrument = Instrument.objects.create(
        name="Picosun R-200 (powder)", kind=Instrument.Kind.ALD_TOOL, project=project
    )
    tool = services.tool_create(instrument=instrument, reactor_type="fluidized_bed", chambers=1)
    services.tool_source_create(
        tool=tool,
        label="P1",
        reactant="TMA",
        delivery="vapour_draw",
        log_channel="Valve 1",
        dose_umol_per_pulse=Decimal("20"),
    )
    services.tool_source_create(
        tool=tool,
        label="P2",
        reactant="H2O",
        delivery="vapour_draw",
        log_channel="Valve 2",
        dose_umol_per_pulse=Decimal("500"),
    )
    return tool


@pytest.fixture
def tma(db):
    return services.chemical_create(
        name="trimethylaluminum",
        formula="Al(CH3)3",
        synonyms=["TMA", "trimethylaluminium"],
        cas_number="75-24-1",
        molar_mass_g_mol=Decimal("72.09"),
        state="liquid",
        hazards="pyrophoric; reacts violently with water",
    )


@pytest.fixture
def tma_bottle(project, tma):
    from samples import services as sample_services

    material = sample_services.material_create(name="TMA", material_class="precursor")
    lot, _ = sample_services.lot_receive(
        project=project,
        material=material,
        lot_number="TMA-2026-01",
        quantity=Decimal("50"),
        supplier="Strem",
    )
    return services.precursor_lot_create(material_lot=lot, chemical=tma, bottle_label="B-017")


@pytest.fixture
def nmc(project):
    from samples import services as sample_services

    material = sample_services.material_create(name="NMC811", material_class="cathode_active")
    return sample_services.sample_create(
        project=project,
        code="NMC-001",
        kind="powder",
        quantity=Decimal("10"),
        material=material,
        bet_m2_g=Decimal("0.5"),
    )


@pytest.fixture
def wafer(project):
    from samples import services as sample_services

    material = sample_services.material_create(name="Si wafer", material_class="substrate")
    return sample_services.sample_create(
        project=project,
        code="W-001",
        kind="wafer",
        quantity=Decimal("1"),
        unit="count",
        material=material,
        area_cm2=Decimal("4"),
    )
