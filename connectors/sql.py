"""The SQL connector: rows of a read query on a PostgreSQL database."""

import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import psycopg
from django.utils.translation import gettext_lazy as _
from psycopg import sql
from psycopg.types.string import TextLoader

from .base import BadRow, BaseConnector, CopySource, Row
from .exceptions import ConnectorConfigError, PermanentSourceError, SourceError
from .lineformat import copy_out_sql
from .options import OptionErrors, merge_options
from .secrets import url_password
from .sql_errors import sql_error_translate
from .sql_estimate import sql_row_estimate
from .sql_query import check_query, strip_query
from .sql_roles import privileged_role_message, role_privileges

logger = logging.getLogger(__name__)

DEFAULTS = {
    "connect_timeout": 10,
    "statement_timeout_ms": 300_000,
    "itersize": 2000,
}

DEFAULT_EXPORT_TIMEOUT_MS = 6 * 3600 * 1000

#: PostgreSQL type oids and the column type a typed table gives them;
#: any other type lands as text.
SOURCE_TYPES = {
    16: "boolean",
    20: "bigint",
    21: "integer",
    23: "integer",
    700: "double precision",
    701: "double precision",
    1700: "numeric",
    1082: "date",
    1114: "timestamptz",
    1184: "timestamptz",
    114: "jsonb",
    3802: "jsonb",
}


