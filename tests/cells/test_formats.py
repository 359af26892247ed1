"""Formats users bring that were refused before: Neware BTSDA layered export, Battery Archive,
PEC, Novonix, Landt; sidecar files; bounds on .ndax zips. No database.

Reference values are independent of the parsers: the Neware file's own cycle layer, and for the
synthetic files the profile they were built from (tests/fixtures/cycler/synthetic/generate.py:
cycle n charges 0.5 A for 7200 - 72(n-1) s and discharges 1 A for 3564 - 36(n-1) s, so
1000/990, 990/980, 980/970 mAh).
"""

from __future__ import annotations

import csv
import io
import json
import struct
import zipfile
from pathlib import Path

import polars as pl
import pytest

from cells.parsers import CANONICAL_SCHEMA, CyclerData, SidecarData, summarize_cycles
from cells.parsers.landt import workbook_sheet_names
from cells.parsers.neware import NDAX_MAX_MEMBERS, check_ndax_zip
from cells.parsers.sidecars import key_matches
from cells.parsers.summary import SUMMARY_SCHEMA
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError
from lims.ingestion.registry import all_parsers, detect_parser, get_parser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cycler"
LAYERED = FIXTURES / "neware/cellpy_nw_regular_export_ife_example.csv"
BA_CYCLES = FIXTURES / "batteryarchive/synthetic_BA_cell_a_cycle_data.csv"
BA_SERIES = FIXTURES / "batteryarchive/synthetic_BA_cell_a_timeseries.csv"
PEC = FIXTURES / "pec/synthetic_pec.csv"
PEC_REAL = FIXTURES / "pec/cellpy_pec_Test25205_excerpt.csv"
NOVONIX = FIXTURES / "novonix/synthetic_novonix.csv"
NOVONIX_REAL = FIXTURES / "novonix/beep_test_Nova_Form-CH01-01_short_excerpt.csv"
NOVONIX_HEADER = FIXTURES / "novonix/synthetic_novonix_header.csv"
LANDT_CSV = FIXTURES / "landt/synthetic_landt.csv"
LANDT_XLSX = FIXTURES / "landt/synthetic_landt.xlsx"
ARBIN_META = FIXTURES / "sidecars/beep_FastCharge_000025_CH8_Metadata.csv"
MPS = FIXTURES / "sidecars/beep_biologic_mb_test_sample_mb_text.mps"
NDAX = FIXTURES / "neware/fastnda_nw4-120-1-6-53.ndax"

SYNTHETIC = {1: (1000.0, 990.0), 2: (990.0, 980.0), 3: (980.0, 970.0)}
# file -> (parser chosen by content, rows, cycles, first file cycle)
EXPECTED = {
    "neware/cellpy_nw_regular_export_ife_example.csv": ("neware_csv_layered", 9295, 20, 1),
    "batteryarchive/synthetic_BA_cell_a_timeseries.csv": ("batteryarchive_timeseries", 1092, 3, 1),
    "batteryarchive/synthetic_BA_cell_a_cycle_data.csv": ("batteryarchive_cycles", 0, 3, 1),
    "pec/synthetic_pec.csv": ("pec_csv", 1092, 3, 0),
    "pec/cellpy_pec_Test25205_excerpt.csv": ("pec_csv", 10, 1, 0),
    "novonix/synthetic_novonix.csv": ("novonix_csv", 1092, 3, 1),
    "novonix/beep_test_Nova_Form-CH01-01_short_excerpt.csv": ("novonix_csv", 10, 1, 1),
    "landt/synthetic_landt.csv": ("landt", 1092, 3, 1),
    "landt/synthetic_landt.xlsx": ("landt", 1092, 3, 1),
}
SIDECARS = {
    "sidecars/beep_FastCharge_000025_CH8_Metadata.csv": "arbin_metadata",
    "sidecars/beep_biologic_mb_test_sample_mb_text.mps": "biologic_mps",
    "novonix/synthetic_novonix_header.csv": "novonix_header",
}


def head_of(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES)


def parse(path: Path, name: str | None = None) -> CyclerData:
    parser = detect_parser(head_of(path), name or path.name)
    assert parser is not None, f"nothing detected for {path.name}"
    return parser.parse(path, ParseContext(filename=name or path.name))


