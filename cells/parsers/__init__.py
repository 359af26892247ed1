"""Cycler file parsers: pure functions from an instrument file to canonical polars data.

``PARSERS`` lists them; ``cells.apps`` registers them with ``lims.ingestion.registry``.
No Django here: parsers and the summary run in tests and benchmarks without settings or a
database.
"""

from cells.parsers.arbin import ArbinCsvParser, ArbinResParser, ArbinXlsxParser
from cells.parsers.biologic import BiologicMprParser, BiologicMptParser
from cells.parsers.generic import BdfParser, CanonicalCsvParser, GenericParser
from cells.parsers.maccor import MaccorParser
from cells.parsers.mapping import ColumnSpec, parse_mapping
from cells.parsers.neware import NewareCsvParser, NewareNdaParser
from cells.parsers.summary import SUMMARY_SCHEMA, summarize_cycles
from cells.parsers.types import CANONICAL_COLUMNS, CANONICAL_SCHEMA, CyclerData

PARSERS = (
    ArbinCsvParser,
    ArbinResParser,
    ArbinXlsxParser,
    BdfParser,
    BiologicMprParser,
    BiologicMptParser,
    CanonicalCsvParser,
    GenericParser,
    MaccorParser,
    NewareCsvParser,
    NewareNdaParser,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "CANONICAL_SCHEMA",
    "PARSERS",
    "SUMMARY_SCHEMA",
    "ArbinCsvParser",
    "ArbinResParser",
    "ArbinXlsxParser",
    "BdfParser",
    "BiologicMprParser",
    "BiologicMptParser",
    "CanonicalCsvParser",
    "ColumnSpec",
    "CyclerData",
    "GenericParser",
    "MaccorParser",
    "NewareCsvParser",
    "NewareNdaParser",
    "parse_mapping",
    "summarize_cycles",
]
