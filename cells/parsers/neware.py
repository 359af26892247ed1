"""Neware: ``.nda``/``.ndax`` binaries via fastnda, and BTSDA CSV exports (the record-layer
export and the layered cycle/step/record export).

Neware current is signed (negative = discharge). fastnda merges the per-step charge and
discharge counters into one signed ``capacity_mAh`` (reset at every step), which is split
back by its sign here. fastnda renumbers cycles unless asked for ``cycle_mode="raw"``; raw
keeps the instrument's cycle (fastnda only shifts the few 0-based file versions to 1-based).
An ``.ndax`` zip is checked on its declared member count and sizes before anything is inflated.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from cells.parsers.direction import apply_direction, state_direction
from cells.parsers.mapping import (
    SPLIT_QUANTITIES,
    AliasTable,
    ColumnSpec,
    canonical_expressions,
    resolve_aliases,
)
from cells.parsers.tabular import check_required, text_to_cycler
from cells.parsers.types import CyclerData, canonical_eager, canonical_frame
from cells.parsers.units import split_label
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import (
    TextLayout,
    describe_exception,
    finalize,
    numeric_row,
    read_head,
    read_layout,
    scan_table,
    sniff_lines,
    split_fields,
    truncated_tail_warning,
)

NDA_MAGIC = b"NEWARE"
ZIP_MAGIC = b"PK\x03\x04"
_NDAX_MEMBERS = (b"data.ndc", b"Step.xml", b"TestInfo.xml", b"VersionInfo.xml", b"data_runInfo.ndc")

NEWARE_CONVENTIONS = {
    "current_sign": "as written: Neware current is negative for discharge",
    "capacity": "per-step counters (reset at every step); fastnda's signed capacity split "
    "by sign into charge/discharge",
}


class _Collect(logging.Handler):
    """Collect fastnda's log warnings (negative time jumps, unverified versions)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


class NewareNdaParser:
    """Neware ``.nda`` (BTS 7/8/9 binaries) and ``.ndax`` (zip of .ndc streams) via fastnda."""

    name: ClassVar[str] = "neware_nda"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        if head.startswith(NDA_MAGIC):
            return 0.99
        if head.startswith(ZIP_MAGIC):
            hits = sum(1 for member in _NDAX_MEMBERS if member in head)
            if hits >= 2 or (hits and filename.lower().endswith(".ndax")):
                return 0.97
            return 0.5 if filename.lower().endswith(".ndax") else 0.0
        return 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        head = read_head(path, 8)
        if not head:
            raise ParseError("file is empty", location="byte 0")
        if head.startswith(NDA_MAGIC):
            suffix = ".nda"
        elif head.startswith(ZIP_MAGIC):
            suffix = ".ndax"
        else:
            raise ParseError(
                "not a Neware file: no NEWARE magic and not an .ndax zip", location="byte 0"
            )
        if suffix == ".ndax":
            check_ndax_zip(path)
        with _with_suffix(path, suffix) as source:
            raw, messages = _read(source, suffix)
            source_meta = _read_meta(source)
        if raw.height == 0:
            raise ParseError("no data records in the file", location="data records")
        conventions = dict(NEWARE_CONVENTIONS)
        conventions["cycle"] = "file cycle (fastnda cycle_mode='raw'; 1-based as BTSDA shows it)"
        conventions["step"] = "step_index as written (program step number)"
        conventions["time"] = "total_time_s from fastnda (test time)"
        metadata = _metadata(source_meta, raw)
        return CyclerData(_canonical(raw), "neware", conventions, metadata, messages)


# Bounds on an .ndax zip, checked on its declared sizes before anything is inflated. Real
# files hold about ten members that inflate 2-6x (data.ndc ~1.7-4x); a few kilobytes of
# zero-filled pages may inflate 40x, hence the floor below which the ratio is not judged.
NDAX_MAX_MEMBERS = 256
NDAX_MAX_MEMBER_BYTES = 2 * 1024**3
NDAX_MAX_TOTAL_BYTES = 4 * 1024**3
NDAX_MAX_RATIO = 100
NDAX_RATIO_FLOOR_BYTES = 4 * 1024**2


