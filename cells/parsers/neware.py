"""Neware: ``.nda``/``.ndax`` binaries via fastnda, and BTSDA CSV exports.

Neware current is signed (negative = discharge). fastnda merges the per-step charge and
discharge counters into one signed ``capacity_mAh`` (reset at every step), which is split
back by its sign here. fastnda renumbers cycles unless asked for ``cycle_mode="raw"``; raw
keeps the instrument's cycle (fastnda only shifts the few 0-based file versions to 1-based).
"""

from __future__ import annotations

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

from cells.parsers.mapping import AliasTable, resolve_aliases
from cells.parsers.tabular import check_required, text_to_cycler
from cells.parsers.types import CyclerData, canonical_eager
from cells.parsers.units import split_label
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import describe_exception, read_head, read_layout, sniff_lines

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