def cycles_of(data: CyclerData) -> pl.DataFrame:
    return data.cycles if data.cycles is not None else summarize_cycles(data.series)


def current_integral_mah(frame: pl.DataFrame) -> pl.DataFrame:
    """Per file cycle: charge and discharge as the time integral of the current (mAh).

    Each row's current over the interval that ends at it (how the testers count), split by sign.
    """
    dt = pl.col("time_s").diff().fill_null(0.0)
    current = pl.col("current_a")
    return (
        frame.with_columns(pl.col("cycle").forward_fill().backward_fill())
        .group_by("cycle")
        .agg(
            (current.clip(lower_bound=0) * dt).sum().alias("q_in") / 3.6,
            (-current.clip(upper_bound=0) * dt).sum().alias("q_out") / 3.6,
        )
        .sort("cycle")
    )


# --- detection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", sorted(EXPECTED) + sorted(SIDECARS))
def test_content_decides_among_all_parsers(relative: str) -> None:
    path = FIXTURES / relative
    wanted = EXPECTED[relative][0] if relative in EXPECTED else SIDECARS[relative]
    head = head_of(path)
    for name in (path.name, "upload.bin", "export.csv"):
        parser = detect_parser(head, name)
        assert parser is not None and parser.name == wanted, name
    # The winner is clear: no other parser claims the file as strongly.
    scores = sorted(p.sniff(head, "upload.bin") for p in all_parsers())
    assert scores[-1] > scores[-2]


def test_old_fixtures_are_not_claimed_by_the_new_parsers() -> None:
    new = {v[0] for v in EXPECTED.values()} | set(SIDECARS.values())
    for path in sorted(FIXTURES.glob("*/*")):
        if path.parent.name in ("synthetic",) or str(path.relative_to(FIXTURES)) in EXPECTED:
            continue
        if str(path.relative_to(FIXTURES)) in SIDECARS:
            continue
        for name in new:
            assert get_parser(name).sniff(head_of(path), path.name) == 0.0, (path.name, name)


# --- canonical contract, first cycle and the current integral -----------------------------------


@pytest.mark.parametrize("relative", sorted(EXPECTED))
def test_rows_cycles_and_contract(relative: str) -> None:
    _, rows, cycles, first_cycle = EXPECTED[relative]
    data = parse(FIXTURES / relative)
    frame = data.collect()
    assert dict(frame.schema) == CANONICAL_SCHEMA
    assert frame.height == rows
    table = cycles_of(data)
    assert dict(table.schema) == SUMMARY_SCHEMA
    assert table.height == cycles
    assert table["cycle"][0] == first_cycle and table["cycle_index"][0] == 1
    assert "current_sign" in data.conventions
    assert all(isinstance(v, str) for v in data.conventions.values())
    json.dumps(data.metadata)
    if rows:
        assert frame["time_s"].null_count() == 0 and frame["voltage_v"].null_count() == 0
        assert frame["cycle"].null_count() == 0 and frame["step"].null_count() == 0


@pytest.mark.parametrize(
    "relative", [r for r in sorted(EXPECTED) if "synthetic" in r and EXPECTED[r][1]]
)
def test_synthetic_files_give_the_known_cycles(relative: str) -> None:
    table = cycles_of(parse(FIXTURES / relative))
    for row in table.iter_rows(named=True):
        charge, discharge = SYNTHETIC[row["cycle_index"]]
        assert row["charge_mah"] == pytest.approx(charge, rel=1e-6)
        assert row["discharge_mah"] == pytest.approx(discharge, rel=1e-6)
        # 0.5 A x t at a mean of (3.4 + 4.2) / 2 V; 1 A x t at (4.05 + 3.0) / 2 V.
        assert row["charge_wh"] == pytest.approx(charge / 1000 * 3.8, rel=1e-6)
        assert row["discharge_wh"] == pytest.approx(discharge / 1000 * 3.525, rel=1e-6)


@pytest.mark.parametrize("relative", [r for r in sorted(EXPECTED) if EXPECTED[r][1] > 100])
def test_capacity_equals_the_current_integral(relative: str) -> None:
    data = parse(FIXTURES / relative)
    table = cycles_of(data).join(current_integral_mah(data.collect()), on="cycle")
    assert table.height == EXPECTED[relative][2]
    for row in table.iter_rows(named=True):
        assert row["q_in"] == pytest.approx(row["charge_mah"], rel=5e-3, abs=1e-6), row
        assert row["q_out"] == pytest.approx(row["discharge_mah"], rel=5e-3, abs=1e-6), row


