"""Projects, import runs, their event logs and the records imports land.

One module each: ``projects``, ``runs`` (with the status groups), ``events``,
``records``. Everything is importable from ``imports.models``.
"""

from imports.models.destinations import Destination
from imports.models.events import Event, ImportRunEvent, ProjectEvent
from imports.models.notifications import Notification, NotificationChannel
from imports.models.projects import Project
from imports.models.records import Record
from imports.models.run_log import ImportRunLogLine
from imports.models.runs import (
    ACTIVE_RUN_STATUSES,
    FINAL_RUN_STATUSES,
    RETRYABLE_RUN_STATUSES,
    RUN_COUNT_FIELDS,
    RUN_COUNT_KINDS,
    SLOT_HOLDING_RUN_STATUSES,
    STARTABLE_RUN_STATUSES,
    ImportRun,
    RunStatus,
)

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "FINAL_RUN_STATUSES",
    "RETRYABLE_RUN_STATUSES",
    "RUN_COUNT_FIELDS",
    "RUN_COUNT_KINDS",
    "SLOT_HOLDING_RUN_STATUSES",
    "STARTABLE_RUN_STATUSES",
    "Destination",
    "Event",
    "ImportRun",
    "ImportRunEvent",
    "Notification",
    "NotificationChannel",
    "ImportRunLogLine",
    "Project",
    "ProjectEvent",
    "Record",
    "RunStatus",
]
