"""Impedance readers on the real fixtures (tests/fixtures/eis) and on edited copies of them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cells.eis.parsers import PARSERS
from cells.eis.spectrum import SPECTRUM_SCHEMA, hf_intercept
from cells.parsers import PARSERS as CYCLER_PARSERS
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError

EIS = Path(__file__).resolve().parents[1] / "fixtures" / "eis"
MPT = EIS / "impedance_exampleDataBioLogic.mpt"
DTA = EIS / "impedance_exampleDataGamry.DTA"
CSV = EIS / "impedance_exampleData.csv"

# points, f_min, f_max, parser: counted from each file's own rows by hand (see SOURCES.md)
EXPECTED = {
    MPT.name: (43, 0.01689554, 1000.3201, "biologic_mpt_eis"),
    DTA.name: (72, 0.0158898, 200015.6, "gamry_dta_eis"),
    CSV.name: (66, 0.0031623, 10000.0, "impedance_table"),
}


def _best(content: bytes, name: str, *, with_cycler: bool = True):
    head = content[:SNIFF_BYTES]
    parsers = [p() for p in PARSERS + (CYCLER_PARSERS if with_cycler else ())]
    scored = sorted(((p.sniff(head, name), p.name, p) for p in parsers), key=lambda s: -s[0])
    return scored[0][2] if scored[0][0] > 0 else None


def _parse(path: Path, name: str | None = None):
    parser = _best(path.read_bytes(), name or path.name)
    assert parser is not None
    return parser, parser.parse(path, ParseContext(filename=name or path.name))


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("upload_name", [None, "upload.bin", "export.csv"])
def test_fixture_points_range_and_parser_from_content(name: str, upload_name: str | None) -> None:
    points, f_min, f_max, expected = EXPECTED[name]
    parser, data = _parse(EIS / name, upload_name)
    assert parser.name == expected and parser.kind == "eis"
    frame = data.points
    assert dict(frame.schema) == SPECTRUM_SCHEMA
    assert frame.height == points
    assert frame["f_hz"].min() == pytest.approx(f_min)
    assert frame["f_hz"].max() == pytest.approx(f_max)
    zr, zi = frame["z_real_ohm"].to_numpy(), frame["z_imag_ohm"].to_numpy()
    assert np.allclose(frame["z_mod_ohm"].to_numpy(), np.hypot(zr, zi))
    assert "Z'' negative for capacitive" in data.conventions["sign"]


def test_no_cycler_parser_claims_a_spectrum() -> None:
    for path in EIS.iterdir():
        head = path.read_bytes()[:SNIFF_BYTES]
        claims = {p.name: p().sniff(head, path.name) for p in CYCLER_PARSERS}
        assert not any(claims.values()), (path.name, claims)


def test_no_eis_parser_claims_a_cycler_file() -> None:
    for path in (EIS.parent / "cycler").rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:SNIFF_BYTES]
            claims = {p.name: p().sniff(head, path.name) for p in PARSERS}
            assert not any(claims.values()), (path, claims)


def test_biologic_sign_is_negated_and_said() -> None:
    _, data = _parse(MPT)
    # first row of the file: Re(Z) 65.470886, -Im(Z) 0.38998979 -> Z'' = -0.38998979
    assert data.points["z_real_ohm"][0] == pytest.approx(65.470886)
    assert data.points["z_imag_ohm"][0] == pytest.approx(-0.38998979)
    assert "-Im(Z)/Ohm" in data.conventions["z_imag_as_written"]
    assert "negated" in data.conventions["z_imag_as_written"]
    assert data.technique == "PEIS"
    assert data.metadata["header_line"] == 61
    assert data.metadata["encoding"] != "utf-8"  # latin-1 file with a µ in a column name
    assert data.metadata["channel"].startswith("1")


def test_gamry_sign_kept_and_header_read() -> None:
    _, data = _parse(DTA)
    # row 0 of ZCURVE: Freq 200015.6, Zreal 825.8584, Zimag -1367.239
    assert data.points["z_imag_ohm"][0] == pytest.approx(-1367.239)
    assert data.points["phase_deg"][0] == pytest.approx(-58.86662, abs=1e-3)  # the file's Zphz
    assert data.technique == "PEIS"
    assert data.metadata["pstat"] == "REF3000-34128"
    assert data.metadata["aborted"] is False


def test_gamry_aborted_run_keeps_the_points_before_the_abort(tmp_path: Path) -> None:
    lines = DTA.read_text("latin-1").split("\n")
    start = next(i for i, s in enumerate(lines) if s.startswith("ZCURVE"))
    cut = [*lines[: start + 3 + 30], "EXPERIMENTABORTED\tTOGGLE\tT\tExperiment Aborted", ""]
    path = tmp_path / "aborted.DTA"
    path.write_text("\n".join(cut), "latin-1")
    _, data = _parse(path)
    assert data.points.height == 30
    assert data.metadata["aborted"] is True
    assert any("aborted" in w for w in data.warnings)


def test_mpt_with_missing_frequencies_and_ece_columns(tmp_path: Path) -> None:
    """Rows without a frequency are left out (and said); Zce columns are not the cell's Z."""
    text = MPT.read_text("latin-1").split("\n")
    header = 60
    cols = text[header].rstrip("\t").split("\t")
    extra = ["Ece/V", "Re(Zce)/Ohm", "-Im(Zce)/Ohm"]
    text[header] = "\t".join(extra + cols) + "\t"
    for i in range(header + 1, len(text)):
        if text[i].strip():
            text[i] = "\t".join(["0.1", "999", "999"]) + "\t" + text[i]
    fields = text[header + 5].split("\t")
    fields[3] = ""  # freq/Hz of the 5th point is missing
    text[header + 5] = "\t".join(fields)
    path = tmp_path / "ece.mpt"
    path.write_text("\n".join(text), "latin-1")
    _, data = _parse(path)
    assert data.points.height == 42
    assert data.points["z_real_ohm"].max() < 999
    assert any("(lines 66)" in w for w in data.warnings)


