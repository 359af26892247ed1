"""Impedance file readers: pure functions from an instrument file to ``EisData``.

``PARSERS`` lists them; ``cells.apps`` registers them with ``lims.ingestion.registry``
(kind ``"eis"``). Layouts learnt from impedance.py's preprocessing, yadg's extractors and
galvani (no code copied). Spectra are small (a few hundred points), so text files are decoded
whole, with a size bound, and every value keeps its line number for error messages.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cells.eis.spectrum import Column, EisData, build_points, common_conventions
from cells.parsers.biologic import (
    MPR_MAGIC,
    mpr_head_columns,
    mpt_header_index,
    mpt_is_impedance,
)
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import (
    binary_offset,
    check_line_lengths,
    describe_exception,
    detect_encoding,
    numeric_row,
    read_head,
    sniff_lines,
)

# An impedance export is kilobytes; anything this large is not one (and is not read whole).
MAX_TEXT_BYTES = 32 * 1024 * 1024
_TECHNIQUES = {
    "potentio electrochemical impedance spectroscopy": "PEIS",
    "galvano electrochemical impedance spectroscopy": "GEIS",
    "eispot": "PEIS",
    "eisgalv": "GEIS",
}


def read_text(path: Path, ctx: ParseContext) -> tuple[list[str], str]:
    """Lines of a text export (bounded size and line length) and the encoding used."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ParseError(f"cannot read file: {exc.strerror or exc}", location="file") from exc
    if size == 0:
        raise ParseError("file is empty", location="byte 0")
    if size > MAX_TEXT_BYTES:
        raise ParseError(
            f"{size} bytes, more than the {MAX_TEXT_BYTES} an impedance text export may have",
            location="file",
        )
    head = read_head(path)
    if not ctx.encoding and (offset := binary_offset(head)) is not None:
        raise ParseError(
            f"binary content (byte 0x{head[offset]:02x}) where a text export was expected",
            location=f"byte offset {offset}",
        )
    check_line_lengths(path)
    encoding = detect_encoding(head, ctx.encoding)
    text = path.read_bytes().decode(encoding, errors="replace").lstrip("\ufeff")
    return [line.rstrip("\r") for line in text.split("\n")], encoding


_NUMBER = re.compile(r"^[+-]?(\d+[.,]?\d*|[.,]\d+)([eE][+-]?\d+)?$")


def to_float(text: str, *, decimal_comma: bool, label: str, line: int) -> float | None:
    """A number as the file wrote it; empty and NaN-like fields are missing (None)."""
    value = text.strip().strip('"')
    if value in ("", "NaN", "nan", "NAN", "-", "--", "N/A", "n/a"):
        return None
    if decimal_comma:
        value = value.replace(",", ".")
    try:
        return float(value)
    except ValueError:
        raise ParseError(
            f"{text.strip()[:40]!r} in column {label!r} is not a number", location=f"line {line}"
        ) from None


def _decimal_comma(rows: list[list[str]]) -> bool:
    commas = points = 0
    for row in rows[:50]:
        for value in row:
            if re.match(r"^[+-]?\d+,\d+([eE][+-]?\d+)?$", value.strip()):
                commas += 1
            elif re.match(r"^[+-]?\d*\.\d+([eE][+-]?\d+)?$", value.strip()):
                points += 1
    return commas > points


def _columns(
    rows: list[tuple[int, list[str]]], indices: dict[str, int], labels: dict[str, str], dc: bool
) -> dict[str, Column]:
    out = {key: Column(labels[key], []) for key in indices}
    for line, fields in rows:
        for key, index in indices.items():
            text = fields[index] if index < len(fields) else ""
            out[key].values.append(to_float(text, decimal_comma=dc, label=labels[key], line=line))
    return out


def _data_rows(
    lines: list[str], start: int, split: Callable[[str], list[str]], stop: Callable[[str], bool]
) -> list[tuple[int, list[str]]]:
    """Non-blank rows from ``start`` (0-based) until ``stop``; each with its 1-based line."""
    rows = []
    for index in range(start, len(lines)):
        line = lines[index]
        if stop(line):
            break
        if line.strip():
            rows.append((index + 1, split(line)))
    return rows


