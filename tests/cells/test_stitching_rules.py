"""The pure stitching rules (cells.stitching) on hand-made summaries with known answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cells.stitching import CycleSummary, TestSummary, merge_split_cycle, stitch

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _test(key, cycles, *, start=None, first=0.0, per=100.0, q=1.0, order=None):
    rows = tuple(
        CycleSummary(n, i + 1, q, q * 0.9, first + i * per, per) for i, n in enumerate(cycles)
    )
    last = first + len(cycles) * per
    return TestSummary(key, f"t{key}", start, first, last, rows, order or key)


def test_gap_in_file_cycle_numbers_is_kept_and_noted():
    chain = stitch([_test(1, [0, 1, 2]), _test(2, [6, 7], first=300.0)])
    second = chain.members[1]
    assert (second.first_chain_cycle, second.last_chain_cycle) == (7, 8)
    assert "file cycles 3-5" in second.notes[0]


def test_dated_tests_order_by_start_not_by_arrival_and_time_is_offset():
    later = _test(1, [1, 2], start=T0 + timedelta(hours=10))
    earlier = _test(2, [1, 2, 3], start=T0)
    chain = stitch([later, earlier])
    assert [m.key for m in chain.members] == [2, 1]
    assert chain.members[1].numbering == "restart"
    assert chain.members[1].first_chain_cycle == 4
    assert chain.members[1].time_offset_s == 36000.0
    assert chain.overlaps == [] and chain.warnings == []


def test_a_different_run_with_the_same_cycle_numbers_is_no_duplicate():
    a = _test(1, [1, 2], start=T0)
    b = _test(2, [1, 2], start=T0 + timedelta(days=2))  # same values, another day
    assert stitch([a, b]).duplicates == []
    c = _test(3, [1, 2], start=T0, q=1.01)  # same start, 1 % other capacity
    assert stitch([a, c]).duplicates == []
    d = _test(4, [1, 2], start=T0, q=1.0 + 1e-5)  # an export rounding
    assert [(x.key, x.of) for x in stitch([a, d]).duplicates] == [(4, 1)]


def test_a_subset_export_is_the_duplicate_of_the_full_one():
    full = _test(1, [0, 1, 2, 3], order=2)
    part = _test(2, [1, 2], first=100.0, order=1)
    chain = stitch([full, part])
    assert [(d.key, d.of) for d in chain.duplicates] == [(2, 1)]
    assert "a subset of the cycles" in chain.duplicates[0].reason
    assert [m.key for m in chain.members] == [1]


def test_merge_split_cycle_adds_parts_and_weights_mean_voltage():
    a = {"charge_mah": 1.0, "discharge_mah": None, "mean_charge_v": 3.0, "end_charge_v": 3.5}
    b = {"charge_mah": 3.0, "discharge_mah": 2.0, "mean_charge_v": 4.0, "end_charge_v": 4.2,
         "mean_discharge_v": 3.6, "end_discharge_v": 2.5, "duration_s": 10.0}  # fmt: skip
    m = merge_split_cycle(a, b)
    assert m["charge_mah"] == 4.0 and m["discharge_mah"] == 2.0 and m["duration_s"] == 10.0
    assert m["mean_charge_v"] == (3.0 * 1.0 + 4.0 * 3.0) / 4.0
    assert m["end_charge_v"] == 4.2 and m["end_discharge_v"] == 2.5