def check_ndax_zip(path: Path) -> None:
    """Refuse an .ndax whose zip directory declares more than a real file could hold.

    A 3 MB file declaring two 1.5 GiB members drove a worker to 5 GB: the declared member
    count, sizes and compression ratios are checked here, before fastnda inflates anything
    (Python's zipfile never inflates past a member's declared size).
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ParseError(
            f"broken .ndax zip (truncated?): {describe_exception(exc)}", location="zip directory"
        ) from exc
    if len(members) > NDAX_MAX_MEMBERS:
        raise ParseError(
            f"the zip lists {len(members)} members; an .ndax holds a few dozen at most "
            f"(limit {NDAX_MAX_MEMBERS})",
            location="zip directory",
        )
    total = 0
    for member in members:
        where = f"zip member {member.filename!r}"
        size, packed = member.file_size, max(member.compress_size, 1)
        if size > NDAX_MAX_MEMBER_BYTES:
            raise ParseError(
                f"member declares {size} bytes uncompressed (limit {NDAX_MAX_MEMBER_BYTES})",
                location=where,
            )
        if size > NDAX_RATIO_FLOOR_BYTES and size > NDAX_MAX_RATIO * packed:
            raise ParseError(
                f"member declares {size} bytes from {member.compress_size} compressed "
                f"(ratio {size // packed}:1, limit {NDAX_MAX_RATIO}:1): a zip bomb, not "
                "Neware data",
                location=where,
            )
        total += size
        if total > NDAX_MAX_TOTAL_BYTES:
            raise ParseError(
                f"members declare more than {NDAX_MAX_TOTAL_BYTES} bytes uncompressed in all",
                location=where,
            )


@contextmanager
def _with_suffix(path: Path, suffix: str) -> Iterator[Path]:
    """fastnda dispatches on the suffix: link the file under the right one when it lacks it."""
    if path.suffix.lower() == suffix:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="lims-neware-") as tmp:
        link = Path(tmp) / f"data{suffix}"
        link.symlink_to(path.resolve())
        yield link


def _read(source: Path, suffix: str) -> tuple[pl.DataFrame, list[str]]:
    import fastnda

    collector = _Collect()
    log = logging.getLogger("fastnda")
    log.addHandler(collector)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            raw = fastnda.read(source, cycle_mode="raw")
    except zipfile.BadZipFile as exc:
        raise ParseError(
            f"broken .ndax zip (truncated?): {describe_exception(exc)}", location="zip directory"
        ) from exc
    except Exception as exc:  # fastnda raises ValueError/EOFError/KeyError/struct errors
        raise ParseError(
            f"fastnda cannot read the file: {describe_exception(exc)}",
            location=_location(exc, suffix),
        ) from exc
    finally:
        log.removeHandler(collector)
    return raw, [str(w.message) for w in caught] + collector.messages


def _location(exc: Exception, suffix: str) -> str:
    text = str(exc)
    match = re.search(r"(?:offset|position|byte)\D{0,5}(\d+)", text)
    if match:
        return f"byte offset {match.group(1)}"
    return "data records" if suffix == ".nda" else "data.ndc in the .ndax zip"


# fastnda column -> canonical column and scale; columns a file version lacks stay null.
_FASTNDA_COLUMNS = {
    "total_time_s": ("time_s", 1.0),
    "cycle_count": ("cycle", 1.0),
    "step_index": ("step", 1.0),
    "current_mA": ("current_a", 1e-3),
    "voltage_V": ("voltage_v", 1.0),
}


def _canonical(raw: pl.DataFrame) -> pl.LazyFrame:
    exprs: dict[str, pl.Expr] = {}
    for source, (target, scale) in _FASTNDA_COLUMNS.items():
        if source in raw.columns:
            exprs[target] = pl.col(source).cast(pl.Float64) * scale
    # fastnda merges the per-step counters into one signed value (+ charge, - discharge).
    for source, name in (("capacity_mAh", "capacity_ah"), ("energy_mWh", "energy_wh")):
        if source in raw.columns:
            value = pl.col(source).cast(pl.Float64) / 1000.0
            exprs[f"charge_{name}"] = pl.when(value > 0).then(value).otherwise(0.0)
            exprs[f"discharge_{name}"] = pl.when(value < 0).then(-value).otherwise(0.0)
    temperature = next(
        (c for c in raw.columns if c.startswith("aux") and c.endswith("temperature_degC")), None
    )
    if temperature:
        exprs["temperature_c"] = pl.col(temperature)
    return canonical_eager(raw, exprs).lazy()


def _read_meta(source: Path) -> dict[str, Any]:
    """fastnda's metadata (versions, start time, step program); best effort, never fails."""
    import fastnda

    try:
        return dict(fastnda.read_metadata(source))
    except Exception as exc:  # metadata is best effort; the data records decide success
        logging.getLogger(__name__).warning("Neware metadata unreadable", exc_info=True)
        return {"metadata_error": f"{type(exc).__name__}: {exc}"}


