"""Cycler parsers on real instrument files and on broken ones. No Django, no database."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import cells.parsers
from cells.parsers import CANONICAL_SCHEMA, CyclerData, summarize_cycles
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError, Parser
from lims.ingestion.registry import all_parsers, detect_parser, get_parser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cycler"
MPR_GCPL = FIXTURES / "biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
MPR_SMALL = FIXTURES / "biologic/navani_00_test_04_MB_C01.mpr"
MPT_EIS = FIXTURES.parent / "eis/impedance_exampleDataBioLogic.mpt"
NDAX = FIXTURES / "neware/fastnda_nw4-120-1-6-53.ndax"
NDA = FIXTURES / "neware/newarenda_new_nda_file.nda"
NEWARE_CSV = FIXTURES / "neware/cellpy_neware_uio.csv"
ARBIN_CSV = FIXTURES / "arbin/bdtk_arbin_example.csv"
ARBIN_RES = FIXTURES / "arbin/navani_arbin_example.res"
ARBIN_XLSX = FIXTURES / "arbin/navani_bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx"
MACCOR_078 = FIXTURES / "maccor/beep_xTESLADIAG_000038con.078"
MACCOR_001 = FIXTURES / "maccor/bdtk_maccor_example.001"
BDF = FIXTURES / "bdf/bdf_sample.bdf.csv"

EXPECTED_PARSER = {
    "arbin/bdtk_arbin_example.csv": "arbin_csv",
    "arbin/navani_arbin_example.res": "arbin_res",
    "arbin/navani_bs542_004_gr_li_50ua_50mv_1v_191020_Channel_11.xlsx": "arbin_xlsx",
    "bdf/bdf_sample.bdf.csv": "bdf_csv",
    "biologic/bdf_GCPL-0.mpr": "biologic_mpr",
    "biologic/navani_00_test_04_MB_C01.mpr": "biologic_mpr",
    "biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr": "biologic_mpr",
    "maccor/bdtk_maccor_example.001": "maccor_txt",
    "maccor/beep_xTESLADIAG_000038con.078": "maccor_txt",
    "neware/cellpy_neware_uio.csv": "neware_csv",
    "neware/fastnda_nw4-120-1-6-53.ndax": "neware_nda",
    "neware/navani_test.ndax": "neware_nda",
    "neware/newarenda_new_nda_file.nda": "neware_nda",
}
CYCLER_PARSERS = {
    "arbin_csv",
    "arbin_res",
    "arbin_xlsx",
    "bdf_csv",
    "biologic_mpr",
    "biologic_mpt",
    "generic",
    "lims_csv",
    "maccor_txt",
    "neware_csv",
    "neware_nda",
}
SIMPLE_MAPPING = {
    "columns": {
        "time": {"quantity": "time_s", "unit": "s"},
        "volts": {"quantity": "voltage_v", "unit": "V"},
        "amps": {"quantity": "current_a", "unit": "A"},
    }
}


def head_of(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES)


def parse(path: Path, parser_name: str | None = None, **metadata: object) -> CyclerData:
    parser = get_parser(parser_name) if parser_name else detect_parser(head_of(path), path.name)
    assert parser is not None, f"nothing detected for {path.name}"
    return parser.parse(path, ParseContext(filename=path.name, metadata=dict(metadata)))


def ctx_for(path: Path, parser_name: str) -> ParseContext:
    metadata = {"column_mapping": SIMPLE_MAPPING} if parser_name == "generic" else {}
    return ParseContext(filename=path.name, metadata=metadata)


# --- registry and detection ------------------------------------------------------------------


def test_every_parser_is_registered_by_importing_the_package() -> None:
    parsers = {p.name: p for p in all_parsers() if p.kind == "cycler"}
    assert set(parsers) >= CYCLER_PARSERS
    for name in CYCLER_PARSERS:
        parser = parsers[name]
        assert isinstance(parser, Parser)
        assert parser.version.count(".") == 2
    assert {"summarize_cycles", "CyclerData", "CANONICAL_SCHEMA"} <= set(cells.parsers.__all__)


@pytest.mark.parametrize("relative", sorted(EXPECTED_PARSER))
def test_detection_uses_content_not_the_file_name(relative: str, tmp_path: Path) -> None:
    path = FIXTURES / relative
    assert detect_parser(head_of(path), path.name).name == EXPECTED_PARSER[relative]
    # Same bytes under a name that says nothing (or lies): content still decides.
    for name in ("upload.bin", "export.csv"):
        parser = detect_parser(head_of(path), name)
        assert parser is not None and parser.name == EXPECTED_PARSER[relative], name


def test_generic_parser_never_wins_a_sniff() -> None:
    generic = get_parser("generic")
    for relative in EXPECTED_PARSER:
        assert generic.sniff(head_of(FIXTURES / relative), relative) == 0.0


def test_no_cycler_parser_claims_an_impedance_mpt() -> None:
    """A spectrum is never a cycling test (cells.eis reads it; tests/cells/test_eis_*)."""
    assert get_parser("biologic_mpt").sniff(head_of(MPT_EIS), MPT_EIS.name) == 0


# --- canonical contract -----------------------------------------------------------------------


@pytest.mark.parametrize("relative", sorted(EXPECTED_PARSER))
def test_canonical_columns_types_and_json_safe_metadata(relative: str) -> None:
    data = parse(FIXTURES / relative)
    assert isinstance(data.series, pl.LazyFrame)
    frame = data.collect()
    assert dict(frame.schema) == CANONICAL_SCHEMA
    assert frame.height > 0
    assert frame["time_s"].null_count() == 0
    assert frame["voltage_v"].null_count() == 0
    assert data.vendor in {"biologic", "neware", "arbin", "maccor", "bdf", "generic"}
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in data.conventions.items())
    assert "current_sign" in data.conventions
    json.dumps(data.metadata)
    assert all(isinstance(w, str) for w in data.warnings)
    for column in ("charge_capacity_ah", "discharge_capacity_ah"):
        assert (frame[column].drop_nulls() >= 0).all()


def _charge_discharge_consistent(frame: pl.DataFrame) -> None:
    """Capacity rises only with the current of the matching sign (POSITIVE = CHARGE)."""
    rising_charge = frame.filter(pl.col("charge_capacity_ah").diff() > 1e-9)
    rising_discharge = frame.filter(pl.col("discharge_capacity_ah").diff() > 1e-9)
    assert rising_charge.height > 0 and rising_discharge.height > 0
    assert (rising_charge["current_a"] > 0).mean() > 0.99
    assert (rising_discharge["current_a"] < 0).mean() > 0.99


@pytest.mark.parametrize(
    "path", [MPR_GCPL, NDAX, NDA, NEWARE_CSV, ARBIN_CSV, ARBIN_RES, ARBIN_XLSX, MACCOR_078]
)
def test_current_is_positive_on_charge(path: Path) -> None:
    _charge_discharge_consistent(parse(path).collect())


# --- BioLogic ---------------------------------------------------------------------------------


def test_mpr_without_current_column_derives_it_from_power() -> None:
    data = parse(MPR_GCPL)
    assert "P/W" in data.conventions["current"]
    frame = data.collect()
    assert frame["current_a"].abs().max() == pytest.approx(0.0888e-3, rel=0.01)
    assert frame["cycle"].unique().sort().to_list() == list(range(7))
    assert frame["step"].unique().sort().to_list() == [0, 1, 2, 3]  # Ns as written
    assert data.warnings == []  # the ox/red flag agrees with the derived sign
    assert data.metadata["start_time"].startswith("2020-10-26T12:49:58")


def test_mpr_with_current_column_converts_ma_and_mah() -> None:
    data = parse(MPR_SMALL)
    frame = data.collect()
    assert data.conventions["current"] == "'I/mA'"
    assert frame["current_a"].max() < 0  # reduction of the working electrode
    assert frame["current_a"][0] == pytest.approx(-0.04469791e-3, rel=1e-6)
    assert frame["discharge_capacity_ah"].max() == pytest.approx(1.7953e-8, rel=1e-4)
    assert frame["time_s"][0] == pytest.approx(16.1674, rel=1e-4)  # EC-Lab time as written


def _write_mpt(path: Path, frame: pl.DataFrame, *, decimal_comma: bool) -> None:
    """An EC-Lab style .mpt (latin-1, CRLF, header block, trailing tab) from canonical data."""
    columns = [
        "mode",
        "ox/red",
        "time/s",
        "Ewe/V",
        "I/mA",
        "cycle number",
        "Q charge/discharge/mA.h",
        "Temperature/°C",
        "Ns",
    ]
    header = [
        "EC-Lab ASCII FILE",
        "Nb header lines : 6",
        "",
        "Galvanostatic Cycling with Potential Limitation",
        "Run on channel : 3 (SN 1234)",
        "\t".join(columns) + "\t",
    ]
    q_mah = (frame["charge_capacity_ah"] - frame["discharge_capacity_ah"]) * 1000
    table = pl.DataFrame(
        {
            "mode": pl.Series([1] * frame.height),
            "ox": (frame["current_a"] > 0).cast(pl.Int8),
            "t": frame["time_s"],
            "e": frame["voltage_v"],
            "i": frame["current_a"].fill_null(0.0) * 1000,
            "c": frame["cycle"].cast(pl.Float64),
            "q": q_mah,
            "temp": pl.Series([25.5] * frame.height),
            "ns": frame["step"],
        }
    )
    lines = []
    for row in table.iter_rows():
        text = "\t".join(f"{v:.9E}" if isinstance(v, float) else str(v) for v in row)
        lines.append(text.replace(".", ",") if decimal_comma else text)
    body = "\r\n".join(header + lines) + "\r\n"
    path.write_bytes(body.encode("latin-1"))


@pytest.mark.parametrize("decimal_comma", [True, False])
def test_mpt_text_export_matches_the_mpr_it_came_from(tmp_path: Path, decimal_comma: bool) -> None:
    mpr = parse(MPR_GCPL)
    path = tmp_path / "gcpl.mpt"
    _write_mpt(path, mpr.collect(), decimal_comma=decimal_comma)
    assert detect_parser(head_of(path), path.name).name == "biologic_mpt"
    mpt = parse(path)
    assert mpt.metadata["decimal"] == ("," if decimal_comma else ".")
    assert mpt.metadata["channel"] == "3 (SN 1234)"
    assert mpt.conventions["cycle"].startswith("'cycle number'")
    frame = mpt.collect()
    assert frame["temperature_c"].unique().to_list() == [25.5]
    expected = summarize_cycles(mpr.series).select("cycle", "charge_mah", "discharge_mah", "rows")
    got = summarize_cycles(mpt.series).select("cycle", "charge_mah", "discharge_mah", "rows")
    assert got["cycle"].to_list() == expected["cycle"].to_list()
    assert got["rows"].to_list() == expected["rows"].to_list()
    for column in ("charge_mah", "discharge_mah"):
        assert got[column].to_list() == pytest.approx(expected[column].to_list(), rel=1e-6)


def test_cycler_mpt_reader_refuses_an_impedance_export() -> None:
    with pytest.raises(ParseError, match=r"impedance spectrum.*kind=eis") as caught:
        parse(MPT_EIS, "biologic_mpt")
    assert caught.value.location == "line 61"


# --- Neware -----------------------------------------------------------------------------------


def test_nda_keeps_the_cycle_written_in_the_file() -> None:
    import fastnda

    renumbered = fastnda.read(NDA)  # fastnda's default numbering starts a cycle at charge
    assert renumbered["cycle_count"].n_unique() == 2
    data = parse(NDA)
    assert data.collect()["cycle"].unique().to_list() == [1]
    assert "raw" in data.conventions["cycle"]
    assert data.metadata["nda_version"] == 29
    assert data.metadata["start_time"] == "2020-03-25T11:16:21"
    assert data.metadata["software_version"] == "BTS 7.6.0.1408(2018.08.27)"


def test_ndax_metadata_and_steps() -> None:
    data = parse(NDAX)
    frame = data.collect()
    assert frame["cycle"].min() == 1 and frame["cycle"].max() == 150
    assert set(frame["step"].unique().to_list()) <= set(range(1, 10))
    assert "Step" in data.metadata  # the step program stored in the .ndax
    assert data.metadata["start_time"] == "2025-04-07T12:44:13"
    assert data.metadata["channel"] == "120-0-6"
    assert data.metadata["barcode"] == "250403_kigr_gen9_06"
    assert frame["charge_energy_wh"].max() > 0


def test_neware_csv_clock_times_past_24_hours() -> None:
    frame = parse(NEWARE_CSV).collect()
    assert frame["time_s"][-1] == 144 * 3600 + 2 * 60 + 18  # "144:02:18"
    assert frame["time_s"].is_sorted()
    raw = pl.read_csv(NEWARE_CSV, columns=["Current(A)", "Step Type"], infer_schema_length=None)
    assert frame["current_a"].to_list() == raw["Current(A)"].to_list()  # already signed
    assert (frame.filter(raw["Step Type"] == "CC DChg")["current_a"] < 0).all()


# --- Arbin ------------------------------------------------------------------------------------


def test_arbin_res_metadata() -> None:
    data = parse(ARBIN_RES)
    assert data.metadata["reader"] == "access_parser"
    assert data.metadata["start_time"].startswith("2023-07-24T18:50")
    assert data.metadata["channel"] == 12
    assert data.metadata["software_version"] == "Results File 5.23"


def test_arbin_res_without_access_parser_or_mdbtools_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cells.parsers import arbin

    def broken(path: Path) -> tuple[pl.DataFrame, dict]:
        raise ParseError("access_parser cannot read the database", location="table X")

    monkeypatch.setattr(arbin, "_read_with_access_parser", broken)
    monkeypatch.setattr(arbin.shutil, "which", lambda name: None)
    with pytest.raises(ParseError, match="mdbtools") as info:
        parse(ARBIN_RES)
    assert info.value.location == "table X"


def test_arbin_res_falls_back_to_mdb_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cells.parsers import arbin

    csv = tmp_path / "table.csv"
    pl.read_csv(ARBIN_CSV).write_csv(csv)  # what mdb-export would print for the table
    fake = tmp_path / "mdb-export"
    fake.write_text(f'#!/bin/sh\n[ "$2" = "Channel_Normal_Table" ] && cat "{csv}"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)

    def broken(path: Path) -> tuple[pl.DataFrame, dict]:
        raise ParseError("unsupported page layout", location="table Channel_Normal_Table")

    monkeypatch.setattr(arbin, "_read_with_access_parser", broken)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    data = parse(ARBIN_RES)
    assert data.metadata["reader"] == "mdb-export"
    assert any("mdb-export" in w for w in data.warnings)
    assert data.collect().height == 2142


def test_arbin_xlsx_reads_channel_sheets_and_global_info() -> None:
    data = parse(ARBIN_XLSX)
    assert data.metadata["sheets"] == ["Channel_11_1"]
    assert data.metadata["start_time"] == "2020-10-19T11:33:31"
    assert data.metadata["channel"] == "11"


# --- Maccor -----------------------------------------------------------------------------------


def test_maccor_signed_export_and_state_letters() -> None:
    frame = parse(MACCOR_078).collect()
    raw = pl.read_csv(MACCOR_078, separator="\t", skip_rows=1, infer_schema_length=None)
    discharge = raw["State"] == "D"
    assert (frame.filter(discharge)["current_a"] < 0).all()
    assert (frame.filter(raw["State"] == "C")["current_a"] > 0).all()
    assert (frame.filter(~discharge)["discharge_capacity_ah"] == 0).all()
    assert frame["time_s"][3] == pytest.approx(5.57)  # Test (Sec)


def test_maccor_minutes() -> None:
    frame = parse(MACCOR_001).collect()
    assert frame["time_s"][-1] == pytest.approx(1.1667 * 60)
    assert frame["cycle"].to_list() == [0] * 8


def test_maccor_unsigned_current_and_day_clock_times(tmp_path: Path) -> None:
    header = (
        "Rec#\tCyc#\tStep\tTestTime\tStepTime\tAmp-hr\tWatt-hr\tAmps\tVolts\tState\tES\tDPt Time"
    )
    rows = [
        "1\t1\t1\t0d 00:00:00.00\t0d 00:00:00.00\t0,0\t0,0\t0,0\t3,5\tR\t0\t03/31/2016 16:05:31",
        "2\t1\t2\t0d 23:59:59.50\t0d 00:00:10.00\t0,1\t0,4\t1,5\t3,9\tC\t0\t04/01/2016 16:05:31",
        "3\t1\t3\t1d 01:00:00.00\t0d 00:00:10.00\t0,05\t0,2\t1,5\t3,4\tD\t0\t04/01/2016 17:05:31",
        "4\t1\t3\t1d 01:00:01.00\t0d 00:00:11.00\t0,06\t0,21\t1,5\t3,3\tD\t133\t"
        "04/01/2016 17:05:32",
    ]
    path = tmp_path / "CELL7.015"
    path.write_bytes(("\r\n".join([header, *rows]) + "\r\n").encode("cp1252"))
    data = parse(path)
    frame = data.collect()
    assert frame["time_s"].to_list() == [0.0, 86399.5, 90000.0, 90001.0]
    assert frame["current_a"].to_list() == [0.0, 1.5, -1.5, -1.5]
    assert frame["charge_capacity_ah"].to_list() == pytest.approx([0.0, 0.1, 0.0, 0.0])
    assert frame["discharge_capacity_ah"].to_list() == pytest.approx([0.0, 0.0, 0.05, 0.06])
    assert data.metadata["decimal"] == ","


# --- BDF, canonical CSV and the generic mapping ---------------------------------------------


def test_bdf_machine_names_and_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "cell.bdf.csv"
    path.write_text(
        "test_time_millisecond,voltage_volt,current_ampere,cycle_count,"
        "charging_capacity_ampere_hour,discharging_capacity_ampere_hour\n"
        "0,3.6,0.5,1,0.0,0.0\n1500,3.7,0.5,1,0.0002,0.0\n3000,3.5,-0.5,1,0.0002,0.0001\n"
    )
    data = parse(path)
    assert data.vendor == "bdf"
    frame = data.collect()
    assert frame["time_s"].to_list() == [0.0, 1.5, 3.0]
    assert frame["step"].to_list() == [1, 1, 2]  # derived: the file has no step column
    assert "derived" in data.conventions["step"]


def test_lims_canonical_csv_is_sniffed_exactly(tmp_path: Path) -> None:
    path = tmp_path / "whatever.txt"
    path.write_text(
        "time_s,cycle,step,current_a,voltage_v,charge_capacity_ah,discharge_capacity_ah\n"
        "0,1,1,0.1,3.0,0.0,0.0\n1,1,1,0.1,3.1,0.001,0.0\n"
    )
    assert get_parser("lims_csv").sniff(head_of(path), path.name) == 0.99
    assert detect_parser(head_of(path), path.name).name == "lims_csv"
    frame = parse(path).collect()
    assert frame["charge_capacity_ah"].to_list() == [0.0, 0.001]
    assert frame["temperature_c"].null_count() == 2


def _mapping(**columns: dict) -> dict:
    return {"columns": columns}


def test_generic_mapping_units_signs_and_options(tmp_path: Path) -> None:
    preamble = "Instrument: home-built\r\nOperator: Zoë\r\n"
    header = "Zeit [h];Spannung (mV);Strom [µA];Ladung (mAh);Temp (°C);Zyklus\r\n"
    rows = "0,5;3500;-200;0,10;25,0;1\r\n1,0;3600;-200;0,20;25,5;1\r\n"
    path = tmp_path / "lab.csv"
    path.write_bytes((preamble + header + rows).encode("cp1252"))
    mapping = {
        "columns": {
            "Zeit [h]": {"quantity": "time_s", "unit": "h"},
            "Spannung (mV)": {"quantity": "voltage_v", "unit": "mV"},
            "Strom [µA]": {"quantity": "current_a", "unit": "uA", "sign": -1},
            "Ladung (mAh)": {"quantity": "charge_capacity_ah", "unit": "mAh"},
            "Temp (°C)": {"quantity": "temperature_c", "unit": "degC"},
            "Zyklus": {"quantity": "cycle"},
        },
        "delimiter": ";",
        "skip_rows": 2,
        "decimal": ",",
    }
    data = parse(path, "generic", column_mapping=mapping)
    assert data.vendor == "generic"
    frame = data.collect()
    assert frame["time_s"].to_list() == [1800.0, 3600.0]
    assert frame["voltage_v"].to_list() == [3.5, 3.6]
    assert frame["current_a"].to_list() == pytest.approx([2e-4, 2e-4])  # sign flipped
    assert frame["charge_capacity_ah"].to_list() == pytest.approx([1e-4, 2e-4])
    assert frame["temperature_c"].to_list() == [25.0, 25.5]
    assert frame["cycle"].to_list() == [1, 1]
    assert data.metadata["encoding"] != "utf-8"


def test_generic_mapping_matches_the_vendor_parser(tmp_path: Path) -> None:
    mapping = _mapping(
        **{
            "Cumulative Time": {"quantity": "time_s", "unit": "s"},
            "Cycle Index": {"quantity": "cycle"},
            "Current(A)": {"quantity": "current_a", "unit": "A"},
            "Voltage(V)": {"quantity": "voltage_v", "unit": "V"},
            "Chg. Cap.(Ah)": {"quantity": "charge_capacity_ah", "unit": "Ah"},
            "DChg. Cap.(Ah)": {"quantity": "discharge_capacity_ah", "unit": "Ah"},
        }
    )
    generic = summarize_cycles(parse(NEWARE_CSV, "generic", column_mapping=mapping).series)
    vendor = summarize_cycles(parse(NEWARE_CSV).series)
    assert generic["charge_mah"].to_list() == pytest.approx(vendor["charge_mah"].to_list())
    assert generic["discharge_mah"].to_list() == pytest.approx(vendor["discharge_mah"].to_list())


def test_generic_single_capacity_column_split_by_current_and_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "landt.txt"
    path.write_text(
        "Date\tI/mA\tV\tCap/mAh\n"
        "2024-03-01 10:00:00\t1.0\t3.0\t0.0\n"
        "2024-03-01 10:30:00\t1.0\t3.5\t0.5\n"
        "2024-03-01 11:00:00\t-1.0\t3.2\t0.2\n"
    )
    mapping = _mapping(
        Date={"quantity": "time_s", "unit": "datetime"},
        **{
            "I/mA": {"quantity": "current_a", "unit": "mA"},
            "V": {"quantity": "voltage_v", "unit": "V"},
            "Cap/mAh": {"quantity": "capacity_ah", "unit": "mAh"},
        },
    )
    frame = parse(path, "generic", column_mapping=mapping).collect()
    assert frame["time_s"].to_list() == [0.0, 1800.0, 3600.0]
    assert frame["charge_capacity_ah"].to_list() == pytest.approx([0.0, 5e-4, 0.0])
    assert frame["discharge_capacity_ah"].to_list() == pytest.approx([0.0, 0.0, 2e-4])


def test_generic_xlsx_sheet() -> None:
    mapping = _mapping(
        **{
            "Test_Time(s)": {"quantity": "time_s", "unit": "s"},
            "Current(A)": {"quantity": "current_a", "unit": "A"},
            "Voltage(V)": {"quantity": "voltage_v", "unit": "V"},
            "Discharge_Capacity(Ah)": {"quantity": "discharge_capacity_ah", "unit": "Ah"},
        }
    )
    mapping["sheet"] = "Channel_11_1"
    data = parse(ARBIN_XLSX, "generic", column_mapping=mapping)
    assert data.metadata["sheet"] == "Channel_11_1"
    assert data.collect()["discharge_capacity_ah"].max() == pytest.approx(0.011055, rel=1e-3)


@pytest.mark.parametrize(
    ("mapping", "message", "location"),
    [
        (None, "needs a saved column mapping", "column_mapping"),
        ({"columns": {"Voltage": {"quantity": "volts"}}}, "unknown quantity", "Voltage"),
        ({"columns": {"Voltage": {"quantity": "voltage_v", "unit": "mAh"}}}, "does not fit", "V"),
        ({"columns": {"Current": {"quantity": "current_a", "sign": 2}}}, "sign", "Current"),
        ({"columns": {"Nope": {"quantity": "voltage_v"}}}, "not in the header", "line 1"),
        (
            {
                "columns": {
                    "Voltage": {"quantity": "voltage_v"},
                    "Current": {"quantity": "voltage_v"},
                }
            },
            "mapped twice",
            "Current",
        ),
    ],
)
def test_generic_mapping_errors_say_what_and_where(
    mapping: dict | None, message: str, location: str
) -> None:
    metadata = {} if mapping is None else {"column_mapping": mapping}
    with pytest.raises(ParseError, match=message) as info:
        get_parser("generic").parse(ARBIN_CSV, ParseContext(ARBIN_CSV.name, metadata=metadata))
    assert location in (info.value.location or "")


# --- bad input: every parser answers with ParseError ----------------------------------------


@pytest.mark.parametrize("parser_name", sorted(CYCLER_PARSERS))
def test_empty_file(parser_name: str, tmp_path: Path) -> None:
    path = tmp_path / "empty.dat"
    path.write_bytes(b"")
    with pytest.raises(ParseError, match="empty"):
        get_parser(parser_name).parse(path, ctx_for(path, parser_name))


@pytest.mark.parametrize("parser_name", sorted(CYCLER_PARSERS))
def test_random_bytes(parser_name: str, tmp_path: Path) -> None:
    path = tmp_path / "noise.csv"
    path.write_bytes(random.Random(7).randbytes(20_000))
    assert detect_parser(head_of(path), path.name) is None
    with pytest.raises(ParseError) as info:
        get_parser(parser_name).parse(path, ctx_for(path, parser_name))
    assert info.value.message and info.value.location


@pytest.mark.parametrize(
    ("source", "parser_name", "size"),
    [
        (MPR_GCPL, "biologic_mpr", 1000),
        (MPR_GCPL, "biologic_mpr", 200_000),
        (NDAX, "neware_nda", 1000),
        (NDA, "neware_nda", 1000),
        (ARBIN_RES, "arbin_res", 1000),
        (ARBIN_XLSX, "arbin_xlsx", 1000),
    ],
)
def test_truncated_binary_files(source: Path, parser_name: str, size: int, tmp_path: Path) -> None:
    path = tmp_path / source.name
    path.write_bytes(source.read_bytes()[:size])
    with pytest.raises(ParseError) as info:
        get_parser(parser_name).parse(path, ParseContext(path.name))
    assert info.value.location
    assert info.value.describe(path.name).startswith(f"{path.name} at ")


def test_res_cut_at_any_length_is_refused_not_read_partly(tmp_path: Path) -> None:
    # access_parser fails on this cut and mdb-export would return the rows it can reach.
    path = tmp_path / "cut.res"
    path.write_bytes(ARBIN_RES.read_bytes()[:300_000])
    with pytest.raises(ParseError, match="truncated database") as info:
        get_parser("arbin_res").parse(path, ParseContext(path.name))
    assert info.value.location == "byte 299008"


def test_truncated_mpr_reports_cause(tmp_path: Path) -> None:
    path = tmp_path / "cut.mpr"
    path.write_bytes(MPR_GCPL.read_bytes()[:1000])
    with pytest.raises(ParseError, match="galvani cannot read") as info:
        get_parser("biologic_mpr").parse(path, ParseContext(path.name))
    assert info.value.__cause__ is not None  # the library's own exception is chained
    path.write_bytes(MPR_GCPL.read_bytes()[:200_000])
    with pytest.raises(ParseError) as info:
        get_parser("biologic_mpr").parse(path, ParseContext(path.name))
    assert info.value.location == "VMP data module"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le"])
def test_utf16_csv_parses_like_the_original(encoding: str, tmp_path: Path) -> None:
    path = tmp_path / "neware_utf16.csv"
    path.write_bytes(NEWARE_CSV.read_text("utf-8").encode(encoding))  # utf-16 adds a BOM
    assert detect_parser(head_of(path), path.name).name == "neware_csv"
    data = parse(path)
    assert data.metadata["encoding"].startswith("utf-16")
    assert data.collect().equals(parse(NEWARE_CSV).collect())


CHINESE_LABELS = {
    "DataPoint": "数据序号",
    "Cycle Index": "循环序号",
    "Step Index": "工步序号",
    "Step Type": "工步类型",
    "Time": "时间",
    "Cumulative Time": "总时间",
    "Current(A)": "电流(A)",
    "Voltage(V)": "电压(V)",
    "Chg. Cap.(Ah)": "充电容量(Ah)",
    "DChg. Cap.(Ah)": "放电容量(Ah)",
    "Chg. Energy(Wh)": "充电能量(Wh)",
    "DChg. Energy(Wh)": "放电能量(Wh)",
}


def test_chinese_locale_neware_export_in_gb18030(tmp_path: Path) -> None:
    header, body = NEWARE_CSV.read_text("utf-8").split("\n", 1)
    labels = [CHINESE_LABELS.get(label, label) for label in header.split(",")]
    body = body.replace(",CC DChg,", ",恒流放电,").replace(",Rest,", ",搁置,")
    path = tmp_path / "export.csv"
    path.write_bytes((",".join(labels) + "\n" + body).encode("gb18030"))
    assert detect_parser(head_of(path), path.name).name == "neware_csv"
    data = parse(path)
    assert data.metadata["encoding"] == "gb18030"
    assert data.collect().equals(parse(NEWARE_CSV).collect())


def test_latin1_header_is_decoded_not_assumed_utf8(tmp_path: Path) -> None:
    text = ARBIN_CSV.read_text("utf-8").replace("Temperature", "Temperature (°C)", 1)
    path = tmp_path / "arbin_latin1.csv"
    path.write_bytes(text.encode("latin-1"))
    data = parse(path)
    assert data.metadata["encoding"] != "utf-8"
    assert "Temperature (°C)" in data.metadata["source_columns"]
    assert data.collect()["temperature_c"][0] == pytest.approx(29.18314)


def test_binary_bytes_inside_a_text_export(tmp_path: Path) -> None:
    path = tmp_path / "arbin.csv"
    data = ARBIN_CSV.read_bytes()
    path.write_bytes(data[:500] + b"\x00\x01\x02" + data[500:])
    with pytest.raises(ParseError, match="binary") as info:
        get_parser("arbin_csv").parse(path, ParseContext(path.name))
    assert info.value.location == "byte offset 500"


def test_header_only_export(tmp_path: Path) -> None:
    path = tmp_path / "aborted.csv"
    path.write_bytes(ARBIN_CSV.read_bytes().split(b"\n")[0] + b"\n")
    with pytest.raises(ParseError, match="no data rows") as info:
        get_parser("arbin_csv").parse(path, ParseContext(path.name))
    assert info.value.location == "line 2"


def test_text_export_cut_mid_line_warns(tmp_path: Path) -> None:
    path = tmp_path / "cut.csv"
    data = NEWARE_CSV.read_bytes()
    path.write_bytes(data[: data.rfind(b",Close") - 40])
    parsed = parse(path)
    assert any("truncated" in w for w in parsed.warnings)
    assert parsed.collect().height == 9065


def test_garbage_value_reports_the_line(tmp_path: Path) -> None:
    lines = ARBIN_CSV.read_text().splitlines()
    fields = lines[1500].split(",")
    fields[7] = "3.3x"  # Voltage
    lines[1500] = ",".join(fields)
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ParseError, match=r"3\.3x") as info:
        get_parser("arbin_csv").parse(path, ParseContext(path.name))
    assert "line" in (info.value.location or "")


def test_late_garbage_in_a_streamed_file_surfaces_as_parse_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lims.ingestion import text as textio

    rows = ["time_s,current_a,voltage_v"] + [f"{i},0.1,3.5" for i in range(1_500_000)]
    rows[-10] = "1499990,0.1,oops"
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")  # 22 MB: parse() reads only its first chunk
    monkeypatch.setattr(textio, "EAGER_LIMIT_BYTES", 1024)
    data = parse(path)  # only the head is validated inside parse()
    with pytest.raises(ParseError, match="oops") as info:
        data.collect()
    assert "byte offset" in (info.value.location or "")
    with pytest.raises(ParseError):
        summarize_cycles(data.series)


def test_early_garbage_in_a_large_file_fails_in_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Large files are parsed lazily, but their head is read at once: a bad file fails its job
    before anything is stored, and only the head's bytes are read for that."""
    from lims.ingestion import text as textio

    rows = ["time_s,current_a,voltage_v"] + [f"{i},0.1,3.5" for i in range(200_000)]
    rows[6] = "5,0.1,oops"
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n")
    monkeypatch.setattr(textio, "EAGER_LIMIT_BYTES", 1024)
    with pytest.raises(ParseError, match="oops"):
        parse(path)


@pytest.mark.parametrize("parser_name", sorted(CYCLER_PARSERS))
def test_unreadable_path_is_a_parse_error(parser_name: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.csv"
    with pytest.raises(ParseError) as info:
        get_parser(parser_name).parse(missing, ctx_for(missing, parser_name))
    assert info.value.location


def test_neware_file_without_its_extension(tmp_path: Path) -> None:
    path = tmp_path / "upload_1234"
    shutil.copy(NDA, path)
    data = parse(path)
    assert data.vendor == "neware" and data.collect().height == 439
    first = summarize_cycles(data.series).row(0, named=True)
    assert np.isclose(first["discharge_mah"], 0.0070745, rtol=1e-3)
