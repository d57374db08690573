"""The connector interface every source implements."""

from collections.abc import Iterator, Mapping
from itertools import islice
from typing import Any, NamedTuple

from .secrets import redact


class BadRow(NamedTuple):
    """A row the source gave that cannot become a record.

    ``line`` is the line of the file the row starts on, for sources that
    are files; the import names the row "line N of the file (data row M)".
    """

    number: int
    reason: str
    line: int | None = None


Row = dict[str, Any]


class CopySource(NamedTuple):
    """A source's rows as bytes PostgreSQL's COPY reads (``copy_source()``).

    ``columns`` are the source's field names in the order of the bytes'
    fields; ``types`` the logical type of each (``imports.column_types``),
    or None where the source does not know it; ``format`` is ``"csv"``
    (with ``options``: ``delimiter``, ``quotechar``) or ``"text"``;
    ``chunks`` yields UTF-8 bytes in that format, with no header.
    """

    columns: list[str]
    types: list[str | None]
    format: str
    options: dict
    chunks: Iterator[bytes]


class BaseConnector:
    """Base class for connectors.

    A connector reads one project's records from a source. It is built from
    the connector's shared ``config`` and the project's ``source``, opened,
    iterated once, and closed, like Django's ``BaseEmailBackend``::

        with connector_class(config=..., source=...) as connector:
            for batch in connector.iter_batches(batch_size=5000):
                ...

    Subclasses must set ``kind`` (and should set ``verbose_name``, shown
    in the admin's choice of kinds) and implement ``iter_records()``; they
    should override ``validate()`` to refuse a bad config before it is saved
    (the admin form and ``connector_source_validate()`` call it), list their
    secret config keys in ``secret_fields``, and pass every error message
    through ``redact()`` so that no secret reaches a run's event log.

    Errors are classified for the pipeline: ``TransientSourceError`` (retry
    later, maybe after ``retry_after`` seconds) or ``PermanentSourceError``.
    Retrying is the pipeline's job; a connector may at most try one request
    again in place (``connectors.page_retries``) before raising.

    A third-party connector registers its kind with an entry point in the
    ``importhub.connectors`` group (see ``connectors.registry``).
    """

    kind: str = ""
    #: What an operator reads in the admin's choice of kinds ("SQL database").
    verbose_name: str = ""
    #: Config keys whose values are secrets: never shown, logged or echoed.
    secret_fields: tuple[str, ...] = ()

    #: An incremental project's cursor: where this run reads from (None:
    #: from the start). Set by the pipeline before ``open()``; a connector
    #: that reads incrementally binds it (``imports.cursors``).
    cursor_value: Any = None

    def __init__(self, *, config: Mapping[str, Any], source: Mapping[str, Any]):
        self.config = dict(config or {})
        self.source = dict(source or {})

    @classmethod
    def validate(
        cls, *, config: Mapping[str, Any], source: Mapping[str, Any] | None = None
    ) -> None:
        """Check a config (and, when given, a project's source).

        Raises:
            ConnectorConfigError: naming each invalid field.
        """

    @classmethod
    def check_live(cls, *, config: Mapping[str, Any]) -> None:
        """Optionally check a config against the live source when it is saved.

        The admin form calls this after ``validate()``; a source that
        cannot be reached from the web process should pass (the worker
        checks again when it opens the connector).

        Raises:
            ConnectorConfigError: naming each invalid field.
        """

    def redact(self, text: str) -> str:
        """``text`` with every secret of the config and source masked.

        Connectors pass each error message through this before raising it.
        """
        text = redact(text, self.config, secret_fields=self.secret_fields)
        return redact(text, self.source)

    def open(self) -> None:
        """Open connections or files. Called once before iterating."""

    def close(self) -> None:
        """Release what ``open()`` took. Safe to call more than once."""

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc_value, traceback):
        self.close()

    def iter_records(self) -> Iterator[Row | BadRow]:
        """Yield the source's records one by one, streamed.

        A record is a mapping of column name to value. A row that cannot be
        read is yielded as ``BadRow`` so the project's policy decides.

        Raises:
            TransientSourceError: for failures worth retrying.
            PermanentSourceError: for failures that retrying cannot fix.
        """
        raise NotImplementedError(
            "subclasses of BaseConnector must provide an iter_records() method"
        )

    def iter_batches(self, *, batch_size: int) -> Iterator[list[Row | BadRow]]:
        """Yield lists of at most ``batch_size`` records."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        records = self.iter_records()
        while batch := list(islice(records, batch_size)):
            yield batch

    #: The source's values are untyped text (a CSV file): their types are
    #: read from the text ("12" is an integer). Otherwise a string is text.
    values_are_text: bool = False
    #: True when the connector implements ``copy_source()``.
    supports_copy: bool = False

    #: How much the source holds, when it can tell, in ``progress_unit``
    #: ("rows" or "bytes"): set once the connector knows it (a file's size
    #: when opened, an SQL query's estimate when declared, an API's total
    #: with its first page). None: unknown, the progress is indeterminate.
    progress_total: int | None = None
    progress_unit: str = "rows"

    def progress_done(self) -> int | None:
        """Optional: how much of ``progress_total`` was read so far, for a
        unit other than rows (the pipeline counts rows itself)."""
        return None

    def fingerprint(self) -> dict | None:
        """Optional: what identifies this version of the source (a file's
        size and time, an ETag), so that an unchanged source is not read
        again. None when the source cannot tell."""
        return None

    def copy_source(self) -> CopySource | None:
        """Optional fast path for typed tables: the source as COPY bytes.

        None when this source cannot be given so (the rows are then read
        with ``iter_batches()``).
        """
        return None

    #: True when the connector implements ``iter_stage_lines()``.
    supports_stage_lines: bool = False

    def iter_stage_lines(
        self, *, key_fields: list[str], batch_size: int
    ) -> Iterator[list[bytes]]:
        """Optional fast path: let the source serialise the records itself.

        Yield lists of complete staging lines in the format of
        ``connectors.lineformat`` (``seq``, key, JSON, checksum), which the
        pipeline then relays as bytes instead of building records in Python.
        Connectors that set ``supports_stage_lines`` must implement it.
        """
        raise NotImplementedError(
            "subclasses of BaseConnector that support stage lines must provide "
            "an iter_stage_lines() method"
        )
