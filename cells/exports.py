"""A stored cycler series written out as CSV, Parquet or BDF CSV, in bounded chunks.

Pure (polars and pyarrow only, no Django): the views stream what these generators yield.

Memory: the stored Parquet is read one row group at a time (a polars scan sliced on the row
group boundaries, which reads only that group), so a 10 M-row series never sits in memory.
polars' own ``collect_batches`` and pyarrow's pre-buffered ``iter_batches`` both held the
whole file here (peak RSS grew with the file: 0.4 GB at 5 M rows, 0.8-1.2 GB at 15 M), and a
``cum_sum`` in a streaming ``sink_csv`` did too; this reader stays flat (about 0.3 GB at both).

BDF (Battery Data Format, battery-data-alliance, ontology 1.2.0): headers are the preferred
labels (``Test Time / s`` ...) with their fixed units. The canonical columns map one to one
where the meaning is the same; where BDF defines a quantity differently, the column is
derived and says so (``BDF_DERIVED``):

- ``Charging/Discharging Capacity / Ah`` and ``... Energy / Wh`` are cumulative since test
  start and never reset; an instrument's counter may reset per step or cycle. They are the
  running sum of the counter's reset-aware increments, the same increments the cycle table
  sums (``cells.parsers.summary.with_increments``): the counter's first value is a baseline
  (charge before this file), so each starts at 0 on the file's first row.
- ``Step ID`` is the instrument's step number (BioLogic Ns, Arbin Step_Index); ``Step Count
  / 1`` is derived: 1 on the first row, +1 each time (cycle, step ID) changes.
- ``Cycle Count / 1`` is the file's own cycle number, not renumbered (BDF: converters must
  not renumber); the cycle table's ``cycle_index`` is that minus the first one plus 1.
- ``Temperature T1 / degC`` is the cycler's temperature channel (placement setup-defined).
No comment line is written into any CSV (BDF's first row must be the header, and a comment
line breaks most CSV readers): provenance travels in the response headers, in the Parquet
key-value metadata (``lims.provenance``) and in the cell's ``.eln``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from cells.parsers.summary import with_increments
from cells.parsers.types import CANONICAL_SCHEMA
from lims.streams import Spool

BDF_ONTOLOGY = "https://w3id.org/battery-data-alliance/ontology/battery-data-format"
BDF_VERSION = "1.2.0"

# canonical column -> BDF preferred label, machine-readable name (the IRI's fragment)
BDF_COLUMNS: dict[str, tuple[str, str]] = {
    "time_s": ("Test Time / s", "test_time_second"),
    "voltage_v": ("Voltage / V", "voltage_volt"),
    "current_a": ("Current / A", "current_ampere"),
    "cycle": ("Cycle Count / 1", "cycle_count"),
    "step": ("Step ID", "step_id"),
    "step_count": ("Step Count / 1", "step_count"),
    "charge_capacity_ah": ("Charging Capacity / Ah", "charging_capacity_ah"),
    "discharge_capacity_ah": ("Discharging Capacity / Ah", "discharging_capacity_ah"),
    "charge_energy_wh": ("Charging Energy / Wh", "charging_energy_wh"),
    "discharge_energy_wh": ("Discharging Energy / Wh", "discharging_energy_wh"),
    "temperature_c": ("Temperature T1 / degC", "temperature_t1_celsius"),
}
_COUNTERS = (
    "charge_capacity_ah",
    "discharge_capacity_ah",
    "charge_energy_wh",
    "discharge_energy_wh",
)
BDF_DERIVED: dict[str, str] = {
    "step_count": "1 on the first row, +1 at each change of (cycle, step ID)",
    **{
        column: "cumulative since the file's first row (0 there): running sum of the "
        "instrument counter's reset-aware increments, as the cycle table sums them"
        for column in _COUNTERS
    },
}
CSV_CHUNK_ROWS = 65_536

_INCREMENT = {  # summary.with_increments' per-row increment column of each counter
    "charge_capacity_ah": "_dqc",
    "discharge_capacity_ah": "_dqd",
    "charge_energy_wh": "_dec",
    "discharge_energy_wh": "_ded",
}


def bdf_columns_doc() -> list[dict[str, str]]:
    """Each BDF column with its IRI and where its values come from (for the .eln, docs)."""
    return [
        {
            "label": label,
            "iri": f"{BDF_ONTOLOGY}#{name}",
            "from": column,
            "how": BDF_DERIVED.get(column, "as stored"),
        }
        for column, (label, name) in BDF_COLUMNS.items()
    ]


def series_chunks(path: Path, *, rows: int | None = None) -> Iterator[pl.DataFrame]:
    """The stored series, a row group at a time (split further into ``rows`` if given)."""
    groups = pq.read_metadata(path)
    lf = pl.scan_parquet(path)
    offset = 0
    for i in range(groups.num_row_groups):
        size = groups.row_group(i).num_rows
        frame = lf.slice(offset, size).collect()
        offset += size
        step = rows or max(frame.height, 1)
        for start in range(0, frame.height, step):
            yield frame.slice(start, step)


class _BdfState:
    """What one chunk hands the next: its last row (counters carried forward) and totals."""

    def __init__(self) -> None:
        self.last: pl.DataFrame | None = None
        self.totals: dict[str, float] = dict.fromkeys(_COUNTERS, 0.0)
        self.steps = 0


def bdf_chunks(chunks: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    """Canonical chunks -> BDF chunks (labels as headers), state carried across chunks so the
    result does not depend on where the chunks were cut."""
    state = _BdfState()
    for chunk in chunks:
        if chunk.height == 0:
            continue
        yield _bdf_chunk(chunk, state)


def _bdf_chunk(chunk: pl.DataFrame, state: _BdfState) -> pl.DataFrame:
    chunk = chunk.select(list(CANONICAL_SCHEMA))
    joined = chunk if state.last is None else pl.concat([state.last, chunk])
    skip = 0 if state.last is None else 1
    with_inc = with_increments(joined.lazy()).collect()
    step, cycle = pl.col("step"), pl.col("cycle")
    new_step = step.ne_missing(step.shift(1)) | cycle.ne_missing(cycle.shift(1))
    if skip == 0:  # the file's first row starts step 1
        new_step = pl.int_range(pl.len()).eq(0) | new_step
    out = with_inc.with_columns(new_step.fill_null(True).cast(pl.Int64).alias("_new")).slice(skip)
    counts = out["_new"].cum_sum() + state.steps
    cumulative = {c: (out[_INCREMENT[c]].cum_sum() + state.totals[c]).alias(c) for c in _COUNTERS}
    result = chunk.with_columns(
        pl.when(pl.col("step").is_not_null()).then(counts).alias("step_count"),
        *(
            # null where the counter has no value yet (a column the file does not have)
            pl.when(out[_INCREMENT[c]].is_not_null()).then(cumulative[c]).alias(c)
            for c in _COUNTERS
        ),
    )
    state.steps = int(counts[-1]) if counts.len() else state.steps
    for c in _COUNTERS:
        last = cumulative[c].drop_nulls()
        if last.len():
            state.totals[c] = float(last[-1])
    # the next chunk's increments start from this chunk's last (carried-forward) counters
    state.last = with_inc.select(list(CANONICAL_SCHEMA)).tail(1)
    return result.select(pl.col(column).alias(label) for column, (label, _) in BDF_COLUMNS.items())


def csv_stream(frames: Iterator[pl.DataFrame], *, columns: list[str]) -> Iterator[bytes]:
    """CSV bytes of the frames: a header once, then each frame's rows (nulls empty);
    ``columns`` is the header written when there are no rows at all."""
    header = True
    for frame in frames:
        for start in range(0, frame.height, CSV_CHUNK_ROWS):
            buf = io.BytesIO()
            frame.slice(start, CSV_CHUNK_ROWS).write_csv(buf, include_header=header)
            header = False
            yield buf.getvalue()
    if header:  # no rows at all: still a header
        buf = io.BytesIO()
        pl.DataFrame(schema=dict.fromkeys(columns, pl.String)).write_csv(buf)
        yield buf.getvalue()


def parquet_stream(
    frames: Iterator[pl.DataFrame], *, provenance: dict[str, Any]
) -> Iterator[bytes]:
    """Parquet (zstd) bytes, a row group per frame, ``provenance`` (JSON) in the file's
    key-value metadata under ``lims.provenance`` (polars: ``pl.read_parquet_metadata``)."""
    spool = Spool()
    meta = {b"lims.provenance": json.dumps(provenance, default=str).encode()}
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    for frame in frames:
        table = frame.to_arrow()
        if writer is None:
            schema = table.schema.with_metadata(meta)
            writer = pq.ParquetWriter(spool, schema, compression="zstd")
        writer.write_table(table.cast(schema))
        if data := spool.take():
            yield data
    if writer is None:  # no rows: an empty file with the canonical schema
        table = pl.DataFrame(schema=CANONICAL_SCHEMA).to_arrow()
        writer = pq.ParquetWriter(spool, table.schema.with_metadata(meta), compression="zstd")
        writer.write_table(table.replace_schema_metadata(meta))
    writer.close()
    yield spool.take()
