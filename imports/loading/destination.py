"""Where a project's typed table lives, and its per-project state row.

A ``Target`` names a database (a Django connection alias: the app's own,
or one made at run time for a ``Destination``), a schema and a table. On
SQLite, which has no schemas, the schema is a prefix of the table's name.

The state table (``_importhub_state``, one row per project) lives beside
the data, so that it commits in the data's own transaction: the highest
fencing token that committed and the run that did, the table's columns and
the counts. A load first claims the row with a conditional upsert that
refuses a token not above the stored one; a paused worker whose lease
expired finds a newer token there and commits nothing, whichever database
the data is in. The app's run status follows the row: the sweep reconciles
a run whose data committed in another database but whose status did not.

Every name in SQL is quoted by ``quote_name``; schema and table names are
also checked identifiers (``destinations.IDENTIFIER``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import dj_database_url
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, ProgrammingError, connections
from django.db import transaction as db_transaction
from django.db.utils import ConnectionDoesNotExist, load_backend

from connectors.exceptions import PermanentSourceError
from imports.models.destinations import IDENTIFIER
from imports.models.projects import table_name_derive

from .results import FenceRejected

STATE_TABLE = "_importhub_state"
#: Seconds to wait for a destination's connection, unless its URL says.
DESTINATION_CONNECT_TIMEOUT = 10


def quote_name(name: str) -> str:
    """An SQL identifier, quoted; any text a source names a column by."""
    if "\x00" in name:
        raise ValueError("a name cannot hold a NUL character")
    return '"' + name.replace('"', '""') + '"'


def quote_text(value: str) -> str:
    """An SQL string literal (standard-conforming strings, as both use)."""
    if "\x00" in value:
        raise ValueError("a text cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"


def destination_alias(destination) -> str:
    """The connection alias of a ``Destination``, made on first use.

    The connection is made per thread, like every Django connection, but
    from the destination's URL rather than from ``DATABASES``, so that a
    destination edited in the admin is used from its next load on.
    """
    alias = f"importhub_destination_{int(destination.pk)}"
    config = dj_database_url.parse(destination.url, conn_max_age=0)
    # A host that drops packets must not hold a worker (or an admin page)
    # for the system's TCP timeout; ``?connect_timeout=`` in the URL wins.
    config.setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", DESTINATION_CONNECT_TIMEOUT
    )
    config = connections.configure_settings(
        {DEFAULT_DB_ALIAS: dict(settings.DATABASES[DEFAULT_DB_ALIAS]), alias: config}
    )[alias]
    try:
        current = connections[alias]
    except ConnectionDoesNotExist:
        current = None
    if current is not None:
        if all(current.settings_dict.get(k) == config.get(k) for k in _IDENTITY):
            return alias
        current.close()
    connections[alias] = load_backend(config["ENGINE"]).DatabaseWrapper(config, alias)
    return alias


_IDENTITY = ("ENGINE", "NAME", "HOST", "PORT", "USER", "PASSWORD", "OPTIONS")


@dataclass(frozen=True)
class StateRow:
    """A project's row in the state table."""

    fence: int
    run_id: int
    table: str
    columns: list
    counts: dict
    cursor: dict | None = None


def _state_row(row) -> StateRow | None:
    if row is None:
        return None
    fence, run_id, table, columns, counts, cursor = row
    return StateRow(
        int(fence),
        int(run_id),
        table,
        json.loads(columns),
        json.loads(counts),
        json.loads(cursor) if cursor else None,
    )