def test_plain_csv_with_a_header_naming_minus_z_imag(tmp_path: Path) -> None:
    rows = CSV.read_text().strip().split("\n")
    flipped = []
    for row in rows:
        f, re_, im = (float(v) for v in row.split(","))
        flipped.append(f"{f},{re_},{-im}")
    path = tmp_path / "autolab.csv"
    path.write_text("Frequency (Hz),Z' (Ω),-Z'' (Ω)\n" + "\n".join(flipped) + "\n", "utf-8")
    _, data = _parse(path)
    _, plain = _parse(CSV)
    assert np.allclose(data.points["z_imag_ohm"].to_numpy(), plain.points["z_imag_ohm"].to_numpy())
    assert "negated" in data.conventions["z_imag_as_written"]


def test_ch_instruments_and_zplot_layouts(tmp_path: Path) -> None:
    rows = [tuple(float(v) for v in r.split(",")) for r in CSV.read_text().split()]
    chi = tmp_path / "chi.txt"
    chi.write_text(
        "Jan. 1, 2024   10:00:00\nA.C. Impedance\nFile: x.bin\n\n"
        "Freq/Hz, Z'/ohm, Z\"/ohm, Z/ohm, Phase/deg\n\n"
        + "\n".join(f"{f:.4e}, {a:.4e}, {b:.4e}, {math.hypot(a, b):.4e}, 0" for f, a, b in rows)
        + "\n"
    )
    zplot = tmp_path / "run.z"
    zplot.write_text(
        "ZPlot2 ASCII\nSample Info: pellet\nEnd Header:\nComments\nEnd Comments\n"
        + "\n".join(
            f"{f:.6e}\t0.01\t0\t{i}\t{a:.6e}\t{b:.6e}\t0\t0\t1" for i, (f, a, b) in enumerate(rows)
        )
        + "\n"
    )
    for path, vendor in ((chi, "generic"), (zplot, "zplot")):
        parser, data = _parse(path, "upload.bin")
        assert parser.name == "impedance_table"
        assert data.vendor == vendor
        assert data.points.height == len(rows)
        assert data.points["z_imag_ohm"][0] == pytest.approx(rows[0][2], rel=1e-3)


def test_bad_spectrum_fails_with_line_and_cause(tmp_path: Path) -> None:
    lines = CSV.read_text().split("\n")
    lines[9] = "1.0e+00,abc,0.1"
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines))
    parser = next(p() for p in PARSERS if p.name == "impedance_table")
    with pytest.raises(ParseError, match=r"'abc'.*not a number") as caught:
        parser.parse(path, ParseContext(filename="bad.csv"))
    assert caught.value.location == "line 10"
    lines[9] = "-1.0e+00,0.1,0.1"
    path.write_text("\n".join(lines))
    with pytest.raises(ParseError, match="negative frequency") as caught:
        parser.parse(path, ParseContext(filename="bad.csv"))
    assert caught.value.location == "line 10"


def test_gamry_without_zcurve_is_refused(tmp_path: Path) -> None:
    lines = DTA.read_text("latin-1").split("\n")
    start = next(i for i, s in enumerate(lines) if s.startswith("ZCURVE"))
    path = tmp_path / "nozcurve.DTA"
    path.write_text("\n".join(lines[:start]), "latin-1")
    parser = next(p() for p in PARSERS if p.name == "gamry_dta_eis")
    with pytest.raises(ParseError, match="no ZCURVE table"):
        parser.parse(path, ParseContext(filename=path.name))