def _spectrum(
    rows: list[tuple[int, list[str]]],
    indices: dict[str, int],
    labels: dict[str, str],
    *,
    negate_imag: bool,
    sweep_key: str | None = None,
    warnings_: list[str],
) -> tuple[Any, str]:
    dc = _decimal_comma([fields for _, fields in rows])
    cols = _columns(rows, indices, labels, dc)
    sweep = None
    source = "derived from the frequencies (a jump back starts a new sweep)"
    if sweep_key and sweep_key in cols:
        raw = cols[sweep_key].values
        if all(v is not None for v in raw):
            sweep = [int(v) for v in raw if v is not None]
            source = f"{labels[sweep_key]!r} as written"
    points = build_points(
        f_hz=cols["f"],
        z_real=cols["re"],
        z_imag=cols["im"],
        time_s=cols.get("t"),
        lines=[line for line, _ in rows],
        negate_imag=negate_imag,
        sweep=sweep,
        warnings=warnings_,
    )
    return points, source


def _finish(
    points: Any,
    *,
    vendor: str,
    technique: str,
    wrote: str,
    negated: bool,
    sweep_source: str,
    metadata: dict[str, Any],
    notes: list[str],
    temperature_c: float | None = None,
    extra: dict[str, str] | None = None,
) -> EisData:
    conventions = common_conventions(wrote=wrote, negated=negated)
    conventions["sweep_source"] = sweep_source
    conventions.update(extra or {})
    sweeps = int(points["sweep"].max()) + 1
    if sweeps > 1:
        notes.append(f"{sweeps} frequency sweeps in one file: all points are kept (column sweep)")
    return EisData(points, vendor, technique, temperature_c, conventions, metadata, notes)


# --- BioLogic EC-Lab .mpt --------------------------------------------------------------------


def _mpt_header(lines: list[str]) -> int | None:
    return mpt_header_index(lines, lambda line: "freq/Hz" in line.split("\t"))


class BiologicMptEisParser:
    """EC-Lab ``.mpt`` text export of PEIS/GEIS (latin-1, tab separated, ``-Im(Z)``)."""

    name: ClassVar[str] = "biologic_mpt_eis"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "eis"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head)
        if not lines:
            return 0.0
        verdict = mpt_is_impedance(lines)
        return {"impedance": 0.97, "mixed": 0.2}.get(verdict or "", 0.0)

    def parse(self, path: Path, ctx: ParseContext) -> EisData:
        lines, encoding = read_text(path, ctx)
        index = _mpt_header(lines)
        if index is None:
            raise ParseError("no EC-Lab column header line found", location=f"lines 1-{len(lines)}")
        header = lines[index].split("\t")
        want = {"f": "freq/Hz", "re": "Re(Z)/Ohm", "im": "-Im(Z)/Ohm"}
        missing = [label for label in want.values() if label not in header]
        if missing:
            raise ParseError(
                f"no {', '.join(repr(m) for m in missing)} column among {header}: "
                "not an impedance export",
                location=f"line {index + 1}",
            )
        # exact labels: a file with Ece has Re(Zce), Re(Zwe-ce)... beside the WE's Re(Z)
        indices = {key: header.index(label) for key, label in want.items()}
        labels = dict(want)
        for key, label in (("t", "time/s"), ("cycle", "cycle number")):
            if label in header:
                indices[key], labels[key] = header.index(label), label
        notes: list[str] = []
        rows = _data_rows(lines, index + 1, lambda s: s.split("\t"), lambda s: False)
        points, source = _spectrum(
            rows, indices, labels, negate_imag=True, sweep_key="cycle", warnings_=notes
        )
        preamble = lines[:index]
        technique_line = preamble[3].strip() if len(preamble) > 3 else ""
        metadata: dict[str, Any] = {
            "source_columns": header,
            "encoding": encoding,
            "header_line": index + 1,
            **_mpt_preamble(preamble),
        }
        return _finish(
            points,
            vendor="biologic",
            technique=_TECHNIQUES.get(technique_line.lower(), ""),
            wrote="-Im(Z)/Ohm (positive for capacitive)",
            negated=True,
            sweep_source=source,
            metadata=metadata,
            notes=notes,
            temperature_c=_mean_column(rows, header, ("Temperature/°C", "T/°C")),
        )


def _mean_column(
    rows: list[tuple[int, list[str]]], header: list[str], names: tuple[str, ...]
) -> float | None:
    for name in names:
        if name in header:
            i = header.index(name)
            values = [
                to_float(fields[i], decimal_comma=False, label=name, line=line)
                for line, fields in rows
                if i < len(fields)
            ]
            good = [v for v in values if v is not None]
            return float(np.mean(good)) if good else None
    return None