def _metadata(source_meta: dict[str, Any], raw: pl.DataFrame) -> dict[str, Any]:
    """fastnda's metadata as is, plus the few fields every vendor reports, at the top level."""
    meta: dict[str, Any] = {k: _json(v) for k, v in source_meta.items()}
    # .ndax: TestInfo.xml / VersionInfo.xml; .nda: already flat (start_time, client_version).
    test_info = meta.get("TestInfo", {}).get("TestInfo", {}) if "TestInfo" in meta else {}
    version_info = meta.get("VersionInfo", {})
    if isinstance(test_info, dict) and test_info:
        if test_info.get("StartTime"):
            meta.setdefault("start_time", str(test_info["StartTime"]).replace(" ", "T"))
        if test_info.get("ChlID") is not None:
            ids = (test_info.get("DevID"), test_info.get("UnitID"), test_info.get("ChlID"))
            meta.setdefault("channel", "-".join(str(i) for i in ids if i is not None))
        for key, name in (("Barcode", "barcode"), ("StepName", "protocol")):
            if test_info.get(key):
                meta.setdefault(name, test_info[key])
    if isinstance(version_info, dict) and version_info.get("SortVersion"):
        meta.setdefault("software_version", version_info["SortVersion"])
    if "client_version" in meta:
        meta.setdefault("software_version", meta["client_version"])
    if isinstance(meta.get("start_time"), str):
        meta["start_time"] = meta["start_time"].replace(" ", "T")
    if "unix_time_s" in raw.columns:
        first = raw.get_column("unix_time_s").drop_nulls().head(1)
        if first.len():
            # Neware clocks are local time written as if UTC: keep it naive.
            stamp = datetime.fromtimestamp(float(first[0]), tz=UTC).replace(tzinfo=None)
            meta["first_record_time"] = stamp.isoformat()
    meta["source_columns"] = raw.columns
    return meta


def _json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return str(value)


# --- BTSDA CSV ------------------------------------------------------------------------------

