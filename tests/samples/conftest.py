from __future__ import annotations

from decimal import Decimal

import pytest

from samples import services
from samples.choices import MaterialClass


@pytest.fixture
def nmc(db):
    return services.material_create(
        name="NMC811", formula="LiNi0.8Mn0.1Co0.1O2", material_class=MaterialClass.CATHODE_ACTIVE
    )


@pytest.fixture
def lpsc(db):
    return services.material_create(name="Li6PS5Cl", material_class=MaterialClass.SOLID_ELECTROLYTE)


@pytest.fixture
def powder(project, nmc, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        _, sample = services.lot_receive(
            project=project,
            material=nmc,
            lot_number="L-2026-01",
            quantity=Decimal("50"),
            supplier="Targray",
            sample_code="NMC-LOT1",
        )
    return sample