def _mpt_preamble(lines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if len(lines) > 3 and lines[3].strip():
        out["technique"] = lines[3].strip()
    for line in lines:
        key, sep, value = line.partition(" : ")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key == "Run on channel":
            out["channel"] = value
        elif key == "Acquisition started on":
            out["start_time_text"] = value
        elif key == "Device":
            out["device"] = value
    return out


# --- BioLogic EC-Lab .mpr --------------------------------------------------------------------


class BiologicMprEisParser:
    """EC-Lab binary ``.mpr`` of PEIS/GEIS, read with galvani (data column ``freq/Hz``)."""

    name: ClassVar[str] = "biologic_mpr_eis"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "eis"

    def sniff(self, head: bytes, filename: str) -> float:
        if not head.startswith(MPR_MAGIC):
            return 0.0
        found = mpr_head_columns(head)
        if found is None or "freq/Hz" not in found[1]:
            return 0.0
        return 0.2 if found[0] == "Modulo Bat" else 0.97

    def parse(self, path: Path, ctx: ParseContext) -> EisData:
        from galvani.BioLogic import MPRfile

        if read_head(path, len(MPR_MAGIC)) != MPR_MAGIC:
            raise ParseError("not an EC-Lab .mpr file: bad magic", location="byte 0")
        try:
            with path.open("rb") as handle, warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                mpr = MPRfile(handle)
        except Exception as exc:  # galvani raises ValueError/IOError/AssertionError/...
            raise ParseError(
                "galvani cannot read the file (truncated or unsupported version): "
                + describe_exception(exc),
                location="VMP data module",
            ) from exc
        names = list(mpr.data.dtype.names)
        want = {"f": "freq/Hz", "re": "Re(Z)/Ohm", "im": "-Im(Z)/Ohm"}
        missing = [label for label in want.values() if label not in names]
        if missing:
            raise ParseError(
                f"no {', '.join(repr(m) for m in missing)} column among {names}: "
                "not an impedance record",
                location="VMP data module",
            )
        data = mpr.data

        def col(label: str) -> Column:
            return Column(label, [None if np.isnan(v) else float(v) for v in data[label]])

        notes = [f"galvani: {w.message}" for w in caught]
        cycle = "cycle number" if "cycle number" in names else None
        sweep = [int(v) for v in data[cycle]] if cycle else None
        points = build_points(
            f_hz=col("freq/Hz"),
            z_real=col("Re(Z)/Ohm"),
            z_imag=col("-Im(Z)/Ohm"),
            time_s=col("time/s") if "time/s" in names else None,
            lines=[i + 1 for i in range(len(data))],  # "line" = record number here
            negate_imag=True,
            sweep=sweep,
            warnings=notes,
        )
        technique = mpr_technique(mpr.modules)
        metadata: dict[str, Any] = {
            "source_columns": names,
            "data_module_version": int(mpr.version),
            "technique": technique,
        }
        if getattr(mpr, "timestamp", None) is not None:
            metadata["start_time"] = mpr.timestamp.isoformat()
        return _finish(
            points,
            vendor="biologic",
            technique=technique if technique in ("PEIS", "GEIS") else "",
            wrote="-Im(Z)/Ohm (positive for capacitive)",
            negated=True,
            sweep_source="'cycle number' as written" if cycle else "derived from the frequencies",
            metadata=metadata,
            notes=notes,
            extra={"record_numbers": "error locations count data records from 1"},
        )


def mpr_technique(modules: list[dict[str, Any]]) -> str:
    from cells.parsers.biologic import MPR_TECHNIQUES

    for module in modules:
        if module["shortname"].strip() == b"VMP Set":
            return MPR_TECHNIQUES.get(module["data"][0], f"technique id {module['data'][0]}")
    return ""


# --- Gamry .DTA ------------------------------------------------------------------------------


class GamryDtaParser:
    """Gamry Framework ``.DTA`` (EXPLAIN file) with a ``ZCURVE`` table; an aborted run ends at
    ``EXPERIMENTABORTED`` and keeps the points measured before it."""

    name: ClassVar[str] = "gamry_dta_eis"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "eis"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, limit=2000)
        if not lines or lines[0].strip() != "EXPLAIN":
            return 0.0
        if any(line.startswith("ZCURVE\t") for line in lines):
            return 0.98
        tag = next((line for line in lines[:5] if line.startswith("TAG\t")), "")
        return 0.9 if "EIS" in tag.upper() else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> EisData:
        lines, encoding = read_text(path, ctx)
        if not lines or lines[0].strip() != "EXPLAIN":
            raise ParseError(
                "not a Gamry EXPLAIN file (first line is not EXPLAIN)", location="line 1"
            )
        start = next(
            (i for i, s in enumerate(lines) if s.split("\t")[:2] == ["ZCURVE", "TABLE"]), None
        )
        if start is None:
            raise ParseError("no ZCURVE table: not an impedance measurement", location="file")
        if start + 2 >= len(lines):
            raise ParseError("ZCURVE table has no column header", location=f"line {start + 1}")
        header = [s.strip() for s in lines[start + 1].split("\t")]
        want = {"f": "Freq", "re": "Zreal", "im": "Zimag"}
        missing = [label for label in want.values() if label not in header]
        if missing:
            raise ParseError(
                f"no {', '.join(repr(m) for m in missing)} column in the ZCURVE table",
                location=f"line {start + 2}",
            )
        indices = {key: header.index(label) for key, label in want.items()}
        labels = dict(want)
        if "Time" in header:
            indices["t"], labels["t"] = header.index("Time"), "Time"
        aborted = next(
            (i for i in range(start, len(lines)) if lines[i].startswith("EXPERIMENTABORTED")), None
        )
        rows = _data_rows(
            lines,
            start + 3,
            lambda s: s.split("\t"),
            lambda s: bool(s.strip()) and not s.startswith("\t"),  # the next keyword
        )
        notes: list[str] = []
        if aborted is not None:
            notes.append(
                f"the run was aborted (EXPERIMENTABORTED, line {aborted + 1}): "
                f"{len(rows)} point(s) measured before it"
            )
        points, source = _spectrum(rows, indices, labels, negate_imag=False, warnings_=notes)
        header_values = _gamry_header(lines[:start])
        tag = str(header_values.get("TAG", ""))
        metadata: dict[str, Any] = {
            "source_columns": header,
            "encoding": encoding,
            "table_line": start + 1,
            "aborted": aborted is not None,
            **{k.lower(): v for k, v in header_values.items()},
        }
        date, time = header_values.get("DATE"), header_values.get("TIME")
        if date and time:
            metadata["start_time_text"] = f"{date} {time}"
        expected = _gamry_expected_points(header_values)
        if expected and aborted is None and len(points) < expected:
            notes.append(f"{len(points)} points where the set-up asks for about {expected}")
        return _finish(
            points,
            vendor="gamry",
            technique=_TECHNIQUES.get(tag.lower(), ""),
            wrote="Zimag (negative for capacitive)",
            negated=False,
            sweep_source=source,
            metadata=metadata,
            notes=notes,
        )


