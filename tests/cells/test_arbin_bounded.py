"""Arbin ``.res`` through mdbtools' ``mdb-export``: output streamed and bounded, never captured.

A byte-flipped ``.res`` once made ``mdb-export`` print about 1 GB of warnings per 10 s into a
captured stderr while the child grew to 6.9 GB. The runner streams stderr (keeping its first
bytes), writes stdout to a file, caps the child's address space and output file size, and kills
it past a limit with the reason. These tests run real processes: the installed ``mdb-export``
on the real fixture, and small Python children that misbehave the way a damaged database
makes ``mdb-export`` misbehave. No Django, no database.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import psutil
import pytest

from cells.parsers import arbin
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cycler" / "arbin"
RES = FIXTURES / "navani_arbin_example.res"
MDB_EXPORT = shutil.which("mdb-export")


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def run(command: list[str], **limits) -> tuple[int, bytes, int]:
    with tempfile.TemporaryFile() as out:
        code, kept = arbin.run_bounded(command, out, **limits)
        return code, kept, out.seek(0, 2)


def test_a_sound_child_returns_its_exit_code_output_and_first_warnings() -> None:
    code, kept, size = run(
        python("import sys; sys.stdout.write('a,b\\n1,2\\n'); sys.stderr.write('w' * 10000)"),
        max_stdout=1000,
        keep_stderr=100,
    )
    assert (code, kept, size) == (0, b"w" * 100, 8)
    failing = python("import sys; sys.stderr.write('bad page'); sys.exit(3)")
    code, kept, _ = run(failing, max_stdout=10)
    assert (code, kept) == (3, b"bad page")


def test_a_warning_flood_is_killed_at_the_limit_quickly() -> None:
    flood = python("import sys\nwhile True: sys.stderr.write('Warning: row too long\\n' * 1000)")
    started = time.monotonic()
    with pytest.raises(arbin.BoundedRunError, match="more than 1048576 bytes of warnings"):
        run(flood, max_stdout=1000)
    assert time.monotonic() - started < 10


def test_endless_output_is_killed_at_the_limit() -> None:
    endless = python("import sys\nwhile True: sys.stdout.write('1,2,3\\n' * 10000)")
    with pytest.raises(arbin.BoundedRunError, match="100000 bytes of output or more"):
        run(endless, max_stdout=100_000)


def test_a_silent_hang_is_killed_at_the_timeout() -> None:
    started = time.monotonic()
    with pytest.raises(arbin.BoundedRunError, match="no result after 1 s"):
        run(python("import time; time.sleep(60)"), max_stdout=10, timeout_s=1.0)
    assert time.monotonic() - started < 5


def test_the_child_cannot_grow_past_its_memory_cap() -> None:
    grow = python("x = bytearray(600 * 1024 * 1024); print(len(x))")
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    code, kept, _ = run(grow, max_stdout=100, max_memory=256 << 20)
    assert code != 0 and b"MemoryError" in kept
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before  # the child was waited for (other tests' workers may run)


def test_mdb_export_output_limit_scales_with_the_database() -> None:
    assert arbin.mdb_output_limit(RES.stat().st_size) > 8 * RES.stat().st_size
    assert arbin.mdb_output_limit(0) == 64 << 20


def test_the_real_mdb_export_reads_the_fixture_through_the_bounded_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert MDB_EXPORT is not None, "mdbtools (apt-get install mdbtools) is needed for .res files"

    def refuses(path: Path) -> tuple[pl.DataFrame, dict]:
        raise ParseError("access_parser cannot read the database", location="table X")

    monkeypatch.setattr(arbin, "_read_with_access_parser", refuses)
    with RES.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    data = arbin.ArbinResParser().parse(RES, ParseContext(filename=RES.name, size=len(head)))
    assert data.metadata["reader"] == "mdb-export"
    frame = data.collect()
    assert frame.height == 2150
    assert frame["cycle"].unique().sort().to_list() == [1, 2, 3, 4, 5]


def test_a_flooding_mdb_export_ends_the_parse_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An ``mdb-export`` on PATH that floods stderr as on the byte-flipped file."""
    flooding = tmp_path / "mdb-export"
    flooding.write_text(
        f"#!{sys.executable}\nimport sys\n"
        "while True: sys.stderr.write('Warning: could not decode row\\n' * 1000)\n"
    )
    flooding.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{'/usr/bin:/bin'}")

    def refuses(path: Path) -> tuple[pl.DataFrame, dict]:
        raise ParseError("access_parser cannot read the database", location="table X")

    monkeypatch.setattr(arbin, "_read_with_access_parser", refuses)
    started = time.monotonic()
    with pytest.raises(ParseError) as info:
        arbin.ArbinResParser().parse(RES, ParseContext(filename=RES.name, size=0))
    assert time.monotonic() - started < 10
    message = info.value.message
    assert "mdb-export was stopped: more than 1048576 bytes of warnings" in message
    assert "damaged" in message and len(message) < 400
