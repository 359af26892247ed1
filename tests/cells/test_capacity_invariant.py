"""Capacity is what flowed: the current-integral invariant on every real cycler fixture.

Every file under ``tests/fixtures/cycler`` goes through the registered parser (detected from
its content) and ``summarize_cycles``. For each file with a current column, each cycle's charge
and discharge capacity must equal the time integral of the current over that cycle's rows.
Pure polars + numpy: no Django, no database.

How the integral is taken (the same conventions as the summary's counters):
- The interval ``(t[i-1], t[i]]`` belongs to row ``i``'s cycle: the counter increment of row
  ``i`` is counted in row ``i``'s cycle, so the interval that ends on a cycle's first row
  belongs to that cycle. The file's first row has no interval: a counter the file starts with
  flowed before the file and is not counted anywhere.
- Charge is the integral of the positive part of the current, discharge of the negative part;
  rests (zero current) add nothing. A null current counts as a rest; time going backwards, as
  no interval.
- Resolution: between two logged rows the current is known only at the two ends. Assuming it
  moves monotonically in between (flat in a CC step, decaying in a CV step, one jump at a step
  change), the charge of the interval lies between the sample-and-hold integrals at the lower
  and at the higher of the two end currents. A cycle's counter must lie within the sum of those
  brackets, widened by 0.5 % (plus 1e-9 mAh for printed rounding). In a constant-current step
  the bracket is a single value, so there the rule is the plain 0.5 % check; where the bracket
  is wide (sparse sampling of a decaying CV current, a long interval across a step change), its
  width is the resolution of the file as logged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cells.parsers import CyclerData, summarize_cycles
from lims.ingestion import wrappers
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext
from lims.ingestion.registry import detect_parser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cycler"
LIMITS = wrappers.Limits(max_bytes=1 << 30)
SIDECAR_PARSERS = frozenset({"arbin_metadata", "biologic_mps", "novonix_header"})
ALL_FILES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".py")


def _sniffed(path: Path) -> str | None:
    wrapper = wrappers.inspect(path, path.name, LIMITS)
    if wrapper is not None:
        parser = detect_parser(wrapper.head, wrapper.inner_name, kind="cycler")
    else:
        with path.open("rb") as handle:
            parser = detect_parser(handle.read(SNIFF_BYTES), path.name, kind="cycler")
    return parser.name if parser else None


# Sidecars (settings, metadata) hold no rows: every other cycler fixture is checked.
FILES = [p for p in ALL_FILES if _sniffed(p) not in SIDECAR_PARSERS]
RELATIVE_TOLERANCE = 0.005
ABSOLUTE_TOLERANCE_MAH = 1e-9


def parse(path: Path) -> tuple[str, CyclerData]:
    """Detect and parse as the worker does: a .gz/.zip wrapper is read by its inner file."""
    import tempfile

    with wrappers.opened(path, path.name, LIMITS, Path(tempfile.gettempdir())) as source:
        with source.path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
        parser = detect_parser(head, source.filename, kind="cycler")
        assert parser is not None, f"no registered parser reads {path.name}"
        data = parser.parse(source.path, ParseContext(filename=source.filename, size=source.size))
        data.series = data.series.collect().lazy()  # the inner temp file goes on exit
        return parser.name, data


def integral_brackets(rows: pl.DataFrame) -> pl.DataFrame:
    """Per cycle: the lowest and highest charge/discharge (mAh) the logged current allows."""
    time = rows["time_s"].cast(pl.Float64).to_numpy().astype(float)
    current = rows["current_a"].fill_null(0.0).to_numpy().astype(float)
    cycle = rows["cycle"].forward_fill().backward_fill().fill_null(-1).to_numpy()
    dt = np.zeros_like(time)
    dt[1:] = np.nan_to_num(np.diff(time), nan=0.0)
    dt_h = np.clip(dt, 0.0, None) / 3600.0
    before = np.concatenate([current[:1], current[:-1]])
    low, high = np.minimum(before, current), np.maximum(before, current)
    to_mah = 1000.0 * dt_h
    return (
        pl.DataFrame(
            {
                "cycle": cycle,
                "charge_lo": np.clip(low, 0.0, None) * to_mah,
                "charge_hi": np.clip(high, 0.0, None) * to_mah,
                "discharge_lo": np.clip(-high, 0.0, None) * to_mah,
                "discharge_hi": np.clip(-low, 0.0, None) * to_mah,
            }
        )
        .group_by("cycle")
        .sum()
    )


def violations(summary: pl.DataFrame, brackets: pl.DataFrame) -> list[str]:
    """Cycles whose capacity lies outside the integral's bracket (0.5 % either side)."""
    joined = summary.with_columns(pl.col("cycle").fill_null(-1)).join(
        brackets, on="cycle", how="left"
    )
    assert joined.height == summary.height
    out = []
    for row in joined.iter_rows(named=True):
        for side in ("charge", "discharge"):
            value, lo, hi = row[f"{side}_mah"], row[f"{side}_lo"], row[f"{side}_hi"]
            lower = lo * (1 - RELATIVE_TOLERANCE) - ABSOLUTE_TOLERANCE_MAH
            upper = hi * (1 + RELATIVE_TOLERANCE) + ABSOLUTE_TOLERANCE_MAH
            if value is None or not lower <= value <= upper:
                out.append(f"cycle {row['cycle']} {side}: {value} not in [{lo:.6g}, {hi:.6g}]")
    return out


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_each_cycle_capacity_is_the_current_integral(path: Path) -> None:
    _, data = parse(path)
    rows = data.collect()
    summary = summarize_cycles(data.series)
    assert int(summary["rows"].sum()) == rows.height
    assert summary["cycle"].null_count() == 0  # every cycle has a number, derived or written
    if rows["current_a"].null_count() == rows.height:
        return  # nothing to integrate (bdf_MB-0.mpr: see test_a_file_without_current_...)
    problems = violations(summary, integral_brackets(rows))
    assert not problems, "\n".join(problems[:10])


