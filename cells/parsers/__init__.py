"""Cycler file parsers: pure functions from an instrument file to canonical polars data.

``PARSERS`` lists them; ``cells.apps`` registers them with ``lims.ingestion.registry``.
No Django here: parsers and the summary run in tests and benchmarks without settings or a
database.
"""

from cells.parsers.arbin import ArbinCsvParser, ArbinResParser, ArbinXlsxParser
from cells.parsers.batteryarchive import (
    BatteryArchiveCycleParser,
    BatteryArchiveTimeseriesParser,
)
from cells.parsers.biologic import BiologicMprParser, BiologicMptParser
from cells.parsers.generic import BdfParser, CanonicalCsvParser, GenericParser
from cells.parsers.landt import LandtParser
from cells.parsers.maccor import MaccorParser
from cells.parsers.mapping import ColumnSpec, parse_mapping
from cells.parsers.neware import NewareCsvParser, NewareLayeredCsvParser, NewareNdaParser
from cells.parsers.novonix import NovonixParser
from cells.parsers.pec import PecCsvParser
from cells.parsers.sidecars import SIDECAR_PARSERS, SidecarData
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
    NewareLayeredCsvParser,
    BatteryArchiveCycleParser,
    BatteryArchiveTimeseriesParser,
    PecCsvParser,
    NovonixParser,
    LandtParser,
    *SIDECAR_PARSERS,
)

__all__ = [
    "CANONICAL_COLUMNS",
    "CANONICAL_SCHEMA",
    "PARSERS",
    "SUMMARY_SCHEMA",
    "ArbinCsvParser",
    "ArbinResParser",
    "ArbinXlsxParser",
    "BatteryArchiveCycleParser",
    "BatteryArchiveTimeseriesParser",
    "BdfParser",
    "BiologicMprParser",
    "BiologicMptParser",
    "CanonicalCsvParser",
    "ColumnSpec",
    "CyclerData",
    "GenericParser",
    "LandtParser",
    "MaccorParser",
    "NewareCsvParser",
    "NewareLayeredCsvParser",
    "NewareNdaParser",
    "NovonixParser",
    "PecCsvParser",
    "SidecarData",
    "parse_mapping",
    "summarize_cycles",
]