# English and Chinese-locale BTSDA labels (keys as units.name_key makes them).
NEWARE_CSV_ALIASES: AliasTable = (
    ("time_s", ("totaltime", "cumulativetime", "testtime", "总时间", "累计时间"), "s"),
    ("cycle", ("cycleindex", "cycleid", "cycle", "循环序号", "循环号"), "1"),
    ("step", ("stepindex", "stepid", "step", "工步序号", "工步号"), "1"),
    ("current_a", ("current", "cur", "电流"), "A"),
    ("voltage_v", ("voltage", "电压"), "V"),
    ("charge_capacity_ah", ("chgcap", "chargecapacity", "capacitancechg", "充电容量"), "Ah"),
    (
        "discharge_capacity_ah",
        ("dchgcap", "dischargecapacity", "capacitancedchg", "放电容量"),
        "Ah",
    ),
    ("charge_energy_wh", ("chgenergy", "chargeenergy", "engychg", "充电能量"), "Wh"),
    ("discharge_energy_wh", ("dchgenergy", "dischargeenergy", "engydchg", "放电能量"), "Wh"),
    ("temperature_c", ("t1", "temperature", "auxtemperature*", "temperature*", "温度"), "degC"),
)
_CSV_KEYS = frozenset(
    {"datapoint", "cycleindex", "cycleid", "stepindex", "steptype", "chgcap", "dchgcap"}
    | {"数据序号", "循环序号", "工步序号", "工步类型", "充电容量", "放电容量"}
)


def _neware_header_score(line: str) -> int:
    if numeric_row(line):  # a data row: no label
        return 0
    keys = {split_label(field).key for field in re.split(r"[,\t]", line)}
    return len(keys & _CSV_KEYS)


class NewareCsvParser:
    """Neware BTSDA 'record layer' CSV export (A/Ah or mA/mAh, ``hh:mm:ss`` times)."""

    name: ClassVar[str] = "neware_csv"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 5, encodings=("utf-8", "gb18030"))
        if not lines:
            return 0.0
        score = max((_neware_header_score(line) for line in lines[:5]), default=0)
        if score >= 4:
            return 0.95
        return 0.5 if score >= 3 else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(
            path,
            ctx,
            lambda lines: next(
                (i for i, line in enumerate(lines[:30]) if _neware_header_score(line) >= 3), None
            ),
            what="Neware BTSDA column header",
        )
        warnings_: list[str] = []
        specs = resolve_aliases(layout.columns, NEWARE_CSV_ALIASES, warnings_)
        check_required(specs, layout.columns, "not a Neware record export")
        conventions = dict(NEWARE_CONVENTIONS)
        conventions["capacity"] = "Chg./DChg. Cap. columns as written (reset at every step)"
        conventions["cycle"] = "Cycle Index as written (1-based)"
        return text_to_cycler(
            layout,
            specs,
            vendor="neware",
            conventions=conventions,
            metadata={"export": "BTSDA CSV"},
            warnings=warnings_,
        )


# --- BTSDA layered ("regular") CSV ----------------------------------------------------------
#
# BTSDA's default export writes three layers into one sheet: a cycle row (first field set), its
# step rows (first field empty, second set) and each step's record rows (first two empty). The
# three header lines name the columns of each layer at their own positions. Only the record
# layer is a series; its cycle, step and step type come from the enclosing rows. BTSDA may write
# a cycle row and its first step row on one line: a cycle row longer than the cycle header
# carries the step fields after the cycle fields.

_LAYER_CYCLE_KEYS = frozenset({"cycleindex", "cycleid", "cycle", "循环序号", "循环号"})
_LAYER_STEP_KEYS = frozenset({"stepindex", "stepid", "工步序号", "工步号"})
_LAYER_RECORD_KEYS = frozenset({"datapoint", "recordid", "record", "recordindex", "数据序号"})
_LAYER_MAX_COLUMNS = 1000
_STEP_TYPE_KEYS = ("steptype", "stepname", "工步类型", "工步名称")
# Record-layer quantities. The per-step counter is one unsigned column (Capacity(Ah)): it is
# split into charge/discharge by the enclosing step's type.
NEWARE_RECORD_ALIASES: AliasTable = (
    ("time_s", ("totaltime", "cumulativetime", "testtime", "总时间", "累计时间"), "s"),
    ("current_a", ("current", "cur", "电流"), "A"),
    ("voltage_v", ("voltage", "电压"), "V"),
    ("capacity_ah", ("capacity", "cap", "容量"), "Ah"),
    ("energy_wh", ("energy", "engy", "能量"), "Wh"),
    ("temperature_c", ("t1", "temperature", "auxtemperature*", "temperature*", "温度"), "degC"),
)
# Timestamps, used for the test time only when the record layer has no test-time column
# (BTS 7 exports give the step time and the real time).
_REALTIME_KEYS = ("realtime", "date", "datetime", "systemtime", "绝对时间", "系统时间")


