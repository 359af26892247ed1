"""The change log is a hash chain: a change made behind the application's back is found."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction

from cells import services
from cells.models import Cell
from lims.changelog import GENESIS_HASH, _record, chain_verify, change_context
from lims.models import ObjectChange


def _cells(project, n: int, prefix: str = "AUD") -> list[Cell]:
    with change_context("web", request_id="req-audit", reason="setting up"):
        return [
            services.cell_create(
                project=project, code=f"{prefix}-{i}", format="coin", cell_type="full"
            )
            for i in range(n)
        ]


def _concurrently(n: int, work) -> list[BaseException]:
    """``work(k)`` in ``n`` threads started together, each on its own connection; the errors."""
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run(k: int) -> None:
        try:
            start.wait()
            work(k)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def _sql(statement: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@pytest.mark.django_db
def test_entries_link_to_the_previous_one_and_the_chain_verifies(project):
    _cells(project, 3)
    rows = list(ObjectChange.objects.order_by("seq"))
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    report = chain_verify()
    assert report.first_break is None
    assert (report.entries, report.head_seq, report.head_hash) == (
        len(rows),
        rows[-1].seq,
        rows[-1].hash,
    )


@pytest.mark.django_db
def test_values_hash_as_the_json_column_gives_them_back(project):
    """Decimals, datetimes, tiny and huge floats: jsonb prints 1e16 as an integer."""
    (cell,) = _cells(project, 1)
    odd = {
        "big": 1e16,
        "tiny": 1e-20,
        "third": 1 / 3,
        "mass": Decimal("7.0000"),
        "at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "nested": [{"x": 2.0}, "é\u2603"],
    }
    with transaction.atomic():
        _record(cell, "update", odd, {**odd, "big": 2e300})
    assert chain_verify().first_break is None


@pytest.mark.django_db
def test_a_row_edited_with_raw_sql_is_named(project):
    _cells(project, 4)
    target = ObjectChange.objects.order_by("seq")[2]
    _sql(
        "UPDATE lims_objectchange SET postchange = jsonb_set(postchange, '{code}', '\"X\"') "
        "WHERE id = %s",
        [target.pk],
    )
    brk = chain_verify().first_break
    assert brk is not None and (brk.kind, brk.seq, brk.entry_id) == ("edited", 3, target.pk)
    with pytest.raises(CommandError, match=r"entry seq 3 \(id \d+\) edited"):
        call_command("verify_audit")


@pytest.mark.django_db
def test_an_edit_that_also_rewrites_the_hash_breaks_the_next_link(project):
    _cells(project, 4)
    target = ObjectChange.objects.order_by("seq")[1]
    _sql(
        "UPDATE lims_objectchange SET reason = 'forged', hash = %s WHERE id = %s",
        ["f" * 64, target.pk],
    )
    brk = chain_verify().first_break
    assert brk is not None and (brk.kind, brk.seq) == ("edited", 2)


@pytest.mark.django_db
def test_a_deleted_row_is_named(project):
    _cells(project, 4)
    target = ObjectChange.objects.order_by("seq")[1]
    _sql("DELETE FROM lims_objectchange WHERE id = %s", [target.pk])
    brk = chain_verify().first_break
    assert brk is not None and (brk.kind, brk.seq) == ("deleted", 3)
    assert "after seq 1" in brk.detail


@pytest.mark.django_db
def test_a_deleted_row_with_the_rest_renumbered_is_named(project):
    _cells(project, 4)
    _sql("DELETE FROM lims_objectchange WHERE seq = 2", [])
    _sql("UPDATE lims_objectchange SET seq = -seq WHERE seq > 2", [])
    _sql("UPDATE lims_objectchange SET seq = -seq - 1 WHERE seq < 0", [])
    brk = chain_verify().first_break
    assert brk is not None and (brk.kind, brk.seq) == ("deleted", 2)


@pytest.mark.django_db
def test_two_swapped_rows_are_named(project):
    _cells(project, 4)
    _sql("UPDATE lims_objectchange SET seq = -1 WHERE seq = 2", [])
    _sql("UPDATE lims_objectchange SET seq = 2 WHERE seq = 3", [])
    _sql("UPDATE lims_objectchange SET seq = 3 WHERE seq = -1", [])
    brk = chain_verify().first_break
    assert brk is not None and (brk.kind, brk.seq) == ("reordered", 2)
    assert "seq 3, which comes later" in brk.detail


@pytest.mark.django_db
def test_a_rolled_back_change_leaves_no_entry_and_no_gap(project):
    _cells(project, 1)
    before = ObjectChange.objects.count()
    with pytest.raises(RuntimeError), transaction.atomic():
        _cells(project, 2, prefix="GONE")
        raise RuntimeError("abandon")
    assert ObjectChange.objects.count() == before
    _cells(project, 1, prefix="AFTER")
    assert chain_verify().first_break is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_do_not_fork_the_chain(project):
    """Eight threads, each on its own connection, create cells at once: without the append
    lock two of them read the same head and the unique ``seq`` refuses one (or the chain forks)."""

    def writer(k: int) -> None:
        for i in range(5):
            with transaction.atomic():
                _cells(project, 1, prefix=f"T{k}-{i}")

    assert _concurrently(8, writer) == []
    report = chain_verify()
    assert report.first_break is None
    assert report.entries == ObjectChange.objects.count() >= 40


@pytest.mark.django_db
def test_an_entry_moved_later_is_named_as_reordered(project):
    _cells(project, 5)
    # entry 2 moved to the end: 3, 4, 5 move up one place
    _sql("UPDATE lims_objectchange SET seq = -1 WHERE seq = 2", [])
    for seq in (3, 4, 5):
        _sql("UPDATE lims_objectchange SET seq = %s WHERE seq = %s", [seq - 1, seq])
    _sql("UPDATE lims_objectchange SET seq = 5 WHERE seq = -1", [])
    brk = chain_verify().first_break
    assert brk is not None and (brk.kind, brk.seq) == ("reordered", 2)


@pytest.mark.django_db
def test_an_entry_copied_in_again_is_named(project):
    _cells(project, 5)
    _sql("UPDATE lims_objectchange SET seq = -seq - 1 WHERE seq > 3", [])
    _sql("UPDATE lims_objectchange SET seq = -seq WHERE seq < 0", [])
    columns = (
        "time, user_id, user_name, instrument_name, context, request_id, action, "
        "content_type_id, object_id, object_repr, prechange, postchange, reason, prev_hash, hash"
    )
    _sql(
        f"INSERT INTO lims_objectchange (seq, {columns}) "
        f"SELECT 4, {columns} FROM lims_objectchange WHERE seq = 2",
        [],
    )
    brk = chain_verify().first_break
    assert brk is not None and (brk.kind, brk.seq) == ("reordered", 4)
    assert "it follows entry seq 1, not seq 3" in brk.detail


@pytest.mark.django_db
def test_entries_made_at_the_end_keep_order_and_leave_out_what_a_savepoint_undid(project):
    """``atomic_chain_at_end``: the block's entries join the chain when it ends, in the order
    they were made; a write undone by a rolled-back savepoint leaves no entry; an exception
    leaves none at all; the chain verifies."""
    from lims.changelog import atomic_chain_at_end

    before = ObjectChange.objects.count()
    with atomic_chain_at_end():
        kept = _cells(project, 1, prefix="END-A")[0]
        assert ObjectChange.objects.count() == before  # not yet: at the end
        try:
            with transaction.atomic():
                _cells(project, 1, prefix="END-UNDONE")
                raise RuntimeError("undo this savepoint")
        except RuntimeError:
            pass
        with atomic_chain_at_end():  # nested: the outer block appends
            _cells(project, 1, prefix="END-B")
    rows = list(ObjectChange.objects.filter(seq__gt=before).order_by("seq"))
    assert [r.object_repr for r in rows] == [kept.code, "END-B-0"]
    assert not Cell.objects.filter(code="END-UNDONE-0").exists()

    with pytest.raises(RuntimeError), atomic_chain_at_end():
        _cells(project, 1, prefix="END-FAILED")
        raise RuntimeError("the whole block")
    assert ObjectChange.objects.count() == before + 2
    assert chain_verify().first_break is None


@pytest.mark.django_db(transaction=True)
def test_concurrent_blocks_appending_at_the_end_do_not_fork_the_chain(project):
    from lims.changelog import atomic_chain_at_end

    def writer(k: int) -> None:
        for i in range(4):
            with atomic_chain_at_end():
                _cells(project, 2, prefix=f"E{k}-{i}")

    assert _concurrently(6, writer) == []
    report = chain_verify()
    assert report.first_break is None
    assert report.entries == ObjectChange.objects.count() >= 48
