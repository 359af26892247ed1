"""Files that hold per-cycle records and no series (the per-cycle side of ``CyclerData``).

A vendor's cycle table is stored as it is: the handler writes its rows instead of summarising a
series. This module completes such a table to the summary's columns with the same numbering
rule as the summary (``cycle_index`` = file cycle - first file cycle + 1), so a test read from a
per-cycle file and one read from its series give comparable records.
"""

from __future__ import annotations

import polars as pl

from cells.parsers.summary import SUMMARY_SCHEMA
from cells.parsers.types import CANONICAL_SCHEMA
from lims.ingestion.parsing import ParseError


def empty_series() -> pl.LazyFrame:
    """A canonical series with no rows: the file has none."""
    return pl.DataFrame(schema=CANONICAL_SCHEMA).lazy()


def per_cycle_table(frame: pl.DataFrame) -> pl.DataFrame:
    """Complete a vendor cycle table (``cycle`` plus any summary columns) to SUMMARY_SCHEMA.

    Rows must have a cycle and each cycle may appear once: the table is what the vendor
    computed, so it is refused rather than merged or guessed when it is not one row per cycle.
    """
    unknown = [c for c in frame.columns if c not in SUMMARY_SCHEMA]
    if unknown:
        raise ValueError(f"not summary columns: {unknown}")
    if "cycle" not in frame.columns or frame.height == 0:
        raise ParseError("no cycle rows in the per-cycle table", location="data rows")
    cycles = frame.get_column("cycle")
    if cycles.null_count():
        raise ParseError("a per-cycle row has no cycle number", location="cycle column")
    duplicated = cycles.filter(cycles.is_duplicated()).unique().sort().head(5).to_list()
    if duplicated:
        raise ParseError(
            f"cycle {duplicated[0]} appears more than once in the per-cycle table",
            location=f"cycles {duplicated}",
        )
    first = int(cycles.min())  # type: ignore[arg-type]
    return (
        frame.with_columns(
            pl.lit(None, dtype=dtype).alias(name)
            for name, dtype in SUMMARY_SCHEMA.items()
            if name not in frame.columns
        )
        .with_columns((pl.col("cycle") - first + 1).alias("cycle_index"))
        .select([pl.col(name).cast(dtype) for name, dtype in SUMMARY_SCHEMA.items()])
        .sort("cycle")
    )