def _gamry_header(lines: list[str]) -> dict[str, Any]:
    """KEY<TAB>TYPE<TAB>VALUE lines of the EXPLAIN header (numbers as floats)."""
    out: dict[str, Any] = {}
    for line in lines:
        parts = line.split("\t")
        if len(parts) < 3 or not parts[0] or parts[0].startswith(" "):
            if len(parts) == 2 and parts[0] == "TAG":
                out["TAG"] = parts[1].strip()
            continue
        key, kind, value = parts[0].strip(), parts[1].strip(), parts[2].strip()
        if key == "TAG":
            out[key] = kind
        elif kind in ("QUANT", "IQUANT", "POTEN"):
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
        elif kind in ("LABEL", "PSTAT", "SELECTOR", "TOGGLE"):
            out[key] = value
    return out


def _gamry_expected_points(header: dict[str, Any]) -> int | None:
    fi, ff, per = header.get("FREQINIT"), header.get("FREQFINAL"), header.get("PTSPERDEC")
    if not all(isinstance(v, float) and v > 0 for v in (fi, ff, per)):
        return None
    return int(abs(np.log10(fi / ff)) * per) + 1  # type: ignore[operator]


# --- labelled tables: plain CSV, CH Instruments, Autolab, PowerSuite, ZPlot ------------------

_FREQ = re.compile(r"^(f|freq|frequency)\b", re.I)
_REAL = re.compile(r"^(z'|z_?re(al)?|re\(?z\)?|zre|real|z\s*real|re)(\b|$|[\s(/\[])", re.I)
_IMAG = re.compile(
    r"^(-\s*)?(z''|z\"|z_?im(ag|g)?|im\(?z\)?|zim|imag|imaginary|z\s*imag|im)(\b|$|[\s(/\[])", re.I
)