class SqlConnector(BaseConnector):
    """Streams the rows of a read query on a PostgreSQL database.

    Config: ``url`` (``postgresql://user:password@host:port/db``; the
    password may instead be given in the secret field ``password``),
    ``connect_timeout`` (10 s), ``statement_timeout_ms`` (300000: the
    server cancels any statement running longer, each fetch of the cursor
    and, when set explicitly, the COPY export), ``export_timeout_ms`` (the
    COPY export's own limit; six hours unless either is set) and
    ``itersize`` (rows fetched per round trip, 2000). A query cancelled by
    its timeout fails permanently, naming the limit. Source: ``query``, a
    single SELECT or WITH statement, with optional ``params`` (a list for
    ``%s`` placeholders or an object for ``%(name)s``; with params, a literal
    ``%`` is written ``%%``).

    The query runs in a READ ONLY transaction with a statement timeout,
    through a server-side cursor, so that memory does not grow with the
    result. Rows are dicts keyed by column name; values stay Python values
    (Decimal, date, UUID...; bytea becomes its ``\\x...`` text). Give the
    connector a role that can only read: a superuser or a member of
    ``PRIVILEGED_ROLES`` is refused unless the config sets
    ``allow_privileged_role`` (a project's source cannot). A project may not
    change the ``url`` of a connector that holds a password.
    """

    kind = "sql"
    verbose_name = _("SQL database")
    secret_fields = ("password",)
    supports_stage_lines = True

    def __init__(self, *, config: Mapping[str, Any], source: Mapping[str, Any]):
        super().__init__(config=config, source=source)
        self.options = {**DEFAULTS, **self.config, **self.source}
        self._connection: psycopg.Connection | None = None
        self._cursor = None
        #: ``(role, privileges)`` after ``open()`` when the connector's role
        #: is privileged and ``allow_privileged_role`` let it through.
        self.privileged_role: tuple[str, list[str]] | None = None
        self._timeout: tuple[str, int] = (
            "statement_timeout_ms",
            self.options["statement_timeout_ms"],
        )

    @classmethod
    def validate(
        cls, *, config: Mapping[str, Any], source: Mapping[str, Any] | None = None
    ) -> None:
        options = merge_options(config, source)
        errors = OptionErrors(options)
        url = options.get("url")
        if not url:
            errors.add("url", "Required: postgresql://user:password@host:port/db.")
        elif not isinstance(url, str):
            errors.add("url", "Must be a postgresql:// URL.")
        else:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                errors.add("url", "Not a valid URL.")
            else:
                if parts.scheme not in ("postgres", "postgresql"):
                    errors.add("url", "Must be a postgresql:// URL.")
                elif not parts.path.strip("/"):
                    errors.add("url", "Must name the database: .../dbname.")
        errors.string("password")
        errors.boolean("allow_privileged_role")
        if isinstance(source, Mapping) and "allow_privileged_role" in source:
            errors.add(
                "allow_privileged_role",
                "Only the connector's config may allow a privileged role.",
            )
        if source is not None and isinstance(source, Mapping):
            own = (config or {}).get("url")
            if (
                "url" in source
                and source["url"] != own
                and ((config or {}).get("password") or url_password(own))
            ):
                # The connector's password would log in wherever the
                # project's URL points.
                errors.add(
                    "url",
                    "A project may not change the connection of a connector "
                    "that holds credentials; use a connector of its own for "
                    "another database.",
                )
        errors.positive_number("connect_timeout")
        errors.positive_int("statement_timeout_ms")
        errors.positive_int("export_timeout_ms")
        errors.positive_int("itersize")
        if source is not None or "query" in options:
            problem = check_query(options.get("query"))
            if problem:
                errors.add("query", problem)
        params = options.get("params")
        if params is not None and not isinstance(params, list | dict):
            errors.add("params", "Must be a list or a JSON object.")
        errors.raise_if_any()

    @classmethod
    def _connect(cls, options: Mapping[str, Any]) -> psycopg.Connection:
        """A read-only connection with the session's statement timeout.

        Raises:
            psycopg.Error: connecting or preparing the session failed.
        """
        kwargs: dict[str, Any] = {
            "connect_timeout": max(2, round(options["connect_timeout"])),
            "application_name": "importhub",
        }
        if options.get("password"):
            kwargs["password"] = options["password"]
        return psycopg.connect(options["url"], **kwargs)

    def open(self) -> None:
        if self._connection is not None:
            return
        self.validate(config=self.config, source=self.source)
        try:
            connection = self._connect(self.options)
        except psycopg.Error as exc:
            # ``from None``: the driver's exception may carry connection
            # parameters; its message, redacted, is all an operator needs.
            raise self._translate(exc, "Connecting to the SQL source failed") from None
        try:
            connection.read_only = True
            connection.adapters.register_loader("bytea", TextLoader)
            self._set_timeout(connection, "statement_timeout_ms")
            role, privileges = role_privileges(connection)
        except psycopg.Error as exc:
            connection.close()
            raise self._translate(exc, "Preparing the SQL source failed") from None
        if privileges:
            if not self.config.get("allow_privileged_role"):
                connection.close()
                raise PermanentSourceError(privileged_role_message(role, privileges))
            # Allowed by the connector's config: said on every run, and
            # left on the instance for the caller's audit trail.
            logger.warning(
                "SQL source role %s is %s; allowed by allow_privileged_role",
                role,
                ", ".join(privileges),
            )
        self.privileged_role = (role, privileges) if privileges else None
        self._connection = connection

    @classmethod
    def check_live(cls, *, config: Mapping[str, Any]) -> None:
        """Refuse a privileged source role when the source can be reached.

        Called when a connector is saved in the admin; a source that cannot
        be reached from there passes (``open()`` checks again each run).

        Raises:
            ConnectorConfigError: the role is privileged and the config does
                not set ``allow_privileged_role``.
        """
        options = {**DEFAULTS, **config}
        if config.get("allow_privileged_role") or not options.get("url"):
            return
        options["connect_timeout"] = min(options["connect_timeout"], 3)
        try:
            with cls._connect(options) as connection:
                role, privileges = role_privileges(connection)
        except psycopg.Error:
            return
        if privileges:
            raise ConnectorConfigError(
                {"url": [privileged_role_message(role, privileges)]}
            )

    def close(self) -> None:
        cursor, self._cursor = self._cursor, None
        connection, self._connection = self._connection, None
        # Closing the connection ends the read-only transaction and drops the
        # server-side cursor with it; the cursor then closes without a round
        # trip, which also works when the server has gone away.
        if connection is not None:
            connection.close()
        if cursor is not None:
            cursor.close()

    def _declare(self, query: str, params: Any) -> psycopg.ServerCursor:
        """A server-side cursor over the query, exactly as written.

        ``DECLARE`` is sent over the extended protocol, whose Parse message
        holds one statement only ("cannot insert multiple commands into a
        prepared statement"), and PostgreSQL accepts only a SELECT, VALUES,
        TABLE or a WITH query without INSERT/UPDATE/DELETE/MERGE parts
        there. So the server itself refuses anything but one read query,
        whatever the text check missed.

        Raises:
            psycopg.Error: the server refused the query.
        """
        cursor = self._connection.cursor(name=f"importhub_{uuid.uuid4().hex[:12]}")
        try:
            cursor.execute(query, params)
        except psycopg.Error:
            cursor.close()
            raise
        if self.progress_total is None:
            self.progress_total = sql_row_estimate(self._connection, query, params)
        return cursor

    def iter_records(self) -> Iterator[Row | BadRow]:
        if self._connection is None:
            self.open()
        query = strip_query(self.options["query"])
        params = self._params()
        try:
            self._cursor = cursor = self._declare(query, params)
            cursor.itersize = self.options["itersize"]
            names = [column.name for column in cursor.description or ()]
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise PermanentSourceError(
                    f"The query names a column more than once: "
                    f"{', '.join(duplicates)}; give each an alias."
                )
            for row in cursor:
                yield dict(zip(names, row, strict=True))
        except psycopg.Error as exc:
            raise self._translate(exc, "The SQL query failed") from None

    def iter_stage_lines(
        self, *, key_fields: list[str], batch_size: int
    ) -> Iterator[list[bytes]]:
        """Stream staging lines built by the source with one ``COPY TO``.

        The source database turns each row into jsonb, its key and checksum
        while streaming, on its own core; the worker only relays the bytes.
        Numbers stay JSON numbers, dates and times become ISO strings.
        The export is one statement that lasts as long as the whole read,
        so its limit is ``export_timeout_ms`` when given, else
        ``statement_timeout_ms`` when the config or source sets it, else six
        hours (``statement_timeout_ms``'s default of five minutes is meant
        for one fetch, not for a whole export).
        """
        if self._connection is None:
            self.open()
        query = strip_query(self.options["query"])
        params = self._params()
        statement = copy_out_sql(query=sql.SQL(query), key_fields=key_fields)
        try:
            # COPY may go over the simple protocol, where a query that
            # closed the parenthesis could append statements: declare it
            # alone first, so the server checks it is one read query.
            self._declare(query, params).close()
            self._set_timeout(self._connection, self._export_timeout_name())
            cursor = self._connection.cursor()
            with cursor.copy(statement, params) as copy:
                batch: list[bytes] = []
                for line in copy:
                    batch.append(bytes(line))
                    if len(batch) >= batch_size:
                        yield batch
                        batch = []
                if batch:
                    yield batch
        except psycopg.Error as exc:
            raise self._translate(exc, "The SQL query failed") from None

    supports_copy = True

    def copy_source(self) -> CopySource | None:
        """The query's rows in COPY's text format, with their types.

        The query is declared alone first (the server checks it is one read
        query), which also gives its result columns and their types; then
        one ``COPY (query) TO STDOUT`` streams the rows, which the worker
        relays to the stage as they come.
        """
        if self._connection is None:
            self.open()
        query = strip_query(self.options["query"])
        params = self._params()
        try:
            declared = self._declare(query, params)
            description = list(declared.description or ())
            declared.close()
        except psycopg.Error as exc:
            raise self._translate(exc, "The SQL query failed") from None
        names = [column.name for column in description]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise PermanentSourceError(
                f"The query names a column more than once: "
                f"{', '.join(duplicates)}; give each an alias."
            )
        types = [SOURCE_TYPES.get(column.type_code, "text") for column in description]
        statement = sql.SQL("COPY ({query}\n) TO STDOUT").format(query=sql.SQL(query))

        def chunks() -> Iterator[bytes]:
            try:
                self._set_timeout(self._connection, self._export_timeout_name())
                with self._connection.cursor().copy(statement, params) as copy:
                    # COPY sends a message a row: relay them a megabyte at a
                    # time, not one write a row.
                    buffer, size = [], 0
                    for data in copy:
                        buffer.append(bytes(data))
                        size += len(data)
                        if size >= 1 << 20:
                            yield b"".join(buffer)
                            buffer, size = [], 0
                    if buffer:
                        yield b"".join(buffer)
            except psycopg.Error as exc:
                raise self._translate(exc, "The SQL query failed") from None

        return CopySource(names, types, "text", {}, chunks())

    def _params(self):
        """The query's parameters; with a cursor, ``cursor`` among them."""
        params = self.options.get("params")
        if "cursor" not in self.source:
            return params
        return {**(params or {}), "cursor": self.cursor_value}

    def _export_timeout_name(self) -> str:
        given = {**self.config, **self.source}
        if "export_timeout_ms" in given:
            return "export_timeout_ms"
        if "statement_timeout_ms" in given:
            return "statement_timeout_ms"
        return "default export timeout"

    def _set_timeout(self, connection: psycopg.Connection, name: str) -> None:
        """Set the session's ``statement_timeout`` from the option ``name``.

        A session setting (``is_local`` false, like ``SET``), so it holds
        for every statement that follows on the connection: the DECLARE,
        each FETCH of the server-side cursor, and the COPY. Remembered to
        name the limit when the server cancels a statement.
        """
        milliseconds = self.options.get(name, DEFAULT_EXPORT_TIMEOUT_MS)
        connection.execute(
            "SELECT set_config('statement_timeout', %s, false)", [str(milliseconds)]
        )
        self._timeout = (name, milliseconds)

    def _translate(self, exc: psycopg.Error, context: str) -> SourceError:
        """A classified, redacted error from a driver exception."""
        return sql_error_translate(
            exc, context, timeout=self._timeout, redact=self.redact
        )