class Target:
    """One project's table: its database, schema and name."""

    def __init__(self, project):
        destination = project.destination if project.destination_id else None
        self.alias = destination_alias(destination) if destination else DEFAULT_DB_ALIAS
        self.schema = (
            destination.schema if destination else ""
        ) or settings.IMPORTHUB_DATA_SCHEMA
        self.table = project.table_name or table_name_derive(project.name, project.pk)
        for name in (self.schema, self.table):
            if not IDENTIFIER.match(name):
                raise ValueError(f"not a valid schema or table name: {name!r}")
        self.project_id = int(project.pk)
        self.remote = destination is not None

    @property
    def db(self):
        return connections[self.alias]

    @property
    def vendor(self) -> str:
        return self.db.vendor

    def qualified(self, name: str) -> str:
        """``name`` in the target's schema, quoted."""
        if self.vendor == "sqlite":
            return quote_name(f"{self.schema}__{name}")
        return f"{quote_name(self.schema)}.{quote_name(name)}"

    @property
    def label(self) -> str:
        """How an operator names the table: ``importhub_data.sales_12``."""
        return f"{self.schema}.{self.table}"

    def atomic(self):
        return db_transaction.atomic(using=self.alias)

    def cursor(self):
        return self.db.cursor()

    def tune_for_merge(self) -> None:
        """Give the merge's transaction the memory its hash joins need.

        A join or grouping of a million staged rows spills to disk in
        PostgreSQL's default 4 MB of ``work_mem``; ``SET LOCAL`` ends with
        the transaction.
        """
        if self.vendor == "postgresql":
            with self.cursor() as cursor:
                cursor.execute(
                    "SELECT set_config('work_mem', %s, true)",
                    [settings.IMPORTHUB_MERGE_WORK_MEM],
                )

    # -- structure -------------------------------------------------------

    def ensure(self) -> None:
        """Create the schema and the state table unless they exist."""
        state = self.qualified(STATE_TABLE)
        statements = [
            f"CREATE TABLE IF NOT EXISTS {state} (project_id bigint PRIMARY KEY, "
            f"table_name text NOT NULL, fence bigint NOT NULL, run_id bigint NOT "
            f"NULL, committed_at text, columns text NOT NULL, counts text NOT NULL, "
            # An incremental project's cursor commits with its data.
            f"cursor text)"
        ]
        if self.vendor == "postgresql":
            statements.insert(
                0, f"CREATE SCHEMA IF NOT EXISTS {quote_name(self.schema)}"
            )
        for statement in statements:
            for attempt in range(3):
                # Two first imports at once can race on IF NOT EXISTS; a
                # role without the right to create fails every time.
                try:
                    with self.atomic(), self.cursor() as cursor:
                        cursor.execute(statement)
                    break
                except (IntegrityError, ProgrammingError) as exc:
                    if attempt == 2:
                        raise PermanentSourceError(
                            f"Cannot prepare {self.schema} in the destination "
                            f"database: {str(exc).strip()} (the role needs to "
                            f"create the schema, or tables in it)."
                        ) from None

    def table_exists(self) -> bool:
        with self.cursor() as cursor:
            if self.vendor == "sqlite":
                cursor.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s",
                    [f"{self.schema}__{self.table}"],
                )
            else:
                cursor.execute(
                    "SELECT 1 FROM information_schema.tables "
                    "WHERE table_schema = %s AND table_name = %s",
                    [self.schema, self.table],
                )
            return cursor.fetchone() is not None

    # -- the state row ---------------------------------------------------

    def state(self) -> StateRow | None:
        """The project's state row, or None before its first commit."""
        try:
            with self.cursor() as cursor:
                cursor.execute(
                    f"SELECT fence, run_id, table_name, columns, counts, cursor "
                    f"FROM {self.qualified(STATE_TABLE)} WHERE project_id = %s",
                    [self.project_id],
                )
                row = cursor.fetchone()
        except ProgrammingError:
            return None
        return _state_row(row)

    def state_claim(self, *, fence: int, run_id: int) -> StateRow | None:
        """Claim the state row for a load with ``fence``; the row before.

        Must run inside the target's transaction: the row stays locked
        until it ends, so loads of one project into one database are
        serialised here too.

        Raises:
            FenceRejected: the row holds this fence or a newer one.
        """
        previous = None
        with self.cursor() as cursor:
            cursor.execute(
                f"SELECT fence, run_id, table_name, columns, counts, cursor FROM "
                f"{self.qualified(STATE_TABLE)} WHERE project_id = %s"
                + (" FOR UPDATE" if self.vendor == "postgresql" else ""),
                [self.project_id],
            )
            previous = _state_row(cursor.fetchone())
            cursor.execute(
                f"INSERT INTO {self.qualified(STATE_TABLE)} AS st (project_id, "
                f"table_name, fence, run_id, columns, counts) "
                f"VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (project_id) DO "
                f"UPDATE SET fence = excluded.fence, run_id = excluded.run_id "
                f"WHERE st.fence < excluded.fence RETURNING project_id",
                [
                    self.project_id,
                    self.table,
                    int(fence),
                    int(run_id),
                    json.dumps(previous.columns if previous else []),
                    "{}",
                ],
            )
            if cursor.fetchone() is None:
                raise FenceRejected(
                    f"run {run_id} holds fencing token {fence}, but the "
                    f"destination has committed token {previous and previous.fence}"
                )
        return previous

    def state_finish(
        self,
        *,
        columns: list,
        counts: dict,
        committed_at: str,
        cursor: dict | None = None,
    ) -> None:
        """Record what the load committed, in its own transaction: the
        columns, the counts and the incremental cursor."""
        with self.cursor() as db_cursor:
            db_cursor.execute(
                f"UPDATE {self.qualified(STATE_TABLE)} SET table_name = %s, "
                f"columns = %s, counts = %s, committed_at = %s, cursor = %s "
                f"WHERE project_id = %s",
                [
                    self.table,
                    json.dumps(columns),
                    json.dumps(counts),
                    committed_at,
                    None if cursor is None else json.dumps(cursor),
                    self.project_id,
                ],
            )


def run_committed(project, run) -> dict | None:
    """The counts of ``run`` if its data committed in the project's table.

    The state row names the run and fence that last committed; a run whose
    worker died between the destination's commit and the app's is found
    here. None when it did not commit, or the destination cannot tell.
    """
    if project.layout != project.Layout.TABLE or run.fencing_token is None:
        return None
    try:
        state = Target(project).state()
    except Exception:  # noqa: BLE001 - an unreachable destination: reap as usual
        return None
    if state is None or state.run_id != run.pk or state.fence != run.fencing_token:
        return None
    return state.counts