def _classify(label: str) -> tuple[str, bool] | None:
    """('f'|'re'|'im', written negated?) for an impedance column label, else None."""
    text = label.strip().strip('"').strip()
    if text[:1].isdigit() or text[:2].lstrip("+-.")[:1].isdigit():
        return None  # a number (most tokens of a sniffed head): no label pattern starts so
    if _FREQ.match(text):
        return "f", False
    if _IMAG.match(text):
        return "im", text.startswith("-")
    if _REAL.match(text):
        return "re", False
    return None


def _split(line: str, sep: str) -> list[str]:
    if sep == " ":
        return line.split()
    return [s.strip() for s in re.split(sep, line)]


def _separator(line: str) -> str:
    if "\t" in line:
        return "\t"
    if ";" in line:
        return ";"
    if "," in line:
        return r",\s*"
    return " "


def _table_header(lines: list[str]) -> tuple[int, str, dict[str, tuple[int, bool]]] | None:
    """First line (of 200) naming a frequency, a real and an imaginary column."""
    for index, line in enumerate(lines[:200]):
        if numeric_row(line):  # blank lines too
            continue
        sep = _separator(line)
        found: dict[str, tuple[int, bool]] = {}
        for position, label in enumerate(_split(line, sep)):
            kind = _classify(label)
            if kind and kind[0] not in found:
                found[kind[0]] = (position, kind[1])
        if len(found) == 3:
            return index, sep, found
    return None


def _numeric_row(line: str) -> list[float] | None:
    fields = _split(line, _separator(line))
    try:
        return [float(f) for f in fields if f]
    except ValueError:
        return None


def _headless(lines: list[str]) -> bool:
    """Rows of >= 3 numbers whose first column (frequency) is positive and moves one way."""
    parsed = [_numeric_row(s) for s in lines[:30] if s.strip()][:5]
    if len(parsed) < 3 or any(r is None for r in parsed):  # a header or text: not headless
        return False
    rows = [r for r in parsed if r is not None]
    if any(len(r) != len(rows[0]) or len(r) < 3 or r[0] <= 0 for r in rows):
        return False
    f = [r[0] for r in rows]
    steps = [b / a for a, b in itertools.pairwise(f)]
    return all(s < 1 for s in steps) or all(s > 1 for s in steps)


_ZPLOT_END = "End Comments"
_TIME_S = re.compile(r"^(elapsed\s*)?time\s*[(/\[]\s*s(ec)?\s*[)\]]?$", re.I)
# Header signatures of exports whose maker the labels alone tell (impedance.py's samples)
_PARSTAT_LABELS = ("Frequency (Hz)", "Zre (ohms)", "Zim (ohms)", "|Vac| (V)", "|Iac| (A)")
_POWERSUITE_LABELS = ["Frequency", "Zre", "Zimg"]


def _table_vendor(header: list[str]) -> str:
    labels = [h.strip() for h in header if h.strip()]
    if all(label in labels for label in _PARSTAT_LABELS):
        return "parstat"
    if labels == _POWERSUITE_LABELS:
        return "powersuite"
    return "generic"


def _drop_dc_rows(
    rows: list[tuple[int, list[str]]], f_at: int, notes: list[str]
) -> list[tuple[int, list[str]]]:
    """Parstat writes the run's DC steps in the same table with Frequency 0: not impedance
    points, so they are left out with one note (not one warning per row)."""
    keep: list[tuple[int, list[str]]] = []
    dc: list[tuple[int, list[str]]] = []
    for line, fields in rows:
        text = fields[f_at].strip() if f_at < len(fields) else ""
        (dc if text in ("0", "0.0") else keep).append((line, fields))
    if dc:
        notes.append(
            f"{len(dc)} DC row(s) with Frequency (Hz) = 0 (lines {dc[0][0]}-{dc[-1][0]}) "
            "are the run's DC steps, not impedance points: left out"
        )
    return keep