# --- Neware BTSDA layered export ---------------------------------------------------------------


def _cycle_layer(path: Path) -> dict[int, list[float]]:
    """The file's own cycle rows (first field set), read with the csv module."""
    with path.open(newline="", encoding="latin-1") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    out = {}
    for row in rows[3:]:
        if row and row[0]:
            values = dict(zip(header, row, strict=False))
            out[int(values["Cycle Index"])] = [
                float(values[k])
                for k in ("Chg. Cap.(Ah)", "DChg. Cap.(Ah)", "Chg. Energy(Wh)", "DChg. Energy(Wh)")
            ]
    return out


def test_layered_export_matches_its_own_cycle_layer() -> None:
    data = parse(LAYERED)
    table = summarize_cycles(data.series)
    reference = _cycle_layer(LAYERED)
    assert sorted(reference) == table["cycle"].to_list() == list(range(1, 21))
    first = table.row(0, named=True)
    assert first["charge_mah"] == pytest.approx(22.56, rel=5e-3)  # the cell started charged
    assert first["discharge_mah"] == pytest.approx(330.67, rel=5e-3)
    for row in table.iter_rows(named=True):
        chg_ah, dchg_ah, chg_wh, dchg_wh = reference[row["cycle"]]
        assert row["charge_mah"] == pytest.approx(chg_ah * 1000, rel=5e-3)
        assert row["discharge_mah"] == pytest.approx(dchg_ah * 1000, rel=5e-3)
        assert row["charge_wh"] == pytest.approx(chg_wh, rel=5e-3)
        assert row["discharge_wh"] == pytest.approx(dchg_wh, rel=5e-3)


def test_layered_export_takes_cycle_and_step_from_the_enclosing_rows() -> None:
    data = parse(LAYERED)
    frame = data.collect()
    # Step 1 (a rest) opens the test on the line that also carries cycle 1; every cycle then
    # runs steps 2-5 (charge, rest, discharge, rest), as the step rows say.
    steps = frame.group_by("cycle").agg(pl.col("step").unique().sort()).sort("cycle")
    assert steps["step"].to_list() == [[1, 2, 3, 4, 5]] + [[2, 3, 4, 5]] * 19
    assert frame.row(0, named=True)["step"] == 1
    assert frame["temperature_c"].min() > 20  # T1(?): the degree sign lost by the export
    rising = frame.filter(pl.col("discharge_capacity_ah").diff() > 0)
    assert (rising["current_a"] < 0).all()
    assert "Step Type" in data.conventions["capacity"]
    assert data.metadata["source_columns"]["step"][1] == "Step Index"


def test_layered_export_without_the_merged_first_line_reads_the_same(tmp_path: Path) -> None:
    """BTSDA wrote cycle 1 and its first step on one line; split, with CRLF, nothing changes."""
    lines = LAYERED.read_text(encoding="latin-1").splitlines()
    cycle_fields = len(lines[0].split(","))
    fields = lines[3].split(",")
    lines[3:4] = [",".join(fields[:cycle_fields]), "," + ",".join(fields[cycle_fields:])]
    variant = tmp_path / "export.csv"
    variant.write_bytes("\r\n".join(lines).encode("latin-1") + b"\r\n")
    assert summarize_cycles(parse(variant).series).equals(summarize_cycles(parse(LAYERED).series))


def test_layered_export_without_record_quantities_names_the_layer(tmp_path: Path) -> None:
    lines = LAYERED.read_text(encoding="latin-1").splitlines()
    lines[2] = lines[2].replace("Voltage(V)", "Spannung")
    broken = tmp_path / "export.csv"
    broken.write_text("\n".join(lines[:50]) + "\n", encoding="latin-1")
    with pytest.raises(ParseError, match=r"record layer.*voltage_v"):
        get_parser("neware_csv_layered").parse(broken, ParseContext(broken.name))


# --- Battery Archive ---------------------------------------------------------------------------