def test_only_sidecars_are_left_out_of_the_invariant() -> None:
    left_out = {p.name: _sniffed(p) for p in ALL_FILES if p not in FILES}
    assert left_out and set(left_out.values()) <= SIDECAR_PARSERS, left_out


def test_a_file_without_current_is_a_voltage_only_test() -> None:
    """bdf_MB-0.mpr (BioLogic, only time/s and Ewe/V): one cycle, no capacities, said so."""
    name, data = parse(FIXTURES / "biologic" / "bdf_MB-0.mpr")
    assert name == "biologic_mpr"
    assert data.collect()["current_a"].null_count() == 2
    assert "no current" in " ".join(data.warnings)
    summary = summarize_cycles(data.series)
    assert summary["cycle"].to_list() == [0] and summary["rows"].to_list() == [2]
    assert summary["charge_mah"].to_list() == [None]
    assert summary["discharge_mah"].to_list() == [None]


def test_the_invariant_catches_a_carried_over_counter_and_a_one_percent_error() -> None:
    """The check is not vacuous: the old rule (the first row's counter counted in cycle 1)
    and a 1 % error on constant-current cycles both fail it."""
    _, data = parse(FIXTURES / "arbin" / "bdtk_arbin_example.csv")
    rows = data.collect()
    brackets = integral_brackets(rows)
    summary = summarize_cycles(data.series)
    carried_mah = rows["charge_capacity_ah"][0] * 1000.0
    old_rule = summary.with_columns(
        pl.when(pl.col("cycle_index") == 1)
        .then(pl.col("charge_mah") + carried_mah)
        .otherwise(pl.col("charge_mah"))
        .alias("charge_mah")
    )
    assert violations(summary, brackets) == []
    assert [v.split(":")[0] for v in violations(old_rule, brackets)] == ["cycle 1 charge"]
    _, maccor = parse(FIXTURES / "maccor" / "beep_xTESLADIAG_000038con.078")
    brackets = integral_brackets(maccor.collect())
    summary = summarize_cycles(maccor.series)
    assert violations(summary, brackets) == []
    off = summary.with_columns(pl.col("discharge_mah") * 1.01)
    assert len(violations(off, brackets)) == summary.height  # every cycle's discharge


def test_a_maccor_export_cut_from_a_longer_test_counts_only_what_flowed_in_it(
    tmp_path: Path,
) -> None:
    """The .078 export cut in the middle of a charge step of its cycle 1, as an export of a
    running test would start: the step's Amp-hr counter reads its running value on the first
    row. Cycle 1 of the cut holds the original cycle 1 minus what had flowed before the cut;
    later cycles are unchanged and the invariant holds."""
    source = FIXTURES / "maccor" / "beep_xTESLADIAG_000038con.078"
    _, original = parse(source)
    rows = original.collect().with_row_index("row")
    charging = rows.filter(
        (pl.col("cycle") == 1)
        & (pl.col("charge_capacity_ah") > 0)
        & (pl.col("step") == pl.col("step").shift(-1))
    )
    cut_at = int(charging["row"][charging.height // 2])
    carried_ah = float(rows["charge_capacity_ah"][cut_at])
    assert carried_ah > 0.1
    raw = source.read_bytes()
    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    lines = raw.split(newline)
    cut = tmp_path / "xTESLADIAG_000038con.078"
    cut.write_bytes(newline.join(lines[:2] + lines[2 + cut_at :]))
    name, data = parse(cut)
    assert name == "maccor_txt"
    summary = summarize_cycles(data.series)
    whole = summarize_cycles(original.series)
    before_cut = summarize_cycles(original.collect().head(cut_at + 1).lazy())
    flowed_before = before_cut.filter(pl.col("cycle") == 1)["charge_mah"][0]
    first = summary.row(0, named=True)
    assert first["cycle"] == 1
    expected = whole.filter(pl.col("cycle") == 1)["charge_mah"][0] - flowed_before
    assert first["charge_mah"] == pytest.approx(expected, rel=1e-9)
    assert first["charge_mah"] < whole.filter(pl.col("cycle") == 1)["charge_mah"][0] - 100
    later = whole.filter(pl.col("cycle") > 1).select("cycle", "charge_mah", "discharge_mah")
    # the same increments, summed in another order: equal to rounding
    assert_frame_equal(
        summary.filter(pl.col("cycle") > 1).select(later.columns), later, rel_tol=1e-9
    )
    assert data.collect()["charge_capacity_ah"][0] == pytest.approx(carried_ah)
    assert not violations(summary, integral_brackets(data.collect()))