class ImpedanceTableParser:
    """Delimited text of (f, Z', Z''): plain CSV with or without a header, CH Instruments
    (``Freq/Hz, Z'/ohm, Z"/ohm``), Autolab/NOVA (``Frequency (Hz), Z' (Ω), -Z'' (Ω)``),
    PowerSuite and Parstat text, and Scribner ZPlot ``.z`` (data after ``End Comments``:
    Freq, Ampl, Bias, Time, Z', Z'').

    Columns are found by their labels; a label written with a minus (``-Z''``, ``-Im(Z)``)
    means the file holds -Z'', which is negated. Without a header, the columns are
    f, Z', Z'' in that order with Z'' as written (impedance.py's CSV convention).
    """

    name: ClassVar[str] = "impedance_table"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "eis"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head)
        if not lines:
            return 0.0
        if any(line.strip() == _ZPLOT_END for line in lines[:200]) and lines[0].startswith("ZPlot"):
            return 0.95
        found = _table_header(lines)
        if found is not None:
            return 0.9
        return 0.5 if _headless(lines) else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> EisData:
        lines, encoding = read_text(path, ctx)
        notes: list[str] = []
        metadata: dict[str, Any] = {"encoding": encoding}
        zplot_end = next((i for i, s in enumerate(lines[:500]) if s.strip() == _ZPLOT_END), None)
        found = _table_header(lines)
        vendor = "generic"
        if found is not None:
            index, sep, columns = found
            header = _split(lines[index], sep)
            indices = {key: position for key, (position, _) in columns.items()}
            labels = {key: header[position] for key, position in indices.items()}
            negate = columns["im"][1]
            start = index + 1
            metadata.update(header_line=index + 1, source_columns=header)
            vendor = "zplot" if zplot_end is not None else _table_vendor(header)
            time_at = next((i for i, h in enumerate(header) if _TIME_S.match(h.strip())), None)
            if time_at is not None:
                indices["t"], labels["t"] = time_at, header[time_at]
        elif zplot_end is not None:
            # ZPlot: Freq(Hz), Ampl, Bias, Time(Sec), Z'(a), Z''(b), GD, Err, Range
            start, sep = zplot_end + 1, r"\t|,\s*"
            indices = {"f": 0, "t": 3, "re": 4, "im": 5}
            labels = {"f": "Freq(Hz)", "t": "Time(Sec)", "re": "Z'(a)", "im": "Z''(b)"}
            negate, vendor = False, "zplot"
            metadata.update(data_line=start + 1, layout="ZPlot columns after End Comments")
        else:
            first = next((i for i, s in enumerate(lines) if s.strip()), 0)
            if not _headless(lines[first:]):
                raise ParseError(
                    "no column header naming frequency, Z' and Z'', and the rows are not "
                    "three numbers (f, Z', Z'')",
                    location=f"lines 1-{min(len(lines), 30)}",
                )
            start, sep = first, _separator(lines[first])
            indices, labels = (
                {"f": 0, "re": 1, "im": 2},
                {"f": "column 1", "re": "column 2", "im": "column 3"},
            )
            negate = False
            metadata["layout"] = "no header: f, Z', Z'' in columns 1-3"
        rows = _data_rows(lines, start, lambda s: _split(s, sep), lambda s: False)
        if not rows:
            raise ParseError("no data rows after the header", location=f"line {start + 1}")
        if vendor == "parstat":
            rows = _drop_dc_rows(rows, indices["f"], notes)
        points, source = _spectrum(rows, indices, labels, negate_imag=negate, warnings_=notes)
        wrote = f"{labels['im']} " + (
            "(-Z'', positive for capacitive)" if negate else "(Z'' as written)"
        )
        return _finish(
            points,
            vendor=vendor,
            technique="",
            wrote=wrote,
            negated=negate,
            sweep_source=source,
            metadata=metadata,
            notes=notes,
        )


# --- Princeton Applied Research VersaStudio .par -----------------------------------------------

_PAR_SECTION = re.compile(r"^<(/?)([A-Za-z]+)(\d*)>\s*$")
_PAR_COLUMNS = {"f": "Frequency(Hz)", "re": "Z Real", "im": "Z Imag"}
_PAR_TECHNIQUES = {"potentiostatic eis": "PEIS", "galvanostatic eis": "GEIS"}


def _par_sections(lines: list[str]) -> list[tuple[str, int, int, bool]]:
    """(name, first line index, end index, closed) of each ``<Name>`` ... ``</Name>`` block.

    A block left open at the end of the file (a truncated copy) runs to the last line."""
    out: list[tuple[str, int, int, bool]] = []
    open_name, open_at = "", -1
    for index, line in enumerate(lines):
        match = _PAR_SECTION.match(line.strip())
        if not match:
            continue
        name = match.group(2) + match.group(3)
        if not match.group(1):
            if open_name:  # a new block before the old one closed: the old one ends here
                out.append((open_name, open_at, index, False))
            open_name, open_at = name, index
        elif name == open_name:
            out.append((open_name, open_at, index, True))
            open_name = ""
    if open_name:
        out.append((open_name, open_at, len(lines), False))
    return out