def test_cycle_file_has_cycle_records_and_no_series() -> None:
    data = parse(BA_CYCLES)
    assert data.collect().height == 0 and data.cycles is not None
    table = data.cycles
    assert table["cycle_index"].to_list() == [1, 2, 3]
    assert table["duration_s"].to_list() == pytest.approx([10884.0, 10776.0, 10668.0])
    assert table["end_time_s"].to_list() == pytest.approx([10884.0, 21660.0, 32328.0])
    assert table["start_time_s"][0] == pytest.approx(0.0)
    assert table["rows"].null_count() == 3  # the file does not say how many records it had
    assert data.metadata["per_cycle"]["max_voltage_v"] == [4.2, 4.2]


def test_cycle_file_and_timeseries_of_one_run_give_the_same_cycles() -> None:
    per_cycle = parse(BA_CYCLES).cycles
    assert per_cycle is not None
    from_series = summarize_cycles(parse(BA_SERIES).series)
    columns = ["cycle_index", "cycle", "charge_mah", "discharge_mah", "charge_wh", "discharge_wh"]
    for column in columns:
        assert per_cycle[column].to_list() == pytest.approx(from_series[column].to_list())


def test_cycle_file_refuses_duplicated_cycles_and_skips_rows_without_one(tmp_path: Path) -> None:
    lines = BA_CYCLES.read_text().splitlines()
    dup = tmp_path / "dup_cycle_data.csv"
    dup.write_text("\n".join([*lines, lines[2]]) + "\n")
    with pytest.raises(ParseError, match="cycle 2 appears more than once"):
        parse(dup)
    gap = tmp_path / "gap_cycle_data.csv"
    gap.write_text("\n".join([*lines, "," + lines[3].split(",", 1)[1]]) + "\n")
    data = parse(gap)
    assert data.cycles is not None and data.cycles.height == 3
    assert any("without a Cycle_Index" in w for w in data.warnings)


# --- PEC ---------------------------------------------------------------------------------------


def test_pec_real_header_block() -> None:
    data = parse(PEC_REAL)
    assert data.metadata["start_time"] == "2026-01-08T17:40:39"
    assert data.metadata["protocol"] == "OCV generic long HP"
    assert data.metadata["channel"] == "ACT4-014-1"
    assert data.metadata["header_fields"]["Chemistry"] == "Li-ion LG NMC"
    frame = data.collect()
    assert frame["time_s"].to_list()[:3] == pytest.approx([0.002, 1.0, 10.0])
    assert frame["temperature_c"][1] == pytest.approx(19.26)


def test_pec_unsigned_current_takes_its_sign_from_the_instruction(tmp_path: Path) -> None:
    text = PEC.read_text(encoding="utf-8")
    unsigned = tmp_path / "unsigned.csv"
    unsigned.write_text(text.replace(",-1.000000,", ",1.000000,"), encoding="utf-8")
    assert ",-1.000000," in text and ",-1.000000," not in unsigned.read_text(encoding="utf-8")
    original, variant = parse(PEC).collect(), parse(unsigned).collect()
    assert variant["current_a"].to_list() == original["current_a"].to_list()
    assert variant["current_a"].min() == pytest.approx(-1.0)


def test_pec_older_suffix_labels(tmp_path: Path) -> None:
    """``Voltage_mV``, ``Current_mA``, ``Total_Time_Seconds``; energies as ``*_Capacity_mWh``."""
    header = (
        "Test,Cell,Rack,Shelf,Position,Step,Instruction Name,Cycle,Total_Time_Seconds,"
        "Real_Time,Voltage_mV,Current_mA,Charge_Capacity_mAh,Discharge_Capacity_mAh,"
        "Charge_Capacity_mWh,Discharge_Capacity_mWh"
    )
    rows = [
        "1,1,R,1,1,1,Charge,0,0,x,3400,500,0,0,0,0",
        "1,1,R,1,1,1,Charge,0,3600,x,4200,500,500,0,1900,0",
        "1,1,R,1,1,2,Discharge,0,3600,x,4050,-1000,500,0,1900,0",
        "1,1,R,1,1,2,Discharge,0,5364,x,3000,-1000,500,490,1900,1727.25",
    ]
    path = tmp_path / "old.csv"
    path.write_text("Test:,1\n" + header + "\n" + "\n".join(rows) + "\n")
    row = summarize_cycles(parse(path).series).row(0, named=True)
    assert (row["charge_mah"], row["discharge_mah"]) == pytest.approx((500.0, 490.0))
    assert row["charge_wh"] == pytest.approx(1.9) and row["end_time_s"] == pytest.approx(5364)


