"""Arbin: ``.res`` result databases (MS Access), CSV exports and XLSX exports.

Arbin writes current in A (positive = charge), voltage in V, test time in s and
``Charge_Capacity``/``Discharge_Capacity`` in Ah that keep counting through a cycle's steps
(MITS Pro resets them at each new ``Cycle_Index``); exports may start with counters carried
over from an earlier part of the test (the summary takes them as the baseline, not as cycle 1).
``Cycle_Index`` and ``Step_Index`` are kept as written.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, ClassVar

import polars as pl

from cells.parsers.mapping import AliasTable, resolve_aliases
from cells.parsers.tabular import check_required, frame_to_cycler, read_excel_sheets, text_to_cycler
from cells.parsers.types import CyclerData
from lims.ingestion.parsing import ParseContext, ParseError
from lims.ingestion.text import describe_exception, read_head, read_layout, sniff_lines

logger = logging.getLogger(__name__)
TABLE = "Channel_Normal_Table"
JET_MAGIC = (b"Standard Jet DB", b"Standard ACE DB")

ARBIN_ALIASES: AliasTable = (
    ("time_s", ("testtime",), "s"),
    ("cycle", ("cycleindex", "cycle"), "1"),
    ("step", ("stepindex", "step"), "1"),
    ("current_a", ("current",), "A"),
    ("voltage_v", ("voltage",), "V"),
    ("charge_capacity_ah", ("chargecapacity",), "Ah"),
    ("discharge_capacity_ah", ("dischargecapacity",), "Ah"),
    ("charge_energy_wh", ("chargeenergy",), "Wh"),
    ("discharge_energy_wh", ("dischargeenergy",), "Wh"),
    ("temperature_c", ("temperature", "auxtemperature*", "temperature*"), "degC"),
)
ARBIN_CONVENTIONS = {
    "current_sign": "as written: Arbin current is positive for charge (A)",
    "cycle": "Cycle_Index as written (1-based)",
    "step": "Step_Index as written (schedule step)",
    "capacity": "Charge_/Discharge_Capacity (Ah) as written: cumulative within a cycle, "
    "reset at a new cycle; an export may start with counters carried over (metadata, not "
    "counted: see carried_over_*)",
}
_KEYS = ("datapoint", "testtime", "cycleindex", "stepindex", "chargecapacity", "current")


def _arbin_header_score(line: str) -> int:
    keys = {re.sub(r"[^0-9a-z]", "", re.sub(r"\(.*?\)", "", f.lower())) for f in line.split(",")}
    return sum(1 for key in _KEYS if key in keys)


class ArbinCsvParser:
    """Arbin MITS CSV export (``Data_Point,Test_Time,...`` or ``Test_Time(s),Current(A),...``)."""

    name: ClassVar[str] = "arbin_csv"
    version: ClassVar[str] = "1.1.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        lines = sniff_lines(head, 3)
        if not lines:
            return 0.0
        score = _arbin_header_score(lines[0])
        if score >= 5:
            return 0.95
        return 0.6 if score >= 4 else 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        layout = read_layout(
            path,
            ctx,
            lambda lines: next(
                (i for i, line in enumerate(lines[:50]) if _arbin_header_score(line) >= 4), None
            ),
            what="Arbin column header",
        )
        warnings: list[str] = []
        specs = resolve_aliases(layout.columns, ARBIN_ALIASES, warnings)
        check_required(specs, layout.columns, "not an Arbin export")
        return text_to_cycler(
            layout,
            specs,
            vendor="arbin",
            conventions=dict(ARBIN_CONVENTIONS),
            metadata={},
            warnings=warnings,
        )


def _data_sheets(names: list[str]) -> list[str]:
    """Arbin splits long tests over ``Channel_<n>_1``, ``Channel_<n>_2``... in order."""

    def order(name: str) -> tuple[int, ...]:
        # A sheet name is text from the file: at most 18 digits per number (int() refuses
        # numbers of thousands of digits with a ValueError).
        return tuple(int(n[:18]) for n in re.findall(r"\d+", name))

    return sorted((n for n in names if n.lower().startswith("channel")), key=order)


class ArbinXlsxParser:
    """Arbin XLSX export: ``Global_Info`` sheet plus ``Channel_*`` data sheets."""

    name: ClassVar[str] = "arbin_xlsx"
    version: ClassVar[str] = "1.1.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        if not head.startswith(b"PK\x03\x04"):
            return 0.0
        if b"xl/" not in head and b"[Content_Types].xml" not in head:
            return 0.0
        return 0.7 if "channel" in filename.lower() else 0.4

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        if not read_head(path, 4):
            raise ParseError("file is empty", location="byte 0")
        frame, sheets, names = read_excel_sheets(path, _data_sheets)
        warnings: list[str] = []
        specs = resolve_aliases(frame.columns, ARBIN_ALIASES, warnings)
        check_required(specs, frame.columns, f"sheet {sheets[0]!r} is not Arbin data")
        metadata: dict[str, Any] = {"sheets": sheets}
        if "Global_Info" in names:
            metadata.update(_global_info(path))
        return frame_to_cycler(
            frame,
            specs,
            vendor="arbin",
            conventions=dict(ARBIN_CONVENTIONS),
            metadata=metadata,
            warnings=warnings,
        )


def _global_info(path: Path) -> dict[str, Any]:
    """The key/value row pair of Arbin's Global_Info sheet (channel, start time, schedule)."""
    import fastexcel

    try:
        sheet = fastexcel.read_excel(path).load_sheet("Global_Info", header_row=None)
        rows = sheet.to_polars().rows()
    except Exception as exc:  # metadata is best effort; the data sheet decides success
        logger.warning("Arbin Global_Info unreadable in %s", path, exc_info=True)
        return {"metadata_error": f"Global_Info: {type(exc).__name__}: {exc}"}
    for index, row in enumerate(rows[:-1]):
        if row and str(row[0]).strip().lower() == "channel":
            keys = [str(k).strip() for k in row]
            values = rows[index + 1]
            info = {
                k: _json_safe(v) for k, v in zip(keys, values, strict=False) if k and k != "None"
            }
            out: dict[str, Any] = {"global_info": info, "channel": info.get("Channel")}
            if info.get("Start DateTime"):
                out["start_time"] = str(info["Start DateTime"]).replace(" ", "T")
            return out
    return {}


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


