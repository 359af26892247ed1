"""``QuerySet.update``, ``bulk_update`` and ``bulk_create`` cannot change a logged model unseen.

Django sends no model signals on these paths; ``lims.changelog`` wraps them. Each test makes a
change through one path and finds its entry (before/after, reason, context) in the chain.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from cells.models import Cell
from lims.changelog import chain_verify, change_context
from lims.models import Instrument, ObjectChange
from samples.models import Material


def _head() -> int:
    return ObjectChange.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def _entries(model, since: int, **filters):
    ct = ContentType.objects.get_for_model(model)
    rows = ObjectChange.objects.filter(content_type=ct, seq__gt=since, **filters)
    return list(rows.order_by("seq"))


@pytest.mark.django_db
def test_queryset_update_logs_each_changed_row_with_its_reason(project):
    cells = [
        Cell.objects.create(project=project, code=f"BULK-{i}", format="coin", cell_type="full")
        for i in range(3)
    ]
    since = _head()
    with change_context("shell", reason="mass balance re-weighed"):
        count = Cell.objects.filter(code__in=["BULK-0", "BULK-1"]).update(
            active_mass_override_mg=Decimal("7.5")
        )
    assert count == 2
    rows = _entries(Cell, since, action="update")
    assert sorted(r.object_id for r in rows) == sorted(str(c.pk) for c in cells[:2])
    for row in rows:
        assert row.prechange["active_mass_override_mg"] is None
        assert row.postchange["active_mass_override_mg"] == "7.5000"
        assert row.reason == "mass balance re-weighed"
    assert chain_verify().first_break is None


@pytest.mark.django_db
def test_an_update_that_changes_nothing_writes_nothing(project):
    Cell.objects.create(project=project, code="BULK-N", format="coin", cell_type="full")
    since = _head()
    assert Cell.objects.filter(code="BULK-N").update(format="coin") == 1
    assert _entries(Cell, since) == []


@pytest.mark.django_db
def test_bulk_update_and_bulk_create_are_logged(project):
    since = _head()
    made = Material.objects.bulk_create(
        [
            Material(name="LiNbO3 test", formula="LiNbO3", material_class="other"),
            Material(name="Li3PO4 t", formula="Li3PO4", material_class="other"),
        ]
    )
    created = _entries(Material, since, action="create")
    assert sorted(r.object_id for r in created) == sorted(str(m.pk) for m in made)
    assert all(r.prechange is None and r.postchange["formula"] for r in created)

    made[0].formula = "LiNbO3-x"
    Material.objects.bulk_update(made, ["formula"])
    updated = _entries(Material, since, action="update")
    assert [r.object_id for r in updated] == [str(made[0].pk)]  # the unchanged one: no entry
    assert updated[0].prechange["formula"] == "LiNbO3"
    assert updated[0].postchange["formula"] == "LiNbO3-x"
    assert chain_verify().first_break is None


@pytest.mark.django_db
def test_a_rolled_back_update_leaves_no_entry(project):
    from django.db import transaction

    Cell.objects.create(project=project, code="BULK-R", format="coin", cell_type="full")
    since = _head()
    with pytest.raises(RuntimeError), transaction.atomic():
        Cell.objects.filter(code="BULK-R").update(notes="never")
        raise RuntimeError
    assert _entries(Cell, since) == []
    assert Cell.objects.get(code="BULK-R").notes == ""


@pytest.mark.django_db
def test_bookkeeping_fields_stay_out_of_the_log(project):
    instrument = Instrument.objects.create(name="cycler-bulk", project=project)
    since = _head()
    Instrument.objects.filter(pk=instrument.pk).update(last_file_at=timezone.now())
    instrument.refresh_from_db()
    instrument.save()
    assert _entries(Instrument, since) == []
    Instrument.objects.filter(pk=instrument.pk).update(location="glovebox 2")
    assert [r.postchange["location"] for r in _entries(Instrument, since)] == ["glovebox 2"]