def _fields(line: str) -> list[str]:
    return split_fields(line, "\t" if "\t" in line else ",")


def _layer_headers(lines: list[str]) -> int | None:
    """Index of the record header when the first three non-empty lines are the three layers."""
    for index in range(min(len(lines) - 2, 20)):
        first, second, third = (_fields(lines[index + k]) for k in range(3))
        if (
            len(first) > 1
            and split_label(first[0]).key in _LAYER_CYCLE_KEYS
            and len(second) > 2
            and not second[0]
            and split_label(second[1]).key in _LAYER_STEP_KEYS
            and len(third) > 3
            and not third[0]
            and not third[1]
            and split_label(third[2]).key in _LAYER_RECORD_KEYS
        ):
            return index + 2
    return None


class NewareLayeredCsvParser:
    """Neware BTSDA layered export: cycle, step and record layers interleaved in one sheet."""

    name: ClassVar[str] = "neware_csv_layered"
    version: ClassVar[str] = "1.0.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 25, encodings=("utf-8", "gb18030"))
        if not lines:
            return 0.0
        return 0.97 if _layer_headers(lines) is not None else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(path, ctx, _layer_headers, what="Neware layered header (3 lines)")
        cycle_labels = split_fields(layout.preamble[-2], layout.separator)
        step_labels = split_fields(layout.preamble[-1], layout.separator)
        record_labels = list(layout.columns)
        width = max(len(record_labels), len(cycle_labels) + len(step_labels))
        if width > _LAYER_MAX_COLUMNS:  # each column is a polars column: bound it
            raise ParseError(
                f"{width} columns across the three header lines (limit {_LAYER_MAX_COLUMNS})",
                location=f"lines {layout.header_line - 1}-{layout.header_line + 1}",
            )
        names = tuple(f"c{i}" for i in range(width))
        warnings_: list[str] = []
        # Record quantities by label, then bound to their positions.
        labelled = [(i, c) for i, c in enumerate(record_labels) if i >= 2 and c.strip()]
        readable = [_degree_unit(c) for _, c in labelled]
        specs = resolve_aliases(readable, NEWARE_RECORD_ALIASES, warnings_)
        position = {r: f"c{i}" for (i, _), r in zip(labelled, readable, strict=True)}
        specs = [ColumnSpec(position[s.source], s.quantity, s.unit, s.sign) for s in specs]
        label_of = {f"c{i}": c for i, c in labelled}
        if not any(s.quantity == "time_s" for s in specs):
            stamp = next((c for _, c in labelled if split_label(c).key in _REALTIME_KEYS), None)
            if stamp is not None:
                specs.append(ColumnSpec(position[stamp], "time_s", "datetime"))
        check_required(
            [ColumnSpec(label_of[s.source], s.quantity, s.unit) for s in specs],
            record_labels,
            "not a Neware layered export (record layer)",
        )
        step_pos = 1
        type_pos = next(
            (i for i, c in enumerate(step_labels) if split_label(c).key in _STEP_TYPE_KEYS), None
        )
        merged = len(cycle_labels) - 1  # a step field at j sits at merged + j on a cycle row
        scan_layout = dataclasses.replace(layout, columns=names, raw_columns=names)
        dtypes: dict[str, pl.DataType] = {name: pl.String() for name in names}
        frame = scan_table(scan_layout, dtypes)
        c = pl.col
        is_cycle = c("c0").is_not_null()
        is_step = c("c0").is_null() & c("c1").is_not_null()
        is_record = c("c0").is_null() & c("c1").is_null() & c("c2").is_not_null()
        carries_step = is_cycle & c(f"c{merged + step_pos}").is_not_null()

        def layer_value(step_column: int) -> pl.Expr:
            return (
                pl.when(is_step)
                .then(c(f"c{step_column}"))
                .when(carries_step)
                .then(c(f"c{merged + step_column}"))
            )

        frame = frame.with_columns(
            pl.when(is_cycle).then(c("c0")).forward_fill().alias("_cycle"),
            layer_value(step_pos).forward_fill().alias("_step"),
            (
                layer_value(type_pos).forward_fill()
                if type_pos is not None
                else pl.lit(None, dtype=pl.String)
            ).alias("_type"),
        ).filter(is_record)
        samples = _record_samples(layout, specs)
        exprs = canonical_expressions(
            [s for s in specs if s.quantity not in SPLIT_QUANTITIES], dtypes, samples
        )
        exprs.update(
            canonical_expressions(
                [
                    ColumnSpec(s.source, f"charge_{s.quantity}", s.unit)
                    for s in specs
                    if s.quantity in SPLIT_QUANTITIES
                ],
                dtypes,
                samples,
            )
        )
        for name in SPLIT_QUANTITIES:
            if f"charge_{name}" in exprs:
                exprs[name] = exprs.pop(f"charge_{name}")
        charge, discharge = state_direction(c("_type"))
        apply_direction(exprs, charge, discharge)
        exprs["cycle"] = c("_cycle").str.replace(",", ".", literal=True).cast(pl.Float64)
        exprs["step"] = c("_step").str.replace(",", ".", literal=True).cast(pl.Float64)
        series = finalize(canonical_frame(frame, exprs), layout)
        conventions = dict(NEWARE_CONVENTIONS)
        conventions.update(
            {
                "layers": "record layer is the series; cycle and step from the enclosing "
                "cycle and step rows",
                "cycle": f"{cycle_labels[0]!r} of the enclosing cycle row, as written (1-based)",
                "step": f"{step_labels[step_pos]!r} of the enclosing step row, as written",
                "capacity": "the record layer's per-step counter (reset every step), assigned "
                "to charge or discharge by the enclosing step's type "
                f"({step_labels[type_pos]!r}: 'Chg' charge, 'DChg' discharge; other steps by "
                "the current's sign)"
                if type_pos is not None
                else "the record layer's per-step counter, split by the current's sign",
            }
        )
        for spec in specs:
            conventions[f"column:{spec.quantity}"] = f"{label_of[spec.source]!r} [{spec.unit}]"
        tail = truncated_tail_warning(layout)
        if tail is not None:
            warnings_.append(tail)
        metadata: dict[str, Any] = {
            "export": "BTSDA layered CSV (cycle/step/record)",
            "encoding": layout.encoding,
            "delimiter": layout.separator,
            "decimal": "," if layout.decimal_comma else ".",
            "header_line": layout.header_line + 1,
            "source_columns": {
                "cycle": cycle_labels,
                "step": step_labels,
                "record": list(layout.raw_columns),
            },
        }
        return CyclerData(series, "neware", conventions, metadata, warnings_)


def _degree_unit(label: str) -> str:
    """BTSDA writes the degree sign as '?' in exports whose code page lacks it (``T1(?)``)."""
    parts = split_label(label)
    if parts.unit in ("?", "??") and parts.key in ("t1", "t2", "temperature", "温度"):
        return f"{parts.name}(degC)"
    return label


def _record_samples(layout: TextLayout, specs: list[ColumnSpec]) -> dict[str, list[str]]:
    """First values of each mapped record column, from record rows of the sampled lines."""
    rows = [row for row in layout.sample if len(row) > 2 and not row[0] and not row[1]]
    out: dict[str, list[str]] = {}
    for spec in specs:
        index = int(spec.source[1:])
        out[spec.source] = [row[index] for row in rows if index < len(row)]
    return out
