"""Lineage operations keep the mass books: splits add up, nobody takes more than is left."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from samples import selectors, services
from samples.choices import OperationKind, SampleKind, SampleState
from samples.models import Sample
from samples.services import OutputSpec

D = Decimal


def spec(code: str, qty: str, kind: str = SampleKind.POWDER) -> OutputSpec:
    return OutputSpec(code=code, kind=kind, quantity=D(qty))


@pytest.mark.django_db
def test_split_debits_the_parent_and_links_aliquots(powder):
    services.sample_split(
        sample=powder, aliquots=[spec("A1", "10"), spec("A2", "9.9995")], taken=D("20")
    )
    powder.refresh_from_db()
    assert powder.remaining == D("30")
    a1 = Sample.objects.get(code="A1")
    assert a1.material == powder.material and a1.lot == powder.lot
    graph = selectors.lineage(sample=a1)
    assert {s.code for s in graph.samples.values()} == {"NMC-LOT1", "A1", "A2"}
    assert graph.depth[powder.pk] == -1


@pytest.mark.django_db
def test_split_that_does_not_add_up_is_refused(powder):
    with pytest.raises(ValidationError, match=r"add up to 19\.9 g but 20 g were taken"):
        services.sample_split(
            sample=powder, aliquots=[spec("B1", "10"), spec("B2", "9.9")], taken=D("20")
        )
    powder.refresh_from_db()
    assert powder.remaining == D("50") and not Sample.objects.filter(code="B1").exists()


@pytest.mark.django_db
def test_taking_more_than_remains_is_refused_and_nothing_changes(powder):
    with pytest.raises(ValidationError, match="cannot take 60 g from NMC-LOT1: only 50 g remain"):
        services.sample_split(sample=powder, aliquots=[spec("C1", "60")])
    powder.refresh_from_db()
    assert powder.remaining == D("50")


@pytest.mark.django_db
def test_consuming_everything_marks_the_sample_consumed(powder):
    services.sample_split(sample=powder, aliquots=[spec("D1", "50")])
    powder.refresh_from_db()
    assert powder.remaining == 0 and powder.state == SampleState.CONSUMED
    with pytest.raises(ValidationError, match="consumed"):
        services.sample_split(sample=powder, aliquots=[spec("D2", "1")])


@pytest.mark.django_db
def test_mix_records_mass_fractions_and_the_active_fraction(project, powder, lpsc):
    se = services.sample_create(
        project=project, code="LPSC-1", kind=SampleKind.POWDER, quantity=D("20"), material=lpsc
    )
    op = services.sample_mix(
        project=project,
        inputs=[(powder, D("0.7")), (se, D("0.3"))],
        output=spec("CATH-MIX-1", "1.0", SampleKind.COMPOSITE),
    )
    assert op.kind == OperationKind.MIX
    fractions = dict(op.inputs.values_list("sample__code", "mass_fraction"))
    assert fractions == {"NMC-LOT1": D("0.7"), "LPSC-1": D("0.3")}
    mix = Sample.objects.get(code="CATH-MIX-1")
    assert mix.state == SampleState.MIXED and mix.material is None
    assert selectors.composite_active_fraction(sample=mix) == D("0.7")


@pytest.mark.django_db
def test_inputs_from_another_project_are_refused(powder):
    from lims.models import Project

    other = Project.objects.create(name="Other", slug="other")
    with pytest.raises(ValidationError, match="another project"):
        services.operation_record(
            project=other, kind="anneal", inputs=[(powder, D("1"))], outputs=[spec("X1", "1")]
        )


@pytest.mark.django_db
def test_exposure_totals_per_atmosphere(powder):
    from datetime import datetime, timedelta

    t0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    services.exposure_add(
        sample=powder,
        atmosphere="glovebox_ar",
        started_at=t0,
        ended_at=t0 + timedelta(hours=3),
        h2o_ppm=D("0.1"),
        o2_ppm=D("0.2"),
    )
    services.exposure_add(
        sample=powder,
        atmosphere="air",
        started_at=t0 + timedelta(hours=3),
        ended_at=t0 + timedelta(hours=3, minutes=2),
    )
    services.exposure_add(
        sample=powder,
        atmosphere="air",
        started_at=t0 + timedelta(hours=5),
        ended_at=t0 + timedelta(hours=5, minutes=1),
    )
    totals = selectors.exposure_totals(sample=powder)
    assert totals == {"glovebox_ar": timedelta(hours=3), "air": timedelta(minutes=3)}
    with pytest.raises(ValidationError, match="end before"):
        services.exposure_add(
            sample=powder, atmosphere="air", started_at=t0, ended_at=t0 - timedelta(minutes=1)
        )


@pytest.mark.django_db
def test_lineage_walks_several_generations_in_few_queries(
    project, powder, django_assert_max_num_queries
):
    current = powder
    for i in range(6):
        services.sample_split(sample=current, aliquots=[spec(f"G{i}", str(40 - 5 * i))])
        current = Sample.objects.get(code=f"G{i}")
    with django_assert_max_num_queries(6 * 7 + 8):
        graph = selectors.lineage(sample=Sample.objects.get(code="G2"))
    assert graph.depth[powder.pk] == -3
    assert graph.depth[Sample.objects.get(code="G5").pk] == 3
    doc = graph.as_dict()
    assert {o["kind"] for o in doc["operations"]} == {"split"}
    assert len(doc["operations"]) == 6