def _par_keys(lines: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip() not in out:
            out[key.strip()] = value.strip()
    return out


class VersaStudioParParser:
    """VersaStudio ``.par`` (Princeton Applied Research / AMETEK): ``<Section>`` blocks of
    ``key=value`` lines; each ``<SegmentN>`` holds a ``Definition=`` line naming the CSV
    columns of the rows after it. Impedance segments have ``Frequency(Hz)``, ``Z Real``,
    ``Z Imag`` (Z'' negative for capacitive, as its Nyquist view negates it to plot)."""

    name: ClassVar[str] = "versastudio_par_eis"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "eis"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, limit=2000)
        if not lines or lines[0].strip() != "<Application>":
            return 0.0
        for line in lines:
            if line.startswith("Definition="):
                labels = [s.strip() for s in line[len("Definition=") :].split(",")]
                if all(label in labels for label in _PAR_COLUMNS.values()):
                    return 0.97
        # the segment may start after the head: an EIS action in the set-up is enough
        versa = any(line.strip() == "Name=VersaStudio" for line in lines[:10])
        eis = any(line.startswith("Name=") and "EIS" in line for line in lines)
        return 0.6 if versa and eis else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> EisData:
        lines, encoding = read_text(path, ctx)
        if not lines or lines[0].strip() != "<Application>":
            raise ParseError(
                "not a VersaStudio .par file (first line is not <Application>)",
                location="line 1",
            )
        sections = _par_sections(lines)
        notes: list[str] = []
        rows: list[tuple[int, list[str]]] = []
        sweep: list[int] = []
        header: list[str] = []
        used: list[str] = []
        for name, start, end, closed in sections:
            if not name.startswith("Segment"):
                continue
            definition = next(
                (i for i in range(start + 1, end) if lines[i].startswith("Definition=")), None
            )
            if definition is None:
                raise ParseError(
                    f"<{name}> has no Definition= line naming its columns",
                    location=f"lines {start + 1}-{end}",
                )
            labels = [s.strip() for s in lines[definition][len("Definition=") :].split(",")]
            if not all(label in labels for label in _PAR_COLUMNS.values()):
                notes.append(f"<{name}> (line {start + 1}) has no impedance columns: skipped")
                continue
            if header and labels != header:
                raise ParseError(
                    f"<{name}> names other columns than the first impedance segment",
                    location=f"line {definition + 1}",
                )
            header = labels
            if not closed:
                notes.append(
                    f"<{name}> (line {start + 1}) is not closed: the file may be truncated; "
                    "its rows up to the end of the file are kept"
                )
            segment_rows = _data_rows(
                lines,
                definition + 1,
                lambda s: [f.strip() for f in s.split(",")],
                lambda s: bool(_PAR_SECTION.match(s.strip())),
            )
            rows.extend(segment_rows)
            sweep.extend([len(used)] * len(segment_rows))
            used.append(name)
        if not header:
            raise ParseError(
                "no <SegmentN> block with Frequency(Hz), Z Real and Z Imag columns: "
                "not an impedance measurement",
                location=f"lines 1-{len(lines)}",
            )
        if not rows:
            raise ParseError("the impedance segment has no data rows", location="file")
        indices = {key: header.index(label) for key, label in _PAR_COLUMNS.items()}
        labels_used = dict(_PAR_COLUMNS)
        if "Elapsed Time(s)" in header:
            indices["t"], labels_used["t"] = header.index("Elapsed Time(s)"), "Elapsed Time(s)"
        cols = _columns(rows, indices, labels_used, False)
        points = build_points(
            f_hz=cols["f"],
            z_real=cols["re"],
            z_imag=cols["im"],
            time_s=cols.get("t"),
            lines=[line for line, _ in rows],
            negate_imag=False,
            sweep=sweep if len(used) > 1 else None,
            warnings=notes,
        )
        blocks = {name: _par_keys(lines[a + 1 : b]) for name, a, b, _ in sections}
        action = next(
            (
                keys
                for name, keys in blocks.items()
                if name.startswith("Action") and "EIS" in keys.get("Name", "")
            ),
            {},
        )
        instrument, experiment = blocks.get("Instrument", {}), blocks.get("Experiment", {})
        metadata: dict[str, Any] = {
            "source_columns": header,
            "encoding": encoding,
            "segments": used,
            "software": " ".join(
                v
                for v in (
                    blocks.get("Application", {}).get("Name"),
                    blocks.get("Application", {}).get("Version"),
                )
                if v
            ),
            "instrument": instrument.get("Type", ""),
            "serial_number": instrument.get("SN", ""),
            "action": action.get("Name", ""),
        }
        for key in ("Amplitude (mV RMS)", "Start Frequency (Hz)", "End Frequency (Hz)"):
            if key in action:
                metadata[key] = action[key]
        if experiment.get("DateAcquired") and experiment.get("TimeAcquired"):
            metadata["start_time_text"] = (
                f"{experiment['DateAcquired']} {experiment['TimeAcquired']}"
            )
        return _finish(
            points,
            vendor="versastudio",
            technique=_PAR_TECHNIQUES.get(action.get("Name", "").lower(), ""),
            wrote="Z Imag (negative for capacitive)",
            negated=False,
            sweep_source="one sweep per impedance <SegmentN>"
            if len(used) > 1
            else "derived from the frequencies (a jump back starts a new sweep)",
            metadata=metadata,
            notes=notes,
        )