# --- .res ----------------------------------------------------------------------------------

_OLE_EPOCH = datetime(1899, 12, 30)


def _ole_to_iso(days: Any) -> str | None:
    try:
        return (_OLE_EPOCH + timedelta(days=float(days))).isoformat()
    except (TypeError, ValueError, OverflowError):
        return None


class ArbinResParser:
    """Arbin ``.res`` (MS Access) via access_parser, falling back to mdbtools' ``mdb-export``."""

    name: ClassVar[str] = "arbin_res"
    version: ClassVar[str] = "1.1.0"
    kind: ClassVar[str] = "cycler"

    def sniff(self, head: bytes, filename: str) -> float:
        if head[4:19] in JET_MAGIC:
            return 0.97 if filename.lower().endswith(".res") else 0.7
        return 0.0

    def parse(self, path: Path, ctx: ParseContext) -> CyclerData:
        head = read_head(path, 32)
        if not head:
            raise ParseError("file is empty", location="byte 0")
        if head[4:19] not in JET_MAGIC:
            raise ParseError("not an MS Access (.res) database: bad magic", location="byte 4")
        # Access files are whole pages (2 KiB Jet 3, 4 KiB Jet 4/ACE); a partial last page
        # means a cut copy, which both readers would otherwise return partly and silently.
        page = 2048 if len(head) > 0x14 and head[0x14] == 0 else 4096
        size = path.stat().st_size
        if size % page:
            raise ParseError(
                f"truncated database: {size} bytes is not a whole number of {page}-byte pages",
                location=f"byte {size - size % page}",
            )
        warnings: list[str] = []
        metadata: dict[str, Any] = {"reader": "access_parser"}
        try:
            frame, extra = _read_with_access_parser(path)
            metadata.update(extra)
        except ParseError as exc:
            frame = _read_with_mdbtools(path, cause=exc)
            metadata["reader"] = "mdb-export"
            warnings.append(f"access_parser failed ({exc.message}); read with mdb-export")
        specs = resolve_aliases(frame.columns, ARBIN_ALIASES, warnings)
        check_required(specs, frame.columns, f"table {TABLE}")
        return frame_to_cycler(
            frame,
            specs,
            vendor="arbin",
            conventions=dict(ARBIN_CONVENTIONS),
            metadata=metadata,
            warnings=warnings,
        )


