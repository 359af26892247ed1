"""Stitching: the cycling tests of one cell as one logical test (pure: no Django).

A long test comes in pieces: an export split in parts, a restart after a pause, a test
interrupted by an impedance step, or the same run exported twice (.mpr and .mpt). The rules
below act on per-test summaries only (start time, first/last time of the series, the file's
cycle numbers and per-cycle capacities), so they hold for any parser. docs/ingestion.md
("Stitched tests") states them; the service applies them and stores the outcome.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

# Two exports of one run agree to the text precision of the export (EC-Lab writes ~7
# significant digits); two different runs of a cell drift by far more than this per cycle.
DUPLICATE_REL = 1e-3
DUPLICATE_ABS_MAH = 1e-6
DUPLICATE_ABS_S = 1.0


@dataclass(frozen=True)
class CycleSummary:
    """One cycle as the test's cycle table holds it."""

    cycle_in_file: int
    cycle_index: int
    charge_mah: float | None
    discharge_mah: float | None
    start_time_s: float | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class TestSummary:
    """What stitching needs of one test. ``key`` identifies it (the test's id); ``order``
    breaks remaining ties (ingestion order)."""

    __test__ = False  # not a pytest class despite its name

    key: int
    label: str
    started_at: datetime | None
    first_time_s: float | None
    last_time_s: float | None
    cycles: tuple[CycleSummary, ...]
    order: int = 0

    @property
    def first_file_cycle(self) -> int | None:
        return self.cycles[0].cycle_in_file if self.cycles else None

    @property
    def last_file_cycle(self) -> int | None:
        return self.cycles[-1].cycle_in_file if self.cycles else None

    def absolute(self, time_s: float | None) -> float | None:
        """Seconds since the epoch of a time of the series (time_s counts from started_at)."""
        if self.started_at is None or time_s is None:
            return None
        return self.started_at.timestamp() + time_s


@dataclass(frozen=True)
class Member:
    """A test in the chain: stitched cycle = cycle_index + cycle_offset; stitched time =
    the series' time_s + time_offset_s (0 at the chain's first row)."""

    key: int
    position: int
    cycle_offset: int
    time_offset_s: float | None
    numbering: str  # "first", "continues the file's cycle numbers", "restart"
    first_chain_cycle: int | None
    last_chain_cycle: int | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Duplicate:
    key: int
    of: int
    reason: str


@dataclass(frozen=True)
class Overlap:
    key: int
    previous: int
    seconds: float


