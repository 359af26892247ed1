"""ALD log benchmark: parse + pulse detection + checks against polars' bare CSV read.

Run on demand: ``.venv/bin/python bench/ingest_ald_log.py [--rows 200000] [--keep PATH]``.
Generates a LabVIEW-style data log (tab-separated, 2 Hz, latin-1 header with units,
``Timestamp`` + ``Elapsed Time [s]``, chamber pressure with pulse responses, QCM mass,
MFCs, thermocouples, 16 valve digital outputs: 40 columns) of a TMA/H2O run, then prints:
  (a) raw read: ``pl.read_csv`` of the same file (best of 3);
  (b) full: what the ingestion worker runs, the registered ``labview_datalog`` parser's
      ``parse`` (data log + merge) + ``detect_pulses`` + ``run_checks`` against the recipe
      (best of 3);
and the ratio b/a (target <= 2). No Django settings, no database.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from depositions.aldlogs.checks import run_checks  # noqa: E402
from depositions.aldlogs.parsers import PARSERS  # noqa: E402
from depositions.aldlogs.pulses import detect_pulses  # noqa: E402
from depositions.expansion import BlockSpec, RecipeSpec, StepSpec, SubCycleSpec  # noqa: E402
from lims.ingestion.parsing import ParseContext  # noqa: E402
from lims.ingestion.registry import get_parser, register_parsers  # noqa: E402

register_parsers(PARSERS)  # what depositions.apps does when Django starts

PERIOD = 0.5
TMA_S, H2O_S, PURGE_S, PRE_S = 1.0, 2.0, 20.0, 300.0


def recipe(cycles: int) -> RecipeSpec:
    def step(order: int, kind: str, label: str, duration: float) -> StepSpec:
        return StepSpec(order=order, kind=kind, source_label=label, duration_s=duration)

    al2o3 = SubCycleSpec(
        "Al2O3",
        (
            step(1, "pulse", "TMA", TMA_S),
            step(2, "purge", "", PURGE_S),
            step(3, "pulse", "H2O", H2O_S),
            step(4, "purge", "", PURGE_S),
        ),
        gpc_angstrom=1.1,
    )
    return RecipeSpec(
        subcycles=(al2o3,),
        blocks=(BlockSpec("Al2O3", cycles),),
        repeats=1,
        pre_steps=(step(1, "purge", "", PRE_S),),
    )


def generate(path: Path, rows: int, seed: int = 7) -> RecipeSpec:
    """A realistic run: pulses with pressure transients, QCM steps, noisy sensors."""
    rng = np.random.default_rng(seed)
    elapsed = 0.569 + np.arange(rows) * PERIOD + rng.normal(0, 0.0004, rows)
    cycle_s = TMA_S + H2O_S + 2 * PURGE_S
    cycles = int((rows * PERIOD - PRE_S - 60) // cycle_s)
    t_rel = elapsed - PRE_S
    in_run = (t_rel >= 0) & (t_rel < cycles * cycle_s)
    phase = np.mod(np.where(in_run, t_rel, -1.0), cycle_s)
    tma = in_run & (phase < TMA_S)
    h2o = in_run & (phase >= TMA_S + PURGE_S) & (phase < TMA_S + PURGE_S + H2O_S)
    # pressure: a response rising during the pulse and decaying with a 1.2 s time constant
    since_tma = np.where(in_run & (phase >= 0), phase, np.inf)
    since_h2o = np.where(in_run, phase - (TMA_S + PURGE_S), np.inf)
    response = 0.09 * np.exp(-np.clip(since_tma - 0.5, 0, None) / 1.2) * (since_tma >= 0.5)
    response += 0.12 * np.exp(-np.clip(since_h2o - 0.8, 0, None) / 1.2) * (since_h2o >= 0.5)
    pressure = 1.80 + rng.normal(0, 0.01, rows) + response
    tma_started = np.clip(np.floor(t_rel / cycle_s) + 1, 0, cycles)  # a TMA dose adds mass
    mass = -35 + 25.0 * tma_started + rng.normal(0, 0.7, rows)
    start = datetime(2019, 5, 24, 11, 23, 13, 990000)
    offsets = pl.Series(np.round(elapsed * 1000).astype(np.int64))
    timestamp = pl.select(
        (pl.lit(start, dtype=pl.Datetime("ms")) + pl.duration(milliseconds=offsets))
        .dt.strftime("%H:%M:%S%.3f %m/%d/%Y")
        .alias("Timestamp")
    ).to_series()
    columns: dict[str, Any] = {
        "Timestamp": timestamp,
        "Elapsed Time [s]": np.round(elapsed, 3),
        "Chamber Pressure [Torr]": np.round(pressure, 3),
        "Pump Pressure [Torr]": np.round(0.012 + rng.normal(0, 0.0005, rows), 4),
        "Xtal OK? [0=F, 1=T]": np.ones(rows, dtype=np.int8),
        "Xtal Life [%]": np.full(rows, 58, dtype=np.int16),
        "Mass [ng/cm²]": np.round(mass, 0),
        "Mass Offset [ng/cm²] ": np.full(rows, -98208, dtype=np.int32),
        "Frequency [Hz]": np.round(5583588.4 - mass * 0.05, 1),
    }
    for k in range(1, 6):
        columns[f"MFC {k} Flow [sccm]"] = np.round(22.5 + rng.normal(0, 0.2, rows), 1)
    for k in range(1, 9):
        columns[f"Thermocouple {k} [ºC]"] = np.round(120 + 2 * k + rng.normal(0, 0.15, rows), 1)
    columns["RF Power [W]"] = np.zeros(rows, dtype=np.int16)
    columns["Iteration Duration (s)"] = np.round(0.05 + rng.normal(0, 0.002, rows), 3)
    for module in (7, 8):
        for bit in range(8):
            state = np.zeros(rows, dtype=np.int8)
            if module == 8 and bit == 1:
                state = tma.astype(np.int8)
            if module == 8 and bit == 2:
                state = h2o.astype(np.int8)
            columns[f"Mod{module}/do{bit}"] = state
    frame = pl.DataFrame(columns)
    header = f"{path.name}\n" + "\t".join(frame.columns) + "\n"
    with path.open("wb") as out:
        out.write(header.encode("latin-1"))
        frame.write_csv(out, separator="\t", include_header=False)
    return recipe(cycles)


def best_of(n: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="write the generated log here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench_run_DataLog.txt"
        spec = generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        ctx = ParseContext(filename=path.name)
        parser = get_parser("labview_datalog")

        def raw() -> pl.DataFrame:
            return pl.read_csv(path, separator="\t", skip_lines=1, encoding="utf8-lossy")

        def full() -> Any:
            log = parser.parse(path, ctx)
            pulses = detect_pulses(log)
            report = run_checks(log, pulses, spec)
            return log, pulses, report

        raw()  # warm-up for both: page cache, polars thread pool, first-call imports
        full()
        t_raw, frame = best_of(3, raw)
        t_full, (log, pulses, report) = best_of(3, full)
        print(f"log: {args.rows} rows x {frame.width} columns, {size_mb:.1f} MB, 2 Hz")
        print(f"(a) raw read, polars read_csv (best of 3):            {t_raw:.3f} s")
        print(f"(b) parse + pulse detection + checks (best of 3):     {t_full:.3f} s")
        print(f"ratio b/a: {t_full / t_raw:.2f} (target <= 2)")
        counts: dict[str, int] = {}
        for p in pulses:
            counts[p.source_label or p.source] = counts.get(p.source_label or p.source, 0) + 1
        print(
            f"pulses: {len(pulses)} {counts}; verdict {report.verdict}; "
            f"{len(report.results)} checks, {len(report.skipped)} skipped; "
            f"{log.series.height} rows parsed"
        )


if __name__ == "__main__":
    main()
