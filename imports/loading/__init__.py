"""Loading: stream a source into a staging table, then merge it in one go.

Two layouts. A project's typed table (``table_*``, ``destination``): the
source's fields staged as text (``table_stage``; COPY of raw bytes where the
source is delimited text, ``table_copy``), checked against the project's
schema contract (``table_schema``) and merged with casts and checksums in
SQL (``table_merge``) in the destination's transaction, beside its state
row (fence, columns, cursor: ``table_load``). The JSON records layout, for
sources without a stable shape, is described below.

Extract and load are separate stages. The extraction (``extract``) streams
the connector's batches into a per-attempt staging table (``stage``; COPY on
PostgreSQL), so memory does not grow with the source. The load (``load``)
merges the staged rows into the project's records in one transaction with
set-based statements (``merge``, with ``dialects`` for what PostgreSQL and
SQLite do differently); a failed or killed import leaves the records exactly
as the last successful import left them, and a replace that would delete
more than the project allows changes nothing (``safety``). The staging line
format lives in ``connectors.lineformat``, so that connectors can produce it.
"""

from .destination import Target, run_committed
from .dialects import transaction_lock_timeout
from .extract import import_run_extract
from .load import import_run_load
from .results import (
    BadRowError,
    DeletionLimitExceeded,
    FenceRejected,
    ImportInterrupted,
    LoadResult,
)
from .stage import STAGE_TABLE, Stage, stages_present
from .table_schema import SchemaViolation, change_text
from .table_stage import TableStage


def stage_for(project, run_id: int, fence: int | None = None, *, table: str = ""):
    """The staging table of a run of ``project``, by the project's layout."""
    if project.layout == project.Layout.TABLE:
        return TableStage(Target(project), run_id, fence, table=table)
    return Stage(run_id, fence, table=table)


__all__ = [
    "STAGE_TABLE",
    "BadRowError",
    "DeletionLimitExceeded",
    "FenceRejected",
    "ImportInterrupted",
    "LoadResult",
    "SchemaViolation",
    "TableStage",
    "Target",
    "change_text",
    "run_committed",
    "stage_for",
    "Stage",
    "import_run_extract",
    "import_run_load",
    "stages_present",
    "transaction_lock_timeout",
]