@dataclass
class Chain:
    members: list[Member] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _close(a: float | None, b: float | None, rel: float, abs_: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def _same_cycle(a: CycleSummary, b: CycleSummary) -> bool:
    return (
        a.cycle_in_file == b.cycle_in_file
        and _close(a.charge_mah, b.charge_mah, DUPLICATE_REL, DUPLICATE_ABS_MAH)
        and _close(a.discharge_mah, b.discharge_mah, DUPLICATE_REL, DUPLICATE_ABS_MAH)
        and _close(a.start_time_s, b.start_time_s, 1e-6, DUPLICATE_ABS_S)
        and _close(a.duration_s, b.duration_s, 1e-6, DUPLICATE_ABS_S)
    )


def contained_in(small: TestSummary, big: TestSummary) -> bool:
    """Every cycle of ``small`` is in ``big`` with the same file cycle number, capacities,
    start time and duration (within the export precision), and the runs do not start at
    different moments: the same cycles exported twice."""
    if not small.cycles or not any(
        (c.charge_mah or 0) > 0 or (c.discharge_mah or 0) > 0 for c in small.cycles
    ):
        return False  # an empty or capacity-less table proves nothing
    both_dated = small.started_at is not None and big.started_at is not None
    if both_dated and abs((small.started_at - big.started_at).total_seconds()) > DUPLICATE_ABS_S:  # type: ignore[operator]
        return False
    by_number = {c.cycle_in_file: c for c in big.cycles}
    return all(
        (other := by_number.get(c.cycle_in_file)) is not None and _same_cycle(c, other)
        for c in small.cycles
    )


def find_duplicates(tests: Sequence[TestSummary]) -> list[Duplicate]:
    """Tests whose cycles another test already holds. Of two, the one with fewer cycles is
    the duplicate; at equal size the dated one is kept, then the one ingested first."""
    ranked = sorted(tests, key=lambda t: (-len(t.cycles), t.started_at is None, t.order, t.key))
    kept: list[TestSummary] = []
    out: list[Duplicate] = []
    for test in ranked:
        original = next((k for k in kept if contained_in(test, k)), None)
        if original is None:
            kept.append(test)
            continue
        same = len(test.cycles) == len(original.cycles)
        what = f"the same {len(test.cycles)} cycles as" if same else "a subset of the cycles of"
        out.append(
            Duplicate(
                test.key,
                original.key,
                f"{test.label}: {what} {original.label} (file cycles {test.first_file_cycle}-"
                f"{test.last_file_cycle}, capacities within {DUPLICATE_REL:.1%}, times within "
                f"{DUPLICATE_ABS_S:g} s); left out of the stitched test",
            )
        )
    return out


def order_tests(tests: Sequence[TestSummary]) -> tuple[list[TestSummary], list[str]]:
    """Dated tests by the moment of their first row (start time + first time of the series),
    then by the file's first cycle; tests without a start time after them (with a warning),
    by their first file cycle and first time (a split export keeps both running)."""
    dated = [t for t in tests if t.started_at is not None]
    undated = [t for t in tests if t.started_at is None]

    def moment(t: TestSummary) -> float:
        value = t.absolute(t.first_time_s or 0.0)
        return value if value is not None else math.inf

    dated.sort(key=lambda t: (moment(t), t.first_file_cycle or 0, t.order, t.key))
    undated.sort(
        key=lambda t: (
            t.first_file_cycle if t.first_file_cycle is not None else math.inf,
            t.first_time_s if t.first_time_s is not None else math.inf,
            t.order,
            t.key,
        )
    )
    warnings = [
        f"{t.label}: no start time in the file or the upload's metadata; placed after the "
        "dated tests by its first file cycle and first time"
        for t in undated
    ]
    return dated + undated, warnings


def stitch(tests: Sequence[TestSummary]) -> Chain:
    """The chain of a cell's attached tests: duplicates named and left out, the rest ordered,
    numbered continuously in cycles and time, overlaps reported."""
    chain = Chain()
    chain.duplicates = find_duplicates(tests)
    dropped = {d.key for d in chain.duplicates}
    ordered, chain.warnings = order_tests([t for t in tests if t.key not in dropped])
    prev: TestSummary | None = None
    prev_member: Member | None = None
    origin: TestSummary | None = None  # the chain's first test: time 0 is its first row
    for position, test in enumerate(ordered, start=1):
        notes: list[str] = []
        if not test.cycles:
            notes.append("no cycles")
        # -- cycles ---------------------------------------------------------------------
        if prev is None or prev_member is None:
            offset, numbering = 0, "first"
        else:
            last_chain = prev_member.last_chain_cycle or 0
            first, last_prev = test.first_file_cycle, prev.last_file_cycle
            if first is not None and last_prev is not None and first >= last_prev:
                # the file's numbers go on from the previous file's: keep them (a gap stays)
                offset = last_chain + first - last_prev - 1
                numbering = "continues the file's cycle numbers"
                if first == last_prev:
                    notes.append(
                        f"file cycle {first} is split between {prev.label} and {test.label}; "
                        "its two parts are added into one stitched cycle"
                    )
                elif first > last_prev + 1:
                    notes.append(
                        f"file cycles {last_prev + 1}-{first - 1} are in no file of the chain"
                    )
            else:
                offset, numbering = last_chain, "restart"
        first_chain = test.cycles[0].cycle_index + offset if test.cycles else None
        last_chain_cycle = test.cycles[-1].cycle_index + offset if test.cycles else None
        if first_chain is None and prev_member is not None:
            last_chain_cycle = prev_member.last_chain_cycle
        # -- time -----------------------------------------------------------------------
        time_offset: float | None
        if origin is None:
            origin = test
            time_offset = -(test.first_time_s or 0.0)
        elif test.started_at is not None and origin.started_at is not None:
            origin_at = origin.absolute(origin.first_time_s or 0.0)
            assert origin_at is not None
            time_offset = test.started_at.timestamp() - origin_at
        elif prev is not None and prev_member is not None:
            prev_end = _chain_end(prev, prev_member)
            same_clock = (
                test.first_time_s is not None
                and prev.last_time_s is not None
                and test.first_time_s >= prev.last_time_s
                and prev_member.time_offset_s is not None
            )
            if same_clock:
                time_offset = prev_member.time_offset_s
                notes.append("no start time: its time column taken to go on from the previous")
            elif prev_end is not None:
                time_offset = prev_end - (test.first_time_s or 0.0)
                notes.append("no start time: appended right after the previous test (gap unknown)")
            else:
                time_offset = None
        else:
            time_offset = None
        # -- overlaps -------------------------------------------------------------------
        if prev is not None:
            prev_end_abs = prev.absolute(prev.last_time_s)
            start_abs = test.absolute(test.first_time_s)
            if prev_end_abs is not None and start_abs is not None and start_abs < prev_end_abs:
                seconds = prev_end_abs - start_abs
                chain.overlaps.append(Overlap(test.key, prev.key, seconds))
                notes.append(
                    f"starts {seconds:.0f} s before {prev.label} ends: the time ranges overlap"
                )
        member = Member(
            test.key,
            position,
            offset,
            time_offset,
            numbering,
            first_chain,
            last_chain_cycle,
            tuple(notes),
        )
        chain.members.append(member)
        prev, prev_member = test, member
    return chain


def _chain_end(test: TestSummary, member: Member) -> float | None:
    if test.last_time_s is None or member.time_offset_s is None:
        return None
    return test.last_time_s + member.time_offset_s


def merge_split_cycle(a: dict[str, float | None], b: dict[str, float | None]) -> dict:
    """One cycle recorded in two files (a split inside the cycle): charges, energies and
    durations add; the end voltages are the later part's; mean voltages are charge-weighted."""

    def add(key: str) -> float | None:
        x, y = a.get(key), b.get(key)
        return None if x is None and y is None else (x or 0.0) + (y or 0.0)

    out: dict[str, float | None] = dict(a)
    for key in ("charge_mah", "discharge_mah", "charge_wh", "discharge_wh", "duration_s"):
        out[key] = add(key)
    for side in ("charge", "discharge"):
        qa, qb = a.get(f"{side}_mah") or 0.0, b.get(f"{side}_mah") or 0.0
        va, vb = a.get(f"mean_{side}_v"), b.get(f"mean_{side}_v")
        if qa + qb > 0:
            out[f"mean_{side}_v"] = ((va or 0.0) * qa + (vb or 0.0) * qb) / (qa + qb)
        end = b.get(f"end_{side}_v")
        out[f"end_{side}_v"] = end if end is not None else a.get(f"end_{side}_v")
    return out