# --- Novonix -----------------------------------------------------------------------------------


def test_novonix_summary_and_protocol_in_metadata() -> None:
    data = parse(NOVONIX_REAL)
    meta = data.metadata
    assert meta["start_time"] == "2022-04-11T10:58:07"
    assert (meta["channel"], meta["cell_file"]) == ("01", "Test_Form-CH01-01.csv")
    assert meta["summary"]["Capacity (Ah)"] == "0.24"
    assert meta["protocol_steps"][0] == "Protocol: XC_Formation_Entree_Test.pro1"
    assert "quoted lines unwrapped" in meta["export"]
    frame = data.collect()
    assert frame["time_s"][1] == pytest.approx(0.0003111 * 3600)
    assert frame["voltage_v"][0] == pytest.approx(0.13736417)


def test_novonix_quoted_lines_read_like_plain_ones(tmp_path: Path) -> None:
    quoted = tmp_path / "quoted.csv"
    lines = NOVONIX.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line == "[Data]") + 1
    lines[start:] = [f'"{line}"' for line in lines[start:]]
    quoted.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    assert parse(quoted).collect().equals(parse(NOVONIX).collect())


def test_novonix_discharge_steps_are_negative_even_if_written_unsigned(tmp_path: Path) -> None:
    text = NOVONIX.read_text(encoding="utf-8").replace(",-1.0000000000,", ",1.0000000000,")
    unsigned = tmp_path / "unsigned.csv"
    unsigned.write_text(text, encoding="utf-8")
    assert parse(unsigned).collect().equals(parse(NOVONIX).collect())


# --- Landt -------------------------------------------------------------------------------------


def test_landt_workbook_and_csv_give_the_same_series() -> None:
    book, text = parse(LANDT_XLSX), parse(LANDT_CSV)
    assert book.metadata["sheets"] == ["Record-Tab"]
    assert book.collect().equals(text.collect())


def test_workbook_sheet_names_come_from_the_head_only() -> None:
    head = head_of(LANDT_XLSX)
    assert workbook_sheet_names(head) == ["Cycle-Tab", "Step-Tab", "Record-Tab"]
    assert workbook_sheet_names(head[:200]) == []  # member cut by the head: no guess
    assert workbook_sheet_names(b"PK\x03\x04" + b"\xff" * 40) == []


# --- sidecars ----------------------------------------------------------------------------------


def test_arbin_metadata_sidecar() -> None:
    parser = get_parser("arbin_metadata")
    side = parser.parse(ARBIN_META, ParseContext("FastCharge_000025_CH8_Metadata.csv"))
    assert isinstance(side, SidecarData)
    assert side.keys == ["fastcharge_000025_ch8"]
    assert side.content["fields"]["test_id"] == "153"
    assert side.content["fields"]["schedule_file_name"].endswith("4_4C.SDU")
    assert side.content["fields"]["databases"] == "ArbinResult_6,ArbinResult_7,"
    assert side.channel == "7"


def test_biologic_settings_sidecar() -> None:
    side = get_parser("biologic_mps").parse(MPS, ParseContext("run7.mps"))
    assert side.keys == ["run7_", "sample_"]  # the upload's name, then the one EC-Lab wrote
    assert side.content["device"] == "BCS-805"
    technique = side.content["techniques"][0]
    assert technique["name"] == "Modulo Bat"
    assert technique["parameters"]["ctrl_type"][:4] == ["CV", "Rest", "Loop", "CR"]
    assert technique["parameters"]["rec1_value_unit"][0] == "µA"
    assert key_matches("run7_c01", "run7_") and key_matches("run7_02_gcpl_c03", "run7_")
    assert not key_matches("run70_c01", "run7_")


def test_novonix_header_only_file_is_a_sidecar() -> None:
    assert get_parser("novonix_csv").sniff(head_of(NOVONIX_HEADER), NOVONIX_HEADER.name) == 0
    side = parse(NOVONIX_HEADER)
    assert isinstance(side, SidecarData)
    assert side.keys == ["synthetic_novonix"]  # own stem minus _header == the Cell: field
    assert side.channel == "04"
    assert side.content["protocol"] == "CC_3x.pro1"


