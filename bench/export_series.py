"""Series download benchmark: a stored 10 M-row series out as Parquet, CSV and BDF CSV.

Run on demand: ``.venv/bin/python bench/export_series.py [--rows 1e6 1e7]``. For each size it
writes a canonical series the way ingestion does (``sink_parquet``, zstd level 1), then, each
format in a fresh process (so the peak RSS is the export's own; the series is made by
another child, as Linux carries a parent's peak RSS across fork and exec), drains the generator the
download view streams (``cells.exports``) and prints seconds, MB written, rows/s and peak RSS.
The baseline of the same run: polars ``sink_csv`` of the same file to /dev/null (no derived
columns, not streamable to a client). No Django, no database.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_series(path: Path, rows: int) -> None:
    """Constant-current cycling: 1,000 cycles, two steps each, counters reset per step."""
    per = max(rows // 1000, 2)
    i = np.arange(rows)
    cycle = i // per
    in_cycle = i % per
    charging = in_cycle < per // 2
    current = np.where(charging, 0.001, -0.001)
    step_rows = np.where(charging, in_cycle, in_cycle - per // 2)
    cap = step_rows * 0.001 * 10 / 3600
    frame = pl.DataFrame(
        {
            "time_s": i * 10.0,
            "cycle": cycle.astype(np.int64),
            "step": np.where(charging, 1, 2).astype(np.int64),
            "current_a": current,
            "voltage_v": 3.0 + 0.5 * np.sin(i / per * np.pi),
            "charge_capacity_ah": np.where(charging, cap, 0.0),
            "discharge_capacity_ah": np.where(charging, 0.0, cap),
            "charge_energy_wh": np.where(charging, cap * 3.7, 0.0),
            "discharge_energy_wh": np.where(charging, 0.0, cap * 3.5),
            "temperature_c": np.full(rows, 25.0),
        }
    )
    frame.lazy().sink_parquet(path, compression="zstd", compression_level=1)


def run_one(path: Path, kind: str) -> dict[str, float]:
    from cells import exports

    started = time.perf_counter()
    written = 0
    if kind == "polars-sink-csv":
        pl.scan_parquet(path).sink_csv("/dev/null")
    else:
        chunks = exports.series_chunks(path)
        if kind == "parquet":
            body = exports.parquet_stream(chunks, provenance={"bench": True})
        elif kind == "csv":
            body = exports.csv_stream(chunks, columns=[])
        else:
            body = exports.csv_stream(exports.bdf_chunks(chunks), columns=[])
        for piece in body:
            written += len(piece)
    seconds = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "mb": written / 1e6, "peak_rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", nargs="*", type=float, default=[1e6, 1e7])
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # path kind (child)
    parser.add_argument("--make", nargs=2, help=argparse.SUPPRESS)  # path rows (child)
    args = parser.parse_args()
    if args.make:
        make_series(Path(args.make[0]), int(args.make[1]))
        return
    if args.one:
        print(json.dumps(run_one(Path(args.one[0]), args.one[1])))
        return
    with tempfile.TemporaryDirectory() as tmp:
        for rows in (int(r) for r in args.rows):
            path = Path(tmp) / f"series-{rows}.parquet"
            # a child makes it: Linux keeps a parent's peak RSS across fork + exec
            subprocess.run([sys.executable, __file__, "--make", str(path), str(rows)], check=True)
            print(f"\n{rows:,} rows, stored Parquet {path.stat().st_size / 1e6:.0f} MB")
            for kind in ("polars-sink-csv", "parquet", "csv", "bdf"):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", str(path), kind],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                r = json.loads(out.stdout)
                print(
                    f"  {kind:16s} {r['seconds']:6.2f} s  {r['mb']:7.0f} MB  "
                    f"{rows / r['seconds'] / 1e6:5.2f} M rows/s  peak RSS {r['peak_rss_mb']:.0f} MB"
                )


if __name__ == "__main__":
    main()