def _read_with_access_parser(path: Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    from access_parser import AccessParser

    try:
        db = AccessParser(str(path))
        if TABLE not in db.catalog:
            raise ParseError(f"no table {TABLE} in the database", location=f"table {TABLE}")
        table = db.parse_table(TABLE)
    except ParseError:
        raise
    except Exception as exc:  # access_parser raises anything from struct errors to KeyError
        raise ParseError(
            f"access_parser cannot read the database: {describe_exception(exc)}",
            location=f"table {TABLE}",
        ) from exc
    lengths = {len(values) for values in table.values() if isinstance(values, list)}
    if not table or len(lengths) != 1 or 0 in lengths:
        raise ParseError(
            f"{TABLE} is empty or its columns differ in length", location=f"table {TABLE}"
        )
    try:
        frame = pl.DataFrame(dict(table), strict=False)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise ParseError(f"{TABLE} has unusable columns: {exc}", location=f"table {TABLE}") from exc
    order = [c for c in ("Test_ID", "Data_Point") if c in frame.columns]
    if order:
        frame = frame.sort(order, maintain_order=True)
    return frame, _res_metadata(db)


def _res_metadata(db: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        glob = db.parse_table("Global_Table")
        first = {k: v[0] for k, v in glob.items() if isinstance(v, list) and v}
        out["channel"] = first.get("Channel_Index")
        out["test_name"] = first.get("Test_Name")
        out["schedule"] = first.get("Schedule_File_Name")
        out["creator"] = first.get("Creator")
        out["start_time"] = _ole_to_iso(first.get("Start_DateTime"))
        version = db.parse_table("Version_Table")
        out["software_version"] = (version.get("Version_Schema_Field") or [None])[0]
    except Exception as exc:  # metadata is best effort; the data table decides success
        logger.warning("Arbin metadata tables unreadable", exc_info=True)
        out["metadata_error"] = f"{type(exc).__name__}: {exc}"
    return {k: _json_safe(v) for k, v in out.items() if v not in (None, "")}


# mdb-export on a damaged database can loop, printing a warning per row it cannot decode
# (a byte-flipped .res wrote about 1 GB of warnings per 10 s) or rows without end. Its
# output is streamed and bounded, never captured whole: these limits end it with a reason.
MDB_STDERR_LIMIT = 1 << 20  # bytes of warnings before the database counts as damaged
MDB_STDERR_KEPT = 4096  # bytes of them kept for the error message
MDB_MEMORY_LIMIT = 2 << 30  # address space of the child
MDB_TIMEOUT_S = 600.0


def mdb_output_limit(size: int) -> int:
    """Bytes of CSV mdb-export may write for a database of ``size`` bytes.

    Access stores a reading in 4-8 bytes, CSV text in 10-20: a sound table's export is about
    the database's size (0.6x for the fixture); 8x plus 64 MiB is far beyond any sound file.
    """
    return 8 * size + (64 << 20)


class BoundedRunError(Exception):
    """A child process went past one of its limits and was killed."""


def run_bounded(
    command: list[str],
    stdout: IO[bytes],
    *,
    max_stdout: int,
    max_stderr: int = MDB_STDERR_LIMIT,
    keep_stderr: int = MDB_STDERR_KEPT,
    timeout_s: float = MDB_TIMEOUT_S,
    max_memory: int = MDB_MEMORY_LIMIT,
) -> tuple[int, bytes]:
    """Run ``command`` with stdout to a file and stderr streamed; kill it past any limit.

    Returns the exit code and the first ``keep_stderr`` bytes of stderr. Raises
    :class:`BoundedRunError` (naming the limit) when the child writes ``max_stdout`` bytes of
    output or more, more than ``max_stderr`` bytes of warnings, or runs past ``timeout_s``.
    Memory: the child's address space is capped (Linux) so it cannot take the worker down.
    """
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    _cap_child(proc.pid, max_memory=max_memory, max_file=max_stdout)
    kept = bytearray()
    written = 0
    deadline = time.monotonic() + timeout_s
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stderr, selectors.EVENT_READ)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BoundedRunError(f"no result after {timeout_s:.0f} s")
                if os.fstat(stdout.fileno()).st_size >= max_stdout:
                    raise BoundedRunError(f"{max_stdout} bytes of output or more")
                if not selector.select(timeout=min(remaining, 0.5)):
                    continue
                chunk = os.read(proc.stderr.fileno(), 1 << 16)
                if not chunk:
                    break  # the child closed stderr: it has ended (or is about to)
                written += len(chunk)
                if len(kept) < keep_stderr:
                    kept += chunk[: keep_stderr - len(kept)]
                if written > max_stderr:
                    raise BoundedRunError(f"more than {max_stderr} bytes of warnings")
        code = proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired as exc:
        proc.kill()
        proc.wait()
        raise BoundedRunError(f"no result after {timeout_s:.0f} s") from exc
    except BoundedRunError:
        proc.kill()
        proc.wait()
        raise
    finally:
        proc.stderr.close()
    if os.fstat(stdout.fileno()).st_size >= max_stdout or code == -signal.SIGXFSZ:
        raise BoundedRunError(f"{max_stdout} bytes of output or more")
    return code, bytes(kept)


def _cap_child(pid: int, *, max_memory: int, max_file: int) -> None:
    """Address space and output file size limits on a running child (Linux; else none)."""
    prlimit = getattr(resource, "prlimit", None)
    if prlimit is None:
        return
    for limit, value in ((resource.RLIMIT_AS, max_memory), (resource.RLIMIT_FSIZE, max_file)):
        try:
            prlimit(pid, limit, (value, value))
        except (OSError, ValueError):  # the child already ended, or the limit is not allowed
            logger.debug("could not set limit %s on child %s", limit, pid, exc_info=True)


def _read_with_mdbtools(path: Path, cause: ParseError) -> pl.DataFrame:
    exe = shutil.which("mdb-export")
    if exe is None:
        raise ParseError(
            f"{cause.message}; the fallback reader mdb-export is not installed "
            "(install mdbtools, e.g. `apt-get install mdbtools`)",
            location=cause.location,
        )
    where = f"table {TABLE}"
    with tempfile.NamedTemporaryFile(suffix=".csv") as out:
        try:
            code, warnings = run_bounded(
                [exe, str(path), TABLE],
                out,
                max_stdout=mdb_output_limit(path.stat().st_size),
            )
        except BoundedRunError as exc:
            raise ParseError(
                f"{cause.message}; mdb-export was stopped: {exc} (the database is damaged)",
                location=where,
            ) from exc
        except OSError as exc:
            raise ParseError(
                f"{cause.message}; mdb-export failed too: {exc}", location=where
            ) from exc
        if code != 0:
            message = " ".join(warnings.decode(errors="replace").split())[:300]
            raise ParseError(
                f"{cause.message}; mdb-export failed too: {message or f'exit {code}'}",
                location=where,
            )
        try:
            frame = pl.read_csv(out.name, infer_schema_length=None)
        except pl.exceptions.PolarsError as exc:
            raise ParseError(f"mdb-export output unreadable: {exc}", location=where) from exc
    if frame.height == 0:
        raise ParseError(f"{TABLE} has no rows", location=where)
    return frame
