"""What a load returns and the ways it stops."""

from dataclasses import asdict, dataclass, field

from connectors.exceptions import PermanentSourceError


class ImportInterrupted(Exception):
    """The run must stop: it was cancelled or lost its lock."""


class FenceRejected(Exception):
    """A newer run of the project took over; this run may not commit."""


class BadRowError(PermanentSourceError):
    """A row cannot be imported and the project fails on bad rows."""


def row_label(row: int, line: int | None = None) -> str:
    """How a bad-row message names a row, the same for every source.

    ``row`` is the data row: the records counted from 1 in source order,
    bad ones included (a staging line's ``seq``). ``line`` is the line of
    the file the row starts on, when the connector reads a file and says.
    """
    if line is None:
        return f"Row {row}"
    return f"Line {line} of the file (data row {row})"


#: How many rejected rows a run keeps as samples in its events.
REJECTED_SAMPLES = 10


@dataclass
class LoadResult:
    """A run's counts, filled by the extraction and then by the merge."""

    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_deleted: int = 0
    rows_rejected: int = 0
    duplicates: int = 0
    rejected_samples: list[dict] = field(default_factory=list)
    #: A typed load's source fields, in stage column order, and their types.
    columns: list[str] = field(default_factory=list)
    types: list[str | None] = field(default_factory=list)
    #: Rows a typed load's contract rejected (after the extraction).
    rejected_at_load: int = 0
    #: An incremental project's cursor as this run found and left it.
    cursor_before: dict | None = None
    cursor_after: dict | None = None
    #: The run reads only what changed since the cursor (never deletes).
    incremental: bool = False
    #: A CSV source unchanged since the last import: nothing was read.
    source_unchanged: bool = False
    #: The source file's fingerprint (CSV), stored with the cursor.
    fingerprint: dict | None = None
    warnings: list[str] = field(default_factory=list)

    EXTRA = (
        "rejected_samples",
        "columns",
        "types",
        "rejected_at_load",
        "cursor_before",
        "cursor_after",
        "incremental",
        "source_unchanged",
        "fingerprint",
        "warnings",
    )

    def rejected_add(
        self, rows: list[int], reason: str, *, line: int | None = None, count=None
    ) -> None:
        """Count ``count`` rejected rows (``len(rows)`` by default) and keep
        the first of ``rows`` as samples, naming ``reason``."""
        self.rows_rejected += len(rows) if count is None else count
        for row in rows:
            if len(self.rejected_samples) >= REJECTED_SAMPLES:
                break
            sample = {"row": row, "reason": reason}
            if line is not None:
                sample["line"] = line
            self.rejected_samples.append(sample)

    def counts(self) -> dict[str, int]:
        """The counts by the names of ``ImportRun``'s fields."""
        data = asdict(self)
        for name in self.EXTRA:
            data.pop(name)
        data["rows_duplicates"] = data.pop("duplicates")
        return data


class DeletionLimitExceeded(PermanentSourceError):
    """A replace would delete more of the project's rows than it allows."""
