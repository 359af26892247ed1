"""Pure readers of ALD tool logs (no Django, no models, no cycler parsers).

``PARSERS`` lists them (kind ``ald_log``); ``depositions.apps`` registers them with
``lims.ingestion.registry``.
"""

from depositions.aldlogs.parsers.controller import ControllerEventLogParser, ControllerRecipeParser
from depositions.aldlogs.parsers.generic import GenericAldLogParser
from depositions.aldlogs.parsers.labview import (
    LabviewDatalogParser,
    LabviewDosesParser,
    LabviewExecutionArrayParser,
    LabviewExecutionTableParser,
    LabviewSummaryParser,
)

PARSERS = (
    ControllerEventLogParser,
    ControllerRecipeParser,
    GenericAldLogParser,
    LabviewDatalogParser,
    LabviewDosesParser,
    LabviewExecutionArrayParser,
    LabviewExecutionTableParser,
    LabviewSummaryParser,
)

__all__ = ["PARSERS"]
