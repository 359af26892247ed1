"""One BioLogic run, two exports: the binary ``.mpr`` and the EC-Lab ``.mpt`` text export of it.

The ``.mpt`` is written here from the ``.mpr``'s own record array (galvani), the way EC-Lab's
"Export as text" writes it: ``EC-Lab ASCII FILE``, ``Nb header lines : N`` counting every line
up to the column line, a header block, tab-separated columns under EC-Lab's names (the flag
columns ``mode``, ``ox/red``, ``error``, ``control changes``, ``Ns changes``, ``counter inc.``,
then ``Ns``, ``time/s``, ``control/V/mA``, ``Ewe/V``, ``I/mA``, ``dq/mA.h``, ``(Q-Qo)/mA.h``,
``I Range``, ``Q charge/discharge/mA.h``, ``half cycle``, ``cycle number``...), a trailing tab
on the column line, latin-1, CRLF, numbers as ``1.2345678E-001`` (float32 columns with 8
significant digits, float64 with 16) or with decimal commas. The ``.mpr`` has no
``cycle number``; EC-Lab's counter ("Charge/Discharge alternance") is written as
``half cycle // 2``, the rule the ``.mpr`` reader uses. Both must give the same cycle table.
Pure polars + numpy: no Django, no database.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from galvani.BioLogic import MPRfile
from polars.testing import assert_frame_equal

from cells.parsers import CyclerData, summarize_cycles
from cells.parsers.biologic import BiologicMptParser
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError
from lims.ingestion.registry import detect_parser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cycler" / "biologic"
MODULO_BAT = FIXTURES / "navani_00_test_04_MB_C01.mpr"
GCPL = FIXTURES / "navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"
GCPL_SHORT = FIXTURES / "bdf_GCPL-0.mpr"
FLAGS = ("mode", "ox/red", "error", "control changes", "Ns changes", "counter inc.")
INTEGER_COLUMNS = {"Ns", "I Range", "half cycle"}


def parse(path: Path) -> tuple[str, CyclerData]:
    with path.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    parser = detect_parser(head, path.name, kind="cycler")
    assert parser is not None
    return parser.name, parser.parse(path, ParseContext(filename=path.name, size=len(head)))


def eclab_number(value: float, significant: int) -> str:
    """EC-Lab's scientific notation: ``3.8998979E-001`` (three exponent digits)."""
    if value == 0 or not math.isfinite(value):
        return f"{0.0:.{significant - 1}f}E+000" if value == 0 else str(value)
    exponent = math.floor(math.log10(abs(value)))
    mantissa = value / 10**exponent
    text = f"{mantissa:.{significant - 1}f}"
    if text.lstrip("-").startswith("10"):  # rounding carried into the next decade
        exponent += 1
        text = f"{value / 10**exponent:.{significant - 1}f}"
    return f"{text}E{exponent:+04d}"


def mpt_columns(
    path: Path, *, cycle_number: bool = True, half_cycle: bool = True
) -> dict[str, np.ndarray]:
    """The .mpr's columns under EC-Lab's export names, flags first, as EC-Lab orders them."""
    mpr = MPRfile(str(path))
    data = mpr.data
    columns: dict[str, np.ndarray] = {}
    for flag in FLAGS:
        if flag in mpr.flags_dict:
            columns[flag] = np.asarray(mpr.get_flag(flag)).astype(np.int64)
    for name in data.dtype.names:
        if name == "flags" or (name == "half cycle" and not half_cycle):
            continue
        columns[name] = np.asarray(data[name])
    if cycle_number:
        columns["cycle number"] = (np.asarray(data["half cycle"]) // 2).astype(np.float64)
    return columns


def write_mpt(
    path: Path,
    columns: dict[str, np.ndarray],
    *,
    technique: str,
    decimal_comma: bool = False,
    full_precision: bool = False,
) -> None:
    names = list(columns)
    header = [
        "EC-Lab ASCII FILE",
        "Nb header lines : {n}",
        "",
        technique,
        "",
        "Run on channel : 1 (SN 20139)",
        "User : ",
        "Ewe ctrl range : min = 0,00 V, max = 5,00 V"
        if decimal_comma
        else "Ewe ctrl range : min = 0.00 V, max = 5.00 V",
        "Acquisition started on : 12/08/2023 09:49:52.346",
        "Device : MPG-2 (SN 0112)",
        "EC-Lab for windows v11.50 (software)",
        "Electrode material : µ-NMC",  # a latin-1 byte in the header block
        "\t".join(names) + "\t",
    ]
    header[1] = header[1].format(n=len(header))

    def cell(name: str, value: object) -> str:
        if name in FLAGS or name in INTEGER_COLUMNS:
            return str(int(value))  # type: ignore[call-overload]
        number = float(value)  # type: ignore[arg-type]
        if full_precision:
            text = repr(number)  # round-trips the binary value exactly
        elif name == "cycle number":
            text = eclab_number(number, 16)
        else:
            wide = columns[name].dtype == np.float64
            text = eclab_number(number, 16 if wide else 8)
        return text.replace(".", ",") if decimal_comma else text

    height = len(columns[names[0]])
    lines = header + [
        "\t".join(cell(name, columns[name][row]) for name in names) for row in range(height)
    ]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("latin-1"))


