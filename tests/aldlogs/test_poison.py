"""Poison inputs: no value read from a file sizes an allocation unchecked.

A 1,000-file mutation fuzz found a 275-byte LabVIEW execution table whose step number
9999999999 drove a worker to ~18 GB (the step warnings built ``set(range(1, max + 1))``).
Each case that could allocate by a file's value runs in a child process whose address space is
capped at 1.5 GiB, so a regression fails here with a MemoryError instead of taking the machine.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from depositions.aldlogs.parsers.controller import (
    parse_controller_log,
    parse_controller_recipe,
)
from depositions.aldlogs.parsers.labview import parse_labview_datalog
from depositions.aldlogs.parsers.tabular import MAX_LINE_BYTES
from depositions.aldlogs.parsers.types import ControllerRecipe, RecipeRow
from depositions.aldlogs.plans import plan_from_controller_recipe
from lims.ingestion.parsing import SNIFF_BYTES, ParseError
from lims.ingestion.registry import detect_parser
from tests.aldlogs.conftest import DATALOG, EVENTLOG, EXECUTION, RECIPE_CSV, ctx_for

ROOT = Path(__file__).resolve().parents[2]
CAP = 3 << 29  # 1.5 GiB of address space for the child (polars and numpy take ~0.5 GiB)


def _bounded(code: str, timeout: float = 120) -> str:
    """Run ``code`` in a child with RLIMIT_AS = CAP; its stdout (fails on any error)."""
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({CAP}, {CAP}))\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _tiny_table(tmp_path: Path) -> Path:
    lines = EXECUTION.read_text(encoding="latin-1").splitlines()
    row = lines[3].replace("       2", "9999999999", 1)
    path = tmp_path / "ExecutionTable.txt"
    path.write_text("\n".join([*lines[:3], row]) + "\n", encoding="latin-1")
    return path


def test_a_huge_step_number_in_a_275_byte_execution_table(tmp_path: Path) -> None:
    path = _tiny_table(tmp_path)
    assert path.stat().st_size == 275
    parser = detect_parser(path.read_bytes()[:SNIFF_BYTES], "upload.bin", kind="ald_log")
    assert parser is not None and parser.name == "labview_execution_table"
    out = _bounded(
        f"""
        from pathlib import Path
        from depositions.aldlogs.parsers.labview import LabviewExecutionTableParser
        from lims.ingestion.parsing import ParseContext
        table = LabviewExecutionTableParser().parse(Path({str(path)!r}), ParseContext("t.txt"))
        print(len(table.steps))
        print(*table.warnings, sep="\\n")
        """
    )
    assert out.splitlines()[0] == "2"
    assert "steps 2-9999999998 missing (9999999997 rows)" in out


def test_gaps_in_step_numbers_are_listed_as_ranges() -> None:
    from depositions.aldlogs.parsers.labview import _step_warnings

    assert _step_warnings([1, 2, 5, 6, 9, 9, 20], "table") == [
        "table: step numbers repeated: 9",
        "table: steps 3-4, 7-8, 10-19 missing (14 rows)",
    ]
    every_other = list(range(1, 40, 2))  # 19 gaps, the first 8 shown
    assert _step_warnings(every_other, "table") == [
        "table: steps 2, 4, 6, 8, 10, 12, 14, 16, ... missing (19 rows)"
    ]


def _with_long_line(source: Path, tmp_path: Path, at: int, fill: str) -> Path:
    lines = source.read_text(encoding="latin-1").splitlines()
    lines.insert(at, fill * (4 * 1024 * 1024 // len(fill)))  # a 4 MB line
    path = tmp_path / source.name
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return path


def test_a_recipe_csv_with_a_4_mb_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = _with_long_line(RECIPE_CSV, tmp_path, 5, "-1,")
    with pytest.raises(ParseError) as caught:
        parse_controller_recipe(path, ctx_for(path))
    message = caught.value.describe(path.name)
    assert message.startswith(f"{path.name} at byte offset ")
    assert f"line 6 is longer than {MAX_LINE_BYTES} bytes" in message and len(message) < 300
    assert "field larger than field limit" not in message


def test_an_event_log_with_a_4_mb_line_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = _with_long_line(EVENTLOG, tmp_path, 100, "x")
    with pytest.raises(ParseError) as caught:
        parse_controller_log(path, ctx_for(path))
    assert "line 101 is longer than" in caught.value.message


def test_a_data_log_with_a_4_mb_line_is_refused_before_polars_reads_it(tmp_path: Path) -> None:
    path = _with_long_line(DATALOG, tmp_path, 2000, "1.0\t")
    with pytest.raises(ParseError) as caught:
        parse_labview_datalog(path, ctx_for(path))
    assert "line 2001 is longer than" in caught.value.message


def test_a_line_without_end_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    path.write_bytes(RECIPE_CSV.read_bytes() + b"1" * (3 * 1024 * 1024))  # no line end
    with pytest.raises(ParseError, match=f"line 27 is longer than {MAX_LINE_BYTES} bytes"):
        parse_controller_recipe(path, ctx_for(path))


def test_numbers_too_long_to_be_counts_are_not_read_as_counts(tmp_path: Path) -> None:
    lines = EVENTLOG.read_text(encoding="ascii").splitlines()
    stamp = lines[1][:23]
    lines[1] = f"{stamp}INFO     User asked to run the loops this many times {'9' * 5000}"
    lines.insert(5, f"{stamp}INFO     set valve {'7' * 5000}to 1")
    lines.insert(6, f"{stamp}INFO     set valve {'7' * 5000}to 0")
    path = tmp_path / "ALD_runtimeLog.log"
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    log = parse_controller_log(path, ctx_for(path))
    assert log.metadata["run_info"]["loops_requested"] is None
    assert any(ch.name.startswith("valve 777") and len(ch.name) < 60 for ch in log.channels)


def test_an_infinite_number_in_a_printed_recipe_is_not_replayed(tmp_path: Path) -> None:
    lines = EVENTLOG.read_text(encoding="ascii").splitlines()
    stamp = lines[1][:23]
    dump = f"{stamp}INFO     here is the recipe file numpy array [[-1. 1e999 0.1]\n [-1. 1. 1.]]"
    path = tmp_path / "ALD_runtimeLog.log"
    path.write_text("\n".join([lines[0], dump, *lines[1:]]) + "\n", encoding="ascii")
    log = parse_controller_log(path, ctx_for(path))
    assert "declared_recipe" not in log.metadata
    assert any("infinite number" in w for w in log.warnings)


def test_a_loop_count_from_a_log_cannot_size_a_plan() -> None:
    recipe = ControllerRecipe(
        columns=["aldv1", "delay"],
        raw_columns=["aldv1", "delay"],
        rows=[RecipeRow(index=0, values={"aldv1": 1.0}, delay_s=0.1)],
        delay_column="delay",
    )
    with pytest.raises(ValueError, match="more than the 2,000,000 recipe rows"):
        plan_from_controller_recipe(recipe, 10**12)


_MICROSECOND_LOG = """
import numpy as np, polars as pl
from depositions.aldlogs.parsers.types import AldLog, Channel
from depositions.aldlogs.pulses import DetectionOptions, detect_pulses
from lims.ingestion.parsing import ParseError
n = 200_000
t = np.arange(n) * 1e-6
valve = ((np.arange(n) // EVERY) % 2).astype(float)
p = 1.0 + 0.01 * valve + np.random.default_rng(1).normal(0, 1e-4, n)
log = AldLog(
    series=pl.DataFrame({"time_s": t, "chamber pressure": p, "valve 1": valve}),
    channels=[
        Channel("chamber pressure", "pressure", "Torr", "p"),
        Channel("valve 1", "valve", "1", "v", on_threshold=0.5),
    ],
    sample_period_s=1e-6,
)
"""


def test_a_microsecond_clock_under_many_pulses_is_refused_with_the_numbers() -> None:
    """50 k valve pulses on a 1 us clock: each 5 s baseline window spans the whole log, so
    the windows hold 5e9 samples (one block would be 80 GB; measuring them, hours)."""
    out = _bounded(
        _MICROSECOND_LOG.replace("EVERY", "2")
        + """
try:
    detect_pulses(log)
except ParseError as exc:
    print(exc.describe("log.txt"))
"""
    )
    assert out.startswith("log.txt at time column: 50000 pulses on a 1e-06 s sample clock make ")
    assert "check the log's time column" in out


def test_a_microsecond_clock_under_400_pulses_is_measured_in_bounded_blocks() -> None:
    """400 pulses whose baseline windows each span the log (8e7 samples in all, within the
    budget): gathered at once that was 2 GB (it fails under the cap), in turns 0.6 GB."""
    out = _bounded(
        _MICROSECOND_LOG.replace("EVERY", "250")
        + """
pulses = detect_pulses(log)
print(len(pulses), sum(x.baseline is not None for x in pulses))
# a 10 ms spike baseline is 10 000 samples: its trailing median reads every 40th
spikes = detect_pulses(log, options=DetectionOptions(mode="pressure", baseline_window_s=0.01))
print(len(spikes))
"""
    )
    counts, spikes = out.splitlines()
    assert counts == "400 400"
    assert 300 <= int(spikes) <= 400