def test_a_large_file_is_not_read_as_a_sidecar(tmp_path: Path) -> None:
    path = tmp_path / "big_Metadata.csv"
    path.write_bytes(ARBIN_META.read_bytes() + b"0" * (3 * 1024 * 1024))
    with pytest.raises(ParseError, match="too large for a sidecar"):
        get_parser("arbin_metadata").parse(path, ParseContext(path.name))


# --- .ndax zip bounds --------------------------------------------------------------------------


def test_real_ndax_files_pass_the_zip_bounds() -> None:
    for path in FIXTURES.glob("neware/*.ndax"):
        check_ndax_zip(path)


def _ndax(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_ndax_zip_bomb_is_refused_before_reading(tmp_path: Path) -> None:
    bomb = _ndax(tmp_path / "bomb.ndax", {"Step.xml": b"<x/>", "data.ndc": bytes(64 * 1024**2)})
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ParseError, match=r"ratio \d+:1") as info:
        get_parser("neware_nda").parse(bomb, ParseContext("bomb.ndax"))
    assert info.value.location == "zip member 'data.ndc'"
    assert info.value.describe("bomb.ndax").startswith("bomb.ndax at zip member 'data.ndc':")


def test_ndax_with_too_many_members_is_refused(tmp_path: Path) -> None:
    many = _ndax(
        tmp_path / "many.ndax",
        {"Step.xml": b"<x/>", **{f"m{i}.ndc": b"" for i in range(NDAX_MAX_MEMBERS)}},
    )
    with pytest.raises(ParseError, match="lists 257 members"):
        get_parser("neware_nda").parse(many, ParseContext(many.name))


def test_ndax_declaring_a_huge_member_is_refused(tmp_path: Path) -> None:
    """Declared sizes are what bound the reader: a lie about them is refused, not inflated."""
    path = _ndax(tmp_path / "liar.ndax", {"Step.xml": b"<x/>", "data.ndc": b"abc"})
    raw = bytearray(path.read_bytes())
    central = raw.rindex(b"PK\x01\x02")  # central directory entry of data.ndc
    struct.pack_into("<I", raw, central + 24, 3 * 1024**3)  # uncompressed size
    path.write_bytes(bytes(raw))
    with pytest.raises(ParseError, match="uncompressed") as info:
        check_ndax_zip(path)
    assert info.value.location == "zip member 'data.ndc'"


def test_ndax_that_is_not_a_zip_directory(tmp_path: Path) -> None:
    path = tmp_path / "cut.ndax"
    path.write_bytes(NDAX.read_bytes()[:5000])
    with pytest.raises(ParseError, match=r"broken \.ndax zip"):
        get_parser("neware_nda").parse(path, ParseContext(path.name))


def test_sidecar_and_per_cycle_results_are_json_safe() -> None:
    for relative in SIDECARS:
        side = parse(FIXTURES / relative)
        assert isinstance(side, SidecarData)
        json.dumps(side.content)
    buffer = io.StringIO()
    parse(BA_CYCLES).cycles.write_csv(buffer)  # type: ignore[union-attr]
    assert buffer.getvalue().startswith("cycle_index,cycle,")


# --- bad input: every new parser answers with ParseError -------------------------------------

NEW_PARSERS = sorted({v[0] for v in EXPECTED.values()} | set(SIDECARS.values()))


@pytest.mark.parametrize("parser_name", NEW_PARSERS)
def test_empty_and_random_files(parser_name: str, tmp_path: Path) -> None:
    import random

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ParseError, match="empty"):
        get_parser(parser_name).parse(empty, ParseContext(empty.name))
    noise = tmp_path / "noise.csv"
    noise.write_bytes(random.Random(11).randbytes(20_000))
    assert get_parser(parser_name).sniff(head_of(noise), noise.name) == 0.0
    with pytest.raises(ParseError) as info:
        get_parser(parser_name).parse(noise, ParseContext(noise.name))
    assert info.value.message and info.value.location


def test_layered_header_with_absurd_width_is_refused(tmp_path: Path) -> None:
    lines = LAYERED.read_text(encoding="latin-1").splitlines()
    lines[2] += "," * 5000
    wide = tmp_path / "wide.csv"
    wide.write_text("\n".join(lines[:40]) + "\n", encoding="latin-1")
    with pytest.raises(ParseError, match="columns across the three header lines"):
        get_parser("neware_csv_layered").parse(wide, ParseContext(wide.name))