def summaries(mpr: Path, mpt: Path) -> tuple[pl.DataFrame, pl.DataFrame, CyclerData]:
    name_mpr, from_mpr = parse(mpr)
    name_mpt, from_mpt = parse(mpt)
    assert (name_mpr, name_mpt) == ("biologic_mpr", "biologic_mpt")
    return summarize_cycles(from_mpr.series), summarize_cycles(from_mpt.series), from_mpt


@pytest.mark.parametrize(
    ("mpr", "technique"),
    [
        (MODULO_BAT, "Modulo Bat"),
        (GCPL, "Galvanostatic Cycling with Potential Limitation"),
        (GCPL_SHORT, "Galvanostatic Cycling with Potential Limitation"),
    ],
    ids=["modulo-bat", "gcpl-5-cycles", "gcpl-4-rows"],
)
@pytest.mark.parametrize("decimal_comma", [False, True], ids=["point", "comma"])
def test_mpr_and_its_mpt_export_give_the_same_cycle_table(
    tmp_path: Path, mpr: Path, technique: str, decimal_comma: bool
) -> None:
    columns = mpt_columns(mpr)
    # Values that round-trip the binary exactly: the two readers must agree bit for bit.
    exact = tmp_path / "exact.mpt"
    write_mpt(exact, columns, technique=technique, decimal_comma=decimal_comma, full_precision=True)
    expected, got, data = summaries(mpr, exact)
    assert data.metadata["decimal"] == ("," if decimal_comma else ".")
    assert data.conventions["cycle"].startswith("'cycle number'")
    assert_frame_equal(got, expected)
    # EC-Lab's own precision (8 significant digits for float32 columns): equal to that precision.
    printed = tmp_path / "printed.mpt"
    write_mpt(printed, columns, technique=technique, decimal_comma=decimal_comma)
    expected, got, data = summaries(mpr, printed)
    assert data.metadata["technique"] == technique
    assert got["cycle"].to_list() == expected["cycle"].to_list()
    assert got["rows"].to_list() == expected["rows"].to_list()
    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-6, abs_tol=1e-12)


def test_modulo_bat_cycles_come_from_the_files_counter() -> None:
    """The Modulo Bat file is one half cycle of a discharge (EC-Lab's counter stays at 0)."""
    _, data = parse(MODULO_BAT)
    summary = summarize_cycles(data.series)
    assert data.conventions["cycle"].startswith("half cycle // 2")
    assert summary["cycle"].to_list() == [0]
    assert summary["rows"].to_list() == [1501]
    assert summary["charge_mah"].to_list() == [0.0]
    assert summary["discharge_mah"][0] == pytest.approx(1.7953e-05, rel=5e-3)


def test_an_export_without_any_cycle_counter_derives_cycles_and_rests_are_not_half_cycles(
    tmp_path: Path,
) -> None:
    """Without ``cycle number`` and ``half cycle`` the reader derives cycles from the current:
    a new cycle at each charge after a discharge; the 1 h rest that opens the GCPL run (and
    every zero-current row) is no half cycle. On this run that is exactly EC-Lab's counter."""
    path = tmp_path / "no-counter.mpt"
    columns = mpt_columns(GCPL, cycle_number=False, half_cycle=False)
    write_mpt(path, columns, technique="Galvanostatic Cycling with Potential Limitation")
    expected, got, data = summaries(GCPL, path)
    assert data.conventions["cycle"].startswith("derived")
    assert got["cycle"].to_list() == expected["cycle"].to_list() == list(range(7))
    assert got["rows"].to_list() == expected["rows"].to_list()
    assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-6, abs_tol=1e-12)


@pytest.mark.parametrize("count", ["0", "1", "999999999999"])
def test_a_header_line_count_that_cannot_be_right_is_refused(tmp_path: Path, count: str) -> None:
    """``Nb header lines`` is a number from the file: 0 or 1 would make a preamble line (or
    the last line read) the column line, a huge one would point past the file."""
    path = tmp_path / "bad.mpt"
    columns = mpt_columns(GCPL_SHORT)
    write_mpt(path, columns, technique="Galvanostatic Cycling with Potential Limitation")
    text = path.read_bytes().replace(b"Nb header lines : 13", f"Nb header lines : {count}".encode())
    path.write_bytes(text)
    parser = BiologicMptParser()
    with pytest.raises(ParseError, match="EC-Lab column header"):
        parser.parse(path, ParseContext(filename=path.name, size=len(text)))
