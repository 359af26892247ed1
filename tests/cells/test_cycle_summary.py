"""Per-cycle summary: acceptance numbers on every real cycler fixture, and the conventions.

Reference values are those of tests/fixtures/SOURCES.md (computed independently from each
file's own columns). Pure polars: no Django, no database.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cells.parsers import CANONICAL_SCHEMA, CyclerData, summarize_cycles
from cells.parsers.summary import SUMMARY_SCHEMA
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext
from lims.ingestion.registry import detect_parser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cycler"

# file, parser chosen by content, rows, cycles, first-cycle charge / discharge mAh (None: "-")
REFERENCE = [
    # Starts with Charge_Capacity = 0.880 Ah carried over from before the excerpt: the
    # reference, like us, counts only what flowed in the file (see the test below).
    ("arbin/bdtk_arbin_example.csv", "arbin_csv", 2142, 2, 191.899, 1072.36),
    ("arbin/navani_arbin_example.res", "arbin_res", 2150, 5, 0.483515, 0.475156),
    (
        "arbin/navani_bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx",
        "arbin_xlsx",
        4526,
        1,
        5.7027,
        11.0549,
    ),
    # No capacity column: the integral of its 0.1 A over 2 s (the reference has none: "-").
    ("bdf/bdf_sample.bdf.csv", "bdf_csv", 3, 1, 0.1 * 2 / 3.6, 0.0),
    ("biologic/bdf_GCPL-0.mpr", "biologic_mpr", 4, 1, 0.0, 0.0),
    ("biologic/navani_00_test_04_MB_C01.mpr", "biologic_mpr", 1501, 1, 0.0, 1.7953e-05),
    (
        "biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr",
        "biologic_mpr",
        46102,
        7,
        0.0,
        0.206529,
    ),
    ("maccor/bdtk_maccor_example.001", "maccor_txt", 8, 1, 0.0, 0.0),
    ("maccor/beep_xTESLADIAG_000038con.078", "maccor_txt", 3873, 8, 2757.75, 4394.17),
    ("neware/cellpy_neware_uio.csv", "neware_csv", 9065, 4, 4.24934, 5.08628),
    ("neware/fastnda_nw4-120-1-6-53.ndax", "neware_nda", 18700, 150, 1.69654, 0.32362),
    ("neware/navani_test.ndax", "neware_nda", 1464, 1, 0.593039, 0.625451),
    ("neware/newarenda_new_nda_file.nda", "neware_nda", 439, 1, 0.000696528, 0.0070745),
]


def parse_fixture(relative: str) -> tuple[str, CyclerData]:
    path = FIXTURES / relative
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    parser = detect_parser(head, path.name, kind="cycler")
    assert parser is not None, f"no parser detected for {relative}"
    return parser.name, parser.parse(path, ParseContext(filename=path.name, size=len(head)))


def assert_mah(got: float | None, expected: float | None) -> None:
    if expected is None:
        assert got is None
    elif expected == 0.0:
        assert got is not None and abs(got) <= 1e-9
    else:
        assert got is not None and abs(got - expected) <= 0.005 * abs(expected), (got, expected)


@pytest.mark.parametrize(
    ("relative", "parser_name", "rows", "cycles", "charge", "discharge"),
    REFERENCE,
    ids=[r[0].split("/")[1] for r in REFERENCE],
)
def test_reference_first_cycle_rows_and_cycles(
    relative: str,
    parser_name: str,
    rows: int,
    cycles: int,
    charge: float | None,
    discharge: float | None,
) -> None:
    name, data = parse_fixture(relative)
    assert name == parser_name
    summary = summarize_cycles(data.series)
    assert summary.height == cycles
    assert int(summary["rows"].sum()) == rows
    assert data.collect().height == rows
    first = summary.row(0, named=True)
    assert first["cycle_index"] == 1
    assert_mah(first["charge_mah"], charge)
    assert_mah(first["discharge_mah"], discharge)


def test_arbin_csv_does_not_count_the_capacity_carried_into_the_file() -> None:
    """The Arbin CSV excerpt starts with Charge_Capacity = 0.8800053 Ah on its first row.

    That counter flowed before the file (an excerpt of a longer test): cycle 1 holds only the
    increase inside the file, 191.899 mAh as in the reference and every peer, not 1071.90.
    The 880.005 mAh stay visible in the series (and in the test's conventions).
    """
    name, data = parse_fixture("arbin/bdtk_arbin_example.csv")
    assert name == "arbin_csv"
    summary = summarize_cycles(data.series)
    assert summary.height == 2 and int(summary["rows"].sum()) == 2142
    first = summary.row(0, named=True)
    carried_mah = data.collect()["charge_capacity_ah"][0] * 1000.0
    assert carried_mah == pytest.approx(880.0053)
    assert_mah(first["charge_mah"], 191.899)
    assert first["charge_mah"] == pytest.approx(1071.9038 - carried_mah, rel=1e-9)
    assert_mah(first["discharge_mah"], 1072.36)


def test_summary_schema_and_sorting_on_real_file() -> None:
    _, data = parse_fixture("biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr")
    summary = summarize_cycles(data.series)
    assert dict(summary.schema) == SUMMARY_SCHEMA
    assert summary["cycle"].to_list() == list(range(7))  # .mpr: half cycle // 2, from 0
    assert summary["cycle_index"].to_list() == list(range(1, 8))
    second = summary.row(1, named=True)
    assert second["charge_mah"] == pytest.approx(0.986781, rel=1e-4)
    assert second["discharge_mah"] == pytest.approx(0.852855, rel=1e-4)
    assert second["end_charge_v"] == pytest.approx(3.8, abs=0.01)
    assert second["end_discharge_v"] == pytest.approx(2.0, abs=0.01)
    assert 2.0 < second["mean_discharge_v"] < second["mean_charge_v"] < 3.8


def series(**columns: list) -> pl.LazyFrame:
    """A canonical series with the given columns (others null)."""
    height = len(next(iter(columns.values())))
    data = {
        name: pl.Series(name, columns.get(name, [None] * height), dtype=dtype)
        for name, dtype in CANONICAL_SCHEMA.items()
    }
    return pl.DataFrame(data).lazy()


def test_reset_per_step_is_summed() -> None:
    # Maccor/Neware style: the counter restarts at each step of the same cycle.
    frame = series(
        time_s=[0.0, 1, 2, 3, 4, 5],
        cycle=[1, 1, 1, 1, 1, 1],
        current_a=[1.0, 1, 1, 0.5, 0.5, -1],
        voltage_v=[3.0, 3.5, 4.0, 4.1, 4.2, 3.5],
        charge_capacity_ah=[0.0, 0.5, 1.0, 0.1, 0.2, 0.0],
        discharge_capacity_ah=[0.0, 0.0, 0.0, 0.0, 0.0, 0.3],
    )
    row = summarize_cycles(frame).row(0, named=True)
    assert row["charge_mah"] == pytest.approx(1200.0)
    assert row["discharge_mah"] == pytest.approx(300.0)
    assert row["end_charge_v"] == 4.2
    assert row["end_discharge_v"] == 3.5
    # No energy columns: energy falls back to sum(V * dQ); mean V = that / Q.
    expected_wh = 3.5 * 0.5 + 4.0 * 0.5 + 4.1 * 0.1 + 4.2 * 0.1
    assert row["charge_wh"] == pytest.approx(expected_wh)
    assert row["mean_charge_v"] == pytest.approx(expected_wh / 1.2)
    assert row["discharge_wh"] == pytest.approx(3.5 * 0.3)


def test_first_value_is_the_baseline_and_cumulative_counters_are_differenced() -> None:
    # Arbin style: counters accumulate across cycles within the file (no reset at a cycle).
    # The file starts at 0.2 Ah: flowed before the file, so cycle 1 counts 0.5 - 0.2 only.
    frame = series(
        time_s=[0.0, 1, 2, 3],
        cycle=[1, 1, 2, 2],
        current_a=[1.0, 1, 1, 1],
        voltage_v=[3.0, 3.0, 3.0, 3.0],
        charge_capacity_ah=[0.2, 0.5, 0.7, 0.9],
    )
    summary = summarize_cycles(frame)
    assert summary["charge_mah"].to_list() == pytest.approx([300.0, 400.0])
    # Leading gaps: the first value that appears is the baseline, wherever it is.
    late = series(
        time_s=[0.0, 1, 2, 3],
        cycle=[1, 1, 1, 1],
        current_a=[1.0, 1, 1, 1],
        voltage_v=[3.0] * 4,
        charge_capacity_ah=[None, None, 0.7, 0.9],
    )
    assert summarize_cycles(late)["charge_mah"].to_list() == pytest.approx([200.0])
    assert summary["discharge_mah"].to_list() == [None, None]  # no discharge column at all


def test_reset_at_cycle_boundary_and_gap_nulls() -> None:
    frame = series(
        time_s=[0.0, 1, 2, 3, 4],
        cycle=[0, 0, 1, 1, 1],
        voltage_v=[3.0] * 5,
        current_a=[1.0] * 5,
        charge_capacity_ah=[0.0, 0.4, 0.1, None, 0.3],
    )
    summary = summarize_cycles(frame)
    # cycle 1 restarts at 0.1; the null row is carried forward, not re-added in full.
    assert summary["charge_mah"].to_list() == pytest.approx([400.0, 300.0])
    assert summary["cycle_index"].to_list() == [1, 2]
    assert summary["cycle"].to_list() == [0, 1]


def test_energy_columns_win_over_v_dq_and_zero_capacity_has_no_mean_voltage() -> None:
    frame = series(
        time_s=[0.0, 10, 20],
        cycle=[3, 3, 3],
        current_a=[0.0, 0.0, 0.0],
        voltage_v=[3.0, 3.0, 3.0],
        charge_capacity_ah=[0.0, 0.0, 0.0],
        discharge_capacity_ah=[0.0, 0.0, 0.0],
        charge_energy_wh=[0.0, 0.0, 0.0],
        discharge_energy_wh=[0.0, 0.0, 0.0],
    )
    row = summarize_cycles(frame).row(0, named=True)
    assert row["cycle_index"] == 1 and row["cycle"] == 3
    assert row["charge_mah"] == 0.0 and row["mean_charge_v"] is None
    assert row["end_charge_v"] is None and row["end_discharge_v"] is None
    assert (row["start_time_s"], row["end_time_s"], row["duration_s"], row["rows"]) == (
        0.0,
        20.0,
        20.0,
        3,
    )
    frame = series(
        time_s=[0.0, 1],
        cycle=[1, 1],
        current_a=[1.0, 1.0],
        voltage_v=[3.0, 4.0],
        charge_capacity_ah=[0.0, 1.0],
        charge_energy_wh=[0.0, 3.7],
    )
    assert summarize_cycles(frame)["charge_wh"].to_list() == pytest.approx([3.7])


def test_unsorted_cycles_are_sorted_and_missing_cycle_is_one_cycle() -> None:
    frame = series(
        time_s=[0.0, 1, 2, 3],
        cycle=[5, 5, 2, 2],
        current_a=[-1.0, -1, 1, 1],
        voltage_v=[3.0, 2.9, 3.5, 3.6],
        discharge_capacity_ah=[0.1, 0.2, 0.0, 0.0],
    )
    summary = summarize_cycles(frame)
    assert summary["cycle"].to_list() == [2, 5]
    assert summary["cycle_index"].to_list() == [1, 4]
    no_cycle = series(time_s=[0.0, 1.0], voltage_v=[3.0, 3.1], current_a=[0.1, 0.1])
    summary = summarize_cycles(no_cycle)
    assert summary.height == 1
    assert summary["cycle_index"].to_list() == [1]
    assert summary["cycle"].to_list() == [None]
    assert summary["charge_mah"].to_list() == [None]


def test_summary_rejects_non_canonical_input() -> None:
    with pytest.raises(ValueError, match="canonical"):
        summarize_cycles(pl.LazyFrame({"time_s": [0.0]}))


def test_streamed_file_summary_equals_in_memory(tmp_path: Path, monkeypatch) -> None:
    """A large canonical CSV stays lazy through parse; the streamed summary is exact."""
    from lims.ingestion import text as textio

    rows = 120_000
    frame = pl.DataFrame(
        {
            "time_s": pl.int_range(rows, eager=True).cast(pl.Float64),
            "cycle": (pl.int_range(rows, eager=True) // 1000 + 1),
            "step": (pl.int_range(rows, eager=True) // 500 % 2 + 1),
        }
    ).with_columns(
        pl.when(pl.col("step") == 1).then(1.0).otherwise(-1.0).alias("current_a"),
        (3.0 + (pl.col("time_s") % 500) / 1000).alias("voltage_v"),
        pl.when(pl.col("step") == 1)
        .then((pl.col("time_s") % 500 + 1) / 1e4)
        .otherwise(0.0)
        .alias("charge_capacity_ah"),
        pl.when(pl.col("step") == 2)
        .then((pl.col("time_s") % 500 + 1) / 1e4)
        .otherwise(0.0)
        .alias("discharge_capacity_ah"),
    )
    path = tmp_path / "big.csv"
    frame.write_csv(path)
    monkeypatch.setattr(textio, "EAGER_LIMIT_BYTES", 1024)
    with path.open("rb") as handle:
        parser = detect_parser(handle.read(SNIFF_BYTES), path.name)
    assert parser is not None and parser.name == "lims_csv"
    data = parser.parse(path, ParseContext(path.name))
    assert "csv" in data.series.explain().lower()  # still a scan, not materialised
    streamed = summarize_cycles(data.series)
    in_memory = summarize_cycles(data.collect().lazy())
    assert_frame_equal(streamed, in_memory, rel_tol=1e-12)  # summation order only
    assert streamed.height == 120
    # The counter reads 0.1 mAh on the file's first row (time 0): flowed before the file.
    assert streamed["charge_mah"].to_list() == pytest.approx([49.9] + [50.0] * 119)
    assert streamed["discharge_mah"].to_list() == pytest.approx([50.0] * 120)
