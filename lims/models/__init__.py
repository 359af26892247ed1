from lims.models.changes import ObjectChange
from lims.models.events import DeliveryAttempt, EventDelivery, EventRule, OutboxEvent, Webhook
from lims.models.ingestion import ColumnMapping, IngestionJob, RawFile
from lims.models.projects import Instrument, InstrumentToken, Membership, Project, WorkerHeartbeat

__all__ = [
    "ColumnMapping",
    "DeliveryAttempt",
    "EventDelivery",
    "EventRule",
    "IngestionJob",
    "Instrument",
    "InstrumentToken",
    "Membership",
    "ObjectChange",
    "OutboxEvent",
    "Project",
    "RawFile",
    "Webhook",
    "WorkerHeartbeat",
]
