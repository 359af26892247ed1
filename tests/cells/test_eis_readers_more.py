"""VersaStudio .par, Parstat, PowerSuite and Maccor impedance readers on real files
(impedance.py's samples, tests/fixtures/SOURCES.md) and a synthetic Maccor export of a known
circuit, plus edited copies for the error paths."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from cells.eis.parsers import PARSERS
from cells.eis.spectrum import SPECTRUM_SCHEMA
from cells.parsers import PARSERS as CYCLER_PARSERS
from lims.ingestion.parsing import SNIFF_BYTES, ParseContext, ParseError

EIS = Path(__file__).resolve().parents[1] / "fixtures" / "eis"
PAR = EIS / "impedance_exampleDataVersaStudio.par"
PARSTAT = EIS / "impedance_exampleDataParstat_excerpt.txt"
POWERSUITE = EIS / "impedance_exampleDataPowersuite.txt"
MACCOR = EIS / "synthetic_maccor_eis.txt"

# points, f_min, f_max, parser, vendor: counted from each file's rows by hand
EXPECTED = {
    PAR.name: (61, 0.02154435, 100000.0, "versastudio_par_eis", "versastudio"),
    PARSTAT.name: (31, 10.0, 10000.0, "impedance_table", "parstat"),
    POWERSUITE.name: (30, 0.1, 2000000.0, "impedance_table", "powersuite"),
    MACCOR.name: (11, 0.1, 10000.0, "maccor_eis", "maccor"),
}


def _best(content: bytes, name: str):
    head = content[:SNIFF_BYTES]
    parsers = [p() for p in PARSERS + CYCLER_PARSERS]
    scored = sorted(((p.sniff(head, name), p.name, p) for p in parsers), key=lambda s: -s[0])
    return scored[0][2] if scored[0][0] > 0 else None


def _parse(path: Path, name: str | None = None):
    parser = _best(path.read_bytes(), name or path.name)
    assert parser is not None, path
    return parser, parser.parse(path, ParseContext(filename=name or path.name))


def _copy(tmp_path: Path, source: Path, edit) -> Path:
    out = tmp_path / source.name
    out.write_text(edit(source.read_text(encoding="utf-8")), encoding="utf-8")
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("upload_name", [None, "upload.bin", "export.csv"])
def test_reader_chosen_from_content(name: str, upload_name: str | None) -> None:
    points, f_min, f_max, parser_name, vendor = EXPECTED[name]
    parser, data = _parse(EIS / name, upload_name)
    assert (parser.name, parser.kind, data.vendor) == (parser_name, "eis", vendor)
    frame = data.points
    assert dict(frame.schema) == SPECTRUM_SCHEMA
    assert frame.height == points
    assert frame["f_hz"].min() == pytest.approx(f_min)
    assert frame["f_hz"].max() == pytest.approx(f_max)
    zr, zi = frame["z_real_ohm"].to_numpy(), frame["z_imag_ohm"].to_numpy()
    assert np.allclose(frame["z_mod_ohm"].to_numpy(), np.hypot(zr, zi))
    assert "Z'' negative for capacitive" in data.conventions["sign"]
    # every one of these spectra is capacitive at its lowest frequency
    assert zi[np.argmin(frame["f_hz"].to_numpy())] < 0


def test_no_cycler_parser_claims_the_new_spectra() -> None:
    for path in (PAR, PARSTAT, POWERSUITE, MACCOR):
        head = path.read_bytes()[:SNIFF_BYTES]
        claims = {p.name: p().sniff(head, path.name) for p in CYCLER_PARSERS}
        assert not any(claims.values()), (path.name, claims)


# --- VersaStudio ---------------------------------------------------------------------------


def test_versastudio_values_sign_time_and_setup() -> None:
    _, data = _parse(PAR)
    frame = data.points
    # first and last rows of <Segment1>: Frequency(Hz), Z Real, Z Imag, Elapsed Time(s)
    assert frame.row(0)[:3] == pytest.approx((100000.0, 55.31571, 4.575431))
    assert frame.row(-1)[:3] == pytest.approx((0.02154435, 1516.313, -122.8279))
    assert frame["time_s"][0] == pytest.approx(1.812)
    assert frame["time_s"][-1] == pytest.approx(1575.401)
    assert frame["sweep"].unique().to_list() == [0]
    assert "Z Imag" in data.conventions["z_imag_as_written"]
    assert "stored as written" in data.conventions["z_imag_as_written"]
    assert data.technique == "PEIS"
    assert data.warnings == []
    meta = data.metadata
    assert (meta["instrument"], meta["serial_number"]) == ("VersaSTAT4", "16334007")
    assert meta["software"] == "VersaStudio 2.52.3.0"
    assert meta["Amplitude (mV RMS)"] == "20"
    assert meta["start_time_text"] == "Thursday, July 19, 2018 9:40:30 AM"


def test_versastudio_truncated_copy_keeps_its_rows_and_says_so(tmp_path: Path) -> None:
    def cut(text: str) -> str:
        body = text.split("</Segment1>")[0].rstrip("\n").split("\n")
        return "\n".join(body[:-11]) + "\n0,50,0,-3.28"  # 10 full rows gone, one half row

    _, data = _parse(_copy(tmp_path, PAR, cut))
    assert data.points.height == 50
    assert any("not closed" in w for w in data.warnings)
    assert any("left out" in w for w in data.warnings)  # the half row, named by line


def test_versastudio_two_segments_are_two_sweeps(tmp_path: Path) -> None:
    def twice(text: str) -> str:
        start = text.index("<Segment1>")
        end = text.index("</Segment1>") + len("</Segment1>")
        second = text[start:end].replace("Segment1>", "Segment2>")
        return text[:end] + "\n\n" + second + "\n" + text[end:]

    _, data = _parse(_copy(tmp_path, PAR, twice))
    assert data.points.height == 122
    assert data.points["sweep"].to_list() == [0] * 61 + [1] * 61
    assert data.metadata["segments"] == ["Segment1", "Segment2"]
    assert data.conventions["sweep_source"] == "one sweep per impedance <SegmentN>"


def test_versastudio_bad_number_is_located(tmp_path: Path) -> None:
    path = _copy(tmp_path, PAR, lambda t: t.replace(",66.43731,", ",6x.43731,"))
    lines = path.read_text(encoding="utf-8").split("\n")
    bad = next(i for i, s in enumerate(lines) if ",6x.43731," in s) + 1
    with pytest.raises(ParseError, match=r"'6x.43731' in column 'Z Real'") as caught:
        _parse(path)
    assert caught.value.location == f"line {bad}"


def test_versastudio_without_impedance_columns_is_refused(tmp_path: Path) -> None:
    # a cyclic voltammetry .par: same sections, no Frequency/Z columns
    def cv(text: str) -> str:
        return (
            text.replace("Name=Potentiostatic EIS", "Name=Cyclic Voltammetry")
            .replace("Options=FRA, EIS <Filter:Normal>", "Options=None")
            .replace(", Frequency(Hz),", ", F(Hz),")
        )

    path = _copy(tmp_path, PAR, cv)
    head = path.read_bytes()[:SNIFF_BYTES]
    parser = next(p() for p in PARSERS if p.name == "versastudio_par_eis")
    assert parser.sniff(head, path.name) == 0.0
    with pytest.raises(ParseError, match="no <SegmentN> block with Frequency"):
        parser.parse(path, ParseContext(filename=path.name))


def test_versastudio_segment_after_the_sniff_head_is_still_claimed() -> None:
    text = PAR.read_text(encoding="utf-8")
    head = text[: text.index("<Segment1>")].encode()
    parser = next(p() for p in PARSERS if p.name == "versastudio_par_eis")
    assert parser.sniff(head, "x.par") == 0.6  # set-up names an EIS action; table unseen


# --- Parstat and PowerSuite ----------------------------------------------------------------


def test_parstat_dc_rows_are_one_note_and_time_is_read() -> None:
    _, data = _parse(PARSTAT)
    frame = data.points
    # first AC row: Elapsed Time 7639.602, Frequency 10000, Zre -0.000498..., Zim +0.0175...
    assert frame.row(0)[:3] == pytest.approx((10000.0, -0.00049816280376104, 0.0175143479976367))
    assert frame["time_s"][0] == pytest.approx(7639.602)
    assert frame.row(-1)[:3] == pytest.approx((10.0, 0.0270946491457229, -0.00399791080333837))
    assert data.warnings == [
        "10 DC row(s) with Frequency (Hz) = 0 (lines 2-11) are the run's DC steps, "
        "not impedance points: left out"
    ]
    assert data.conventions["z_imag_as_written"].startswith("Zim (ohms) (Z'' as written)")


def test_powersuite_zimg_label_is_the_imaginary_part() -> None:
    _, data = _parse(POWERSUITE)
    frame = data.points
    assert frame.row(0)[:3] == pytest.approx((0.1, 423929.46, -49014.063))
    assert frame.row(-1)[:3] == pytest.approx((2000000.0, -470.54113, -1397.7358))
    assert data.conventions["z_imag_as_written"].startswith("Zimg (Z'' as written)")
    assert data.metadata["source_columns"] == ["Frequency", "Zre", "Zimg"]


# --- Maccor (synthetic: R0 + R1 || C) ------------------------------------------------------


def _circuit(f: np.ndarray) -> np.ndarray:
    r0, r1, c = 0.020, 0.030, 1.0  # generate_synthetic_maccor_eis.py
    return r0 + r1 / (1 + 1j * 2 * math.pi * f * r1 * c)


def test_maccor_values_match_the_circuit_and_preamble_is_kept() -> None:
    _, data = _parse(MACCOR)
    frame = data.points
    z = _circuit(frame["f_hz"].to_numpy())
    assert np.allclose(frame["z_real_ohm"].to_numpy(), z.real, rtol=1e-6, atol=0)
    assert np.allclose(frame["z_imag_ohm"].to_numpy(), z.imag, rtol=1e-6, atol=0)
    assert frame["time_s"].to_list() == [2.0 * i for i in range(11)]
    assert data.metadata["start_time_text"] == "Monday, January 6, 2020 10:15"
    assert data.metadata["method"] == "EIS_test.mps"
    assert data.metadata["frequency_sweep"].startswith("Circuit R0-(R1|C)")


def test_maccor_minus_label_is_negated_and_said(tmp_path: Path) -> None:
    def minus(text: str) -> str:
        head, _, body = text.partition("Z'' (Ohm)")
        rows = []
        for line in body.split("\n")[1:]:
            fields = line.split("\t")
            if len(fields) == 5:
                fields[3] = fields[3][1:] if fields[3].startswith("-") else "-" + fields[3]
            rows.append("\t".join(fields))
        return head + "-Z'' (Ohm)" + body.split("\n")[0] + "\n" + "\n".join(rows)

    _, original = _parse(MACCOR)
    _, flipped = _parse(_copy(tmp_path, MACCOR, minus))
    assert flipped.points["z_imag_ohm"].to_list() == original.points["z_imag_ohm"].to_list()
    assert "negated on reading" in flipped.conventions["z_imag_as_written"]


def test_maccor_bad_number_is_located(tmp_path: Path) -> None:
    path = _copy(tmp_path, MACCOR, lambda t: t.replace("\t3162.278\t", "\t3162,2x\t"))
    with pytest.raises(ParseError, match="not a number") as caught:
        _parse(path)
    assert caught.value.location == "line 13"


def test_maccor_without_a_table_header_is_refused(tmp_path: Path) -> None:
    path = _copy(tmp_path, MACCOR, lambda t: t.replace("Frequency (Hz)", "Hertz"))
    parser = next(p() for p in PARSERS if p.name == "maccor_eis")
    assert parser.sniff(path.read_bytes()[:SNIFF_BYTES], path.name) == 0.3
    with pytest.raises(ParseError, match="no column header naming frequency"):
        parser.parse(path, ParseContext(filename=path.name))