def test_hf_intercept_interpolates_the_first_crossing_and_says_none_otherwise() -> None:
    _, data = _parse(CSV)
    value, provenance = hf_intercept(data.points)
    a, b = provenance["between"]
    assert a["minus_z_imag_ohm"] <= 0 < b["minus_z_imag_ohm"]
    assert min(a["z_real_ohm"], b["z_real_ohm"]) <= value <= max(a["z_real_ohm"], b["z_real_ohm"])
    # hand interpolation between 1584.9 Hz and 1258.9 Hz of the file
    ya, yb = a["minus_z_imag_ohm"], b["minus_z_imag_ohm"]
    expected = a["z_real_ohm"] + (b["z_real_ohm"] - a["z_real_ohm"]) * (-ya) / (yb - ya)
    assert value == pytest.approx(expected)
    assert value == pytest.approx(0.015688, rel=1e-4)
    _, gamry = _parse(DTA)
    none, why = hf_intercept(gamry.points)
    assert none is None
    assert "never crosses" in why["none_reason"]


def test_sweeps_from_the_frequencies(tmp_path: Path) -> None:
    text = CSV.read_text().strip()
    path = tmp_path / "two.csv"
    path.write_text(text + "\n" + text + "\n")
    _, data = _parse(path)
    assert data.points["sweep"].unique().sort().to_list() == [0, 1]
    assert any("2 frequency sweeps" in w for w in data.warnings)


GCPL_MPR = EIS.parent / "cycler/biologic/navani_jdb11-1_c3_gcpl_5cycles_2V-3p8V_C-24_data_C09.mpr"


def peis_mpr(source: Path, f, z_real, minus_z_imag, technique: int = 0x1D) -> bytes:
    """A real EC-Lab file (settings and log modules as recorded) with its data module replaced
    by an impedance record (column ids 4 time, 32 freq, 37 Re(Z), 38 -Im(Z); module version 3):
    no public PEIS .mpr is in the fixture set."""
    raw = source.read_bytes()
    out, pos = bytearray(raw[:52]), 52
    while raw[pos : pos + 6] == b"MODULE":
        hdr = bytearray(raw[pos + 6 : pos + 6 + 59])
        v2 = hdr[35:39] == b"\xff" * 4
        size, at = (59, 39) if v2 else (51, 35)
        length = int.from_bytes(hdr[at : at + 4], "little")
        data = raw[pos + 6 + size : pos + 6 + size + length]
        hdr = hdr[:size]
        if hdr.startswith(b"VMP Set"):
            data = bytes([technique]) + data[1:]
        if hdr.startswith(b"VMP data"):
            ids = [4, 32, 37, 38]
            dtype = np.dtype([("t", "<f8"), ("f", "<f4"), ("re", "<f4"), ("im", "<f4")])
            rec = np.zeros(len(f), dtype)
            rec["t"], rec["f"], rec["re"], rec["im"] = np.arange(len(f)), f, z_real, minus_z_imag
            head = len(f).to_bytes(4, "little") + bytes([len(ids)])
            head += b"".join(i.to_bytes(2, "little") for i in ids)
            data = head.ljust(406, b"\x00") + rec.tobytes()
            hdr[at : at + 4] = len(data).to_bytes(4, "little")
        out += b"MODULE" + hdr + data
        pos += 6 + size + length
    return bytes(out)


def test_mpr_peis_record_is_read_and_no_cycler_parser_claims_it(tmp_path: Path) -> None:
    f = np.logspace(5, -1, 25)
    re_, mim = np.linspace(10, 50, 25), np.linspace(-1, 20, 25)
    path = tmp_path / "peis.mpr"
    path.write_bytes(peis_mpr(GCPL_MPR, f, re_, mim))
    parser, data = _parse(path, "upload.bin")
    assert parser.name == "biologic_mpr_eis"
    assert data.points.height == 25 and data.technique == "PEIS"
    assert np.allclose(data.points["f_hz"].to_numpy(), f.astype(np.float32))
    assert np.allclose(data.points["z_imag_ohm"].to_numpy(), -mim.astype(np.float32))
    head = path.read_bytes()[:SNIFF_BYTES]
    assert not any(p().sniff(head, path.name) for p in CYCLER_PARSERS)
    # a Modulo Bat file with an impedance step stays a cycling test
    mixed = peis_mpr(GCPL_MPR, f, re_, mim, technique=0x7F)[:SNIFF_BYTES]
    cycler = next(p() for p in CYCLER_PARSERS if p.name == "biologic_mpr")
    eis = next(p() for p in PARSERS if p.name == "biologic_mpr_eis")
    assert cycler.sniff(mixed, "x.mpr") > eis.sniff(mixed, "x.mpr") > 0
