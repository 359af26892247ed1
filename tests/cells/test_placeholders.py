"""Placeholder values ("-", "N/A", "NaN") in large text tables, through the real job.

A large table is read without matching every value against the placeholders (that costs
the reader ~45 %) unless its first rows show one; a placeholder further on makes the job
read the file again with them. Whichever way it was read, a file gives the cycle table its
copy with empty fields gives: the fast path is an optimisation, never a different answer.
"""

from __future__ import annotations

import io

import pytest

from cells.models import CyclingTest
from lims.ingestion import services as ingest
from lims.ingestion import text as textio

HEADER = "time_s,cycle,current_a,voltage_v,charge_capacity_ah,discharge_capacity_ah"
ROWS_PER_CYCLE = 1000
CYCLES = 30
LATE = range(20_000, 20_050)  # data rows past the 10,000-row head check, in cycle 21


def _rows() -> list[list[str]]:
    rows = []
    for i in range(ROWS_PER_CYCLE * CYCLES):
        cycle, k = divmod(i, ROWS_PER_CYCLE)
        charging = k < ROWS_PER_CYCLE // 2
        step = k if charging else k - ROWS_PER_CYCLE // 2
        cap = (step + 1) * 10 * 0.002 / 3600
        volt = (3.0 + 0.002 * step) if charging else (4.0 - 0.002 * step)
        rows.append(
            [
                f"{i * 10}",
                f"{cycle + 1}",
                "0.002" if charging else "-0.002",
                f"{volt:.4f}",
                f"{cap:.7f}" if charging else "0",
                "0" if charging else f"{cap:.7f}",
            ]
        )
    return rows


def _csv(rows: list[list[str]], at: range, column: int, token: str) -> bytes:
    lines = [HEADER]
    for i, row in enumerate(rows):
        fields = list(row)
        if i in at:
            fields[column] = token
        lines.append(",".join(fields))
    return ("\n".join(lines) + "\n").encode()


def _ingest(project, capture, content: bytes, name: str):
    with capture(execute=False):
        job, _ = ingest.ingest_submit(
            stream=io.BytesIO(content), filename=name, project=project, params={"cell": "C-001"}
        )
    with capture(execute=False):
        done = ingest.job_run(job_id=job.pk)
    assert done is not None
    return done


def _cycle_table(job) -> list[dict]:
    test = CyclingTest.objects.get(pk=job.result["cycling_test"])
    return list(test.cycles.order_by("cycle_index").values(*_FIELDS))


_FIELDS = (
    "cycle_index",
    "charge_mah",
    "discharge_mah",
    "mean_charge_v",
    "mean_discharge_v",
    "end_charge_v",
    "end_discharge_v",
    "duration_s",
)


@pytest.fixture
def large(monkeypatch):
    """The files here are ~1 MB; count them as large (read lazily, head checked)."""
    monkeypatch.setattr(textio, "EAGER_LIMIT_BYTES", 1024)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("token", "at", "read_again"),
    [
        ("-", LATE, True),  # past the head: the fast read fails, the job reads again
        ("N/A", LATE, True),
        ("NaN", LATE, False),  # the float reader takes NaN; made empty without a second read
        ("nan", LATE, False),
        ("-", range(3, 5), False),  # in the first rows: read with placeholders at once
    ],
)
def test_a_placeholder_anywhere_reads_like_an_empty_field(
    project, cell, large, django_capture_on_commit_callbacks, token, at, read_again
):
    rows = _rows()
    empty = _ingest(project, django_capture_on_commit_callbacks, _csv(rows, at, 3, ""), "empty.csv")
    assert empty.status == "succeeded", empty.error
    assert "read_again_with_placeholders" not in empty.result
    job = _ingest(
        project, django_capture_on_commit_callbacks, _csv(rows, at, 3, token), "tokens.csv"
    )
    assert job.status == "succeeded", job.error
    assert job.result.get("read_again_with_placeholders", False) is read_again
    got, want = _cycle_table(job), _cycle_table(empty)
    assert len(got) == len(want) == CYCLES
    for row, expected in zip(got, want, strict=True):  # streamed sums: order may differ
        assert row == pytest.approx(expected, rel=1e-12)


@pytest.mark.django_db
def test_a_bad_value_past_the_head_fails_with_its_line_after_the_second_read(
    project, cell, large, django_capture_on_commit_callbacks
):
    rows = _rows()
    content = _csv(rows, range(20_010, 20_011), 3, "3.3x")
    job = _ingest(project, django_capture_on_commit_callbacks, content, "bad.csv")
    assert job.status == "failed"
    assert "3.3x" in job.error
    assert "near line" in job.error  # the start of the chunk polars was reading
    assert job.raw_file.size == len(content)  # the bytes are kept


def test_the_head_decides_the_read(tmp_path, monkeypatch) -> None:
    """In process: a clean head reads without placeholders, one with them reads with them,
    and ``ParseContext.placeholders`` overrides both."""
    from lims.ingestion.parsing import ParseContext

    monkeypatch.setattr(textio, "EAGER_LIMIT_BYTES", 1024)
    rows = _rows()
    clean, early = tmp_path / "clean.csv", tmp_path / "early.csv"
    clean.write_bytes(_csv(rows, range(0), 3, ""))
    early.write_bytes(_csv(rows, range(2, 3), 3, "N/A"))

    def layout(path, placeholders=None):
        ctx = ParseContext(path.name, placeholders=placeholders)
        return textio.read_layout(path, ctx, lambda lines: 0)

    assert layout(clean).placeholders is False
    assert layout(early).placeholders is True
    assert layout(clean, placeholders=True).placeholders is True
    monkeypatch.setattr(textio, "EAGER_LIMIT_BYTES", 10**9)
    assert layout(clean).placeholders is True  # small files: always, it costs nothing
