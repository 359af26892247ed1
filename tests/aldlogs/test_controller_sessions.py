"""A controller log appended session after session: recognised, split, each session judged.

The fixture opens with the recipe printed as a numpy array over 64 continuation lines and holds
four sessions (tests/fixtures/SOURCES.md): fail (dead valve 2), no pressure data, fail and
incomplete (3 of 50 loops), pass. Everything goes through the registered parser.
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from depositions.aldlogs.checks import NO_DATA, run_checks
from depositions.aldlogs.parsers.types import AldLog
from depositions.aldlogs.pulses import detect_pulses
from lims.ingestion.parsing import SNIFF_BYTES
from lims.ingestion.registry import detect_parser, get_parser
from tests.aldlogs.conftest import CONTROLLER, EVENTLOG, ctx_for

SESSIONS = CONTROLLER / "synthetic_controller_eventlog_sessions.log"
EXPECTED = [
    # (start, pulses per valve, dead per valve, verdict, failing checks)
    ("2025-06-02T08:41:05", {"valve 2": 20, "valve 3": 20}, {"valve 2": 20}, "fail",
     {"dead_pulses:valve 2"}),
    ("2025-06-03T04:47:54", {"valve 2": 2, "valve 3": 1}, {}, NO_DATA, set()),
    ("2025-06-03T09:48:06", {"valve 2": 3, "valve 3": 3}, {"valve 2": 3}, "fail",
     {"dead_pulses:valve 2", "run_completeness"}),
    ("2025-06-03T09:59:10", {"valve 2": 12, "valve 3": 12}, {}, "pass", set()),
]  # fmt: skip


@pytest.fixture(scope="module")
def sessions_log() -> AldLog:
    parser = get_parser("controller_eventlog")
    log = parser.parse(SESSIONS, ctx_for(SESSIONS))
    assert isinstance(log, AldLog)
    return log


@pytest.mark.parametrize("name", ["original", "upload.bin", "export.csv"])
def test_recognised_although_it_opens_with_a_printed_array(name: str) -> None:
    head = SESSIONS.read_bytes()[:SNIFF_BYTES]
    assert head.splitlines()[1].startswith(b"06/02/2025")  # then 64 lines without a stamp
    parser = detect_parser(head, SESSIONS.name if name == "original" else name, kind="ald_log")
    assert parser is not None and parser.name == "controller_eventlog"


def test_a_printed_array_longer_than_any_line_window_is_still_recognised() -> None:
    lines = EVENTLOG.read_text(encoding="ascii").splitlines()
    dump = [f"{lines[0][:23]}INFO     here is the recipe file numpy array [[-1. 1. 0.1]"]
    dump += [f" [-1.  -1.  {k}.]" for k in range(1500)]  # ~25 KB of continuation lines
    head = "\n".join([lines[0], *dump, *lines[1:]]).encode("ascii")[:SNIFF_BYTES]
    parser = get_parser("controller_eventlog")
    assert parser.sniff(head, "x.log") > 0.9


def test_text_with_a_few_log_lines_deep_inside_is_not_a_controller_log() -> None:
    lines = EVENTLOG.read_text(encoding="ascii").splitlines()
    prose = [f"Lab notebook line {k}: nothing to see" for k in range(20)]
    head = "\n".join([*prose, *lines[:30]]).encode("ascii")
    assert get_parser("controller_eventlog").sniff(head, "notes.txt") == 0.0
    # stamped lines among more free text than entries: not a log either
    mixed = [x for pair in zip(lines[:10], prose[:10] * 2, strict=False) for x in pair]
    head = "\n".join([lines[0], *mixed, *prose]).encode("ascii")
    assert get_parser("controller_eventlog").sniff(head, "notes.txt") == 0.0


def test_split_into_one_segment_per_session(sessions_log: AldLog) -> None:
    segments = sessions_log.segments
    assert [s.index for s in segments] == [0, 1, 2, 3]
    assert [s.start_time for s in segments] == [e[0] for e in EXPECTED]
    # each segment ends at its own last entry, before the next one starts
    assert segments[0].end_time is not None and segments[0].end_time.startswith(
        "2025-06-02T08:47:54"
    )
    for a, b in itertools.pairwise(segments):
        assert a.end_time is not None and b.start_time is not None
        assert a.end_time < b.start_time
    # each session is on its own time axis and keeps its own recipe and loop count
    for seg in segments:
        assert seg.log.series.height == 0 or seg.log.series["time_s"][0] >= 0
        assert seg.log.start_time == seg.start_time
    assert [s.log.metadata["run_info"]["loops_requested"] for s in segments] == [20, None, 50, 12]
    assert [s.log.metadata["run_info"]["finished"] for s in segments] == [True, False, False, True]
    assert segments[1].log.series.height == 0  # the manual test logged no pressure
    assert "mfc Ar setpoint" in segments[3].log.series.columns
    # read as one run (a caller that wants one), the last session with valves is taken
    assert sessions_log.metadata["run_index"] == 3
    assert any("holds 4 runs" in w for w in sessions_log.warnings)
    assert not any("holds 4 runs" in w for s in segments for w in s.log.warnings)


@pytest.mark.parametrize("index", range(4))
def test_each_session_has_its_pulses_and_verdict(sessions_log: AldLog, index: int) -> None:
    _, counts, dead, verdict, failing = EXPECTED[index]
    log = sessions_log.segments[index].log
    pulses = detect_pulses(log)
    report = run_checks(log, pulses, None)
    assert Counter(p.source for p in pulses) == counts
    assert Counter(p.source for p in pulses if p.dead) == Counter(dead)
    assert report.verdict == verdict
    assert {c.name for c in report.results if c.status == "fail"} == failing


def test_the_aborted_session_says_how_far_it_got(sessions_log: AldLog) -> None:
    log = sessions_log.segments[2].log
    info = log.metadata["run_info"]
    assert info["loops_completed"] == 3 and info["loops_requested"] == 50
    report = run_checks(log, detect_pulses(log), None)
    completeness = next(c for c in report.results if c.name == "run_completeness")
    assert completeness.value == pytest.approx(3 / 50)
    assert "3 of 50 requested loops ran" in completeness.details


def test_no_data_names_what_was_missing(sessions_log: AldLog) -> None:
    log = sessions_log.segments[1].log
    report = run_checks(log, detect_pulses(log), None)
    assert report.verdict == NO_DATA
    assert report.reasons[0] == "no check of the deposition could run"
    assert any("no chamber pressure" in r for r in report.reasons)


def test_a_one_session_log_has_no_segments() -> None:
    log = get_parser("controller_eventlog").parse(EVENTLOG, ctx_for(EVENTLOG))
    assert isinstance(log, AldLog)
    assert log.segments == []
    (only,) = log.parts()
    assert only.log is log and only.start_time == "2025-03-14T09:58:03"
    assert only.end_time is not None and only.end_time.startswith("2025-03-14T10:09:40")