# --- Maccor impedance export ---------------------------------------------------------------------

_MACCOR_SWEEP = "Frequency Sweep:"
_MACCOR_START = re.compile(r"Start Date:\s*(?P<date>.*?)\s*Start Time:\s*(?P<time>.*)$")


class MaccorEisParser:
    """Maccor impedance export (the layout BEEP's MaccorEIS reads): a preamble with
    ``Frequency Sweep: ...`` on line 2, the method and file name on lines 3-4 and
    ``Start Date: ... Start Time: ...`` by line 10, then a tab separated table whose columns
    are found by their labels (as ``impedance_table`` does; a leading ``-`` on the Z''
    label means the file holds -Z'')."""

    name: ClassVar[str] = "maccor_eis"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "eis"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head)
        if not lines or not any(line.startswith(_MACCOR_SWEEP) for line in lines[:3]):
            return 0.0
        if not any(_MACCOR_START.search(line) for line in lines[:12]):
            return 0.0
        return 0.95 if _table_header(lines) is not None else 0.3

    def parse(self, path: Path, ctx: ParseContext) -> EisData:
        lines, encoding = read_text(path, ctx)
        sweep_line = next((i for i, s in enumerate(lines[:3]) if s.startswith(_MACCOR_SWEEP)), None)
        if sweep_line is None:
            raise ParseError(
                f"no {_MACCOR_SWEEP!r} line: not a Maccor impedance export", location="lines 1-3"
            )
        found = _table_header(lines)
        if found is None:
            raise ParseError(
                "no column header naming frequency, Z' and Z''",
                location=f"lines 1-{min(len(lines), 200)}",
            )
        index, sep, columns = found
        header = _split(lines[index], sep)
        indices = {key: position for key, (position, _) in columns.items()}
        labels = {key: header[position] for key, position in indices.items()}
        time_at = next((i for i, h in enumerate(header) if _TIME_S.match(h.strip())), None)
        if time_at is not None:
            indices["t"], labels["t"] = time_at, header[time_at]
        negate = columns["im"][1]
        rows = _data_rows(lines, index + 1, lambda s: _split(s, sep), lambda s: False)
        if not rows:
            raise ParseError("no data rows after the header", location=f"line {index + 2}")
        notes: list[str] = []
        points, source = _spectrum(rows, indices, labels, negate_imag=negate, warnings_=notes)
        metadata: dict[str, Any] = {
            "source_columns": header,
            "encoding": encoding,
            "header_line": index + 1,
            "frequency_sweep": lines[sweep_line][len(_MACCOR_SWEEP) :].strip(),
        }
        preamble = lines[sweep_line + 1 : index]
        if len(preamble) >= 2:
            metadata["method"], metadata["source_filename"] = (
                preamble[0].strip(),
                preamble[1].strip(),
            )
        for line in preamble:
            match = _MACCOR_START.search(line)
            if match:
                metadata["start_time_text"] = f"{match['date']} {match['time']}".strip()
        wrote = f"{labels['im']} " + (
            "(-Z'', positive for capacitive)" if negate else "(Z'' as written)"
        )
        return _finish(
            points,
            vendor="maccor",
            technique="",
            wrote=wrote,
            negated=negate,
            sweep_source=source,
            metadata=metadata,
            notes=notes,
        )


PARSERS = (
    BiologicMptEisParser,
    BiologicMprEisParser,
    GamryDtaParser,
    ImpedanceTableParser,
    VersaStudioParParser,
    MaccorEisParser,
)
