"""What PostgreSQL and SQLite do differently when staging and merging.

The loading's SQL is written once, in ``stage`` and ``merge``; where the two
databases differ, it asks the connection's dialect, chosen once from
``connection.vendor``, the way dlt's ``sql_jobs`` leaves a destination only
small hooks to override. ``Dialect`` holds SQL that both databases accept;
``PostgresDialect`` overrides what PostgreSQL does faster, and
``SqliteDialect`` only names its vendor.

Table names in these statements come from ``Stage`` (checked against
``STAGE_TABLE``) and model metadata, never from input.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connection

from connectors.lineformat import COLUMNS, decode_line

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

    from .merge import Merge

STAGE_COLUMNS = ", ".join(COLUMNS)


class StageWriter:
    """Writes rows into one staging table until ``close()``."""

    def __init__(self, table: str):
        self.table = table

    def write_rows(self, rows: list[tuple[int, str, str, str]]) -> None:
        """Stage ``(seq, key, data, checksum)`` tuples."""
        raise NotImplementedError(
            "subclasses of StageWriter must provide a write_rows() method"
        )

    def write_lines(self, lines: list[bytes]) -> None:
        """Stage complete lines of ``connectors.lineformat``."""
        self.write_rows([tuple(decode_line(line)) for line in lines])

    def close(self, exc: BaseException | None = None) -> None:
        """End the writing: keep what was written, or abort on ``exc``."""


class InsertWriter(StageWriter):
    """Stages rows with one multi-row INSERT per batch."""

    def write_rows(self, rows: list[tuple[int, str, str, str]]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {self.table} ({STAGE_COLUMNS}) VALUES (%s, %s, %s, %s)",
                rows,
            )


class CopyWriter(StageWriter):
    """Stages rows with one COPY that stays open across batches.

    The server ingests while the worker reads on; ``close()`` ends the
    COPY, which must happen before the connection runs anything else.
    """

    def __init__(self, table: str):
        super().__init__(table)
        connection.ensure_connection()
        self._cursor = connection.connection.cursor()
        self._context = self._cursor.copy(
            f"COPY {self.table} ({STAGE_COLUMNS}) FROM STDIN"
        )
        self._copy = self._context.__enter__()

    def write_rows(self, rows: list[tuple[int, str, str, str]]) -> None:
        write_row = self._copy.write_row
        for row in rows:
            write_row(row)

    def write_lines(self, lines: list[bytes]) -> None:
        self._copy.write(b"".join(lines))

    def close(self, exc: BaseException | None = None) -> None:
        try:
            if exc is None:
                self._context.__exit__(None, None, None)
            else:
                self._context.__exit__(type(exc), exc, exc.__traceback__)
        finally:
            self._cursor.close()


class Dialect:
    """SQL for staging and merging that PostgreSQL and SQLite both accept.

    Subclasses override the hooks their database does better.
    """

    vendor = ""
    #: Lines of ``connectors.lineformat`` can be streamed into a stage as
    #: they are, so a connector that serialises records itself is relayed.
    relays_lines = False

    def stage_writer(self, table: str) -> StageWriter:
        """The writer that fills the staging table ``table``."""
        return InsertWriter(table)

    def create_stage_sql(self, table: str, *, parse_json: bool) -> str:
        """The CREATE TABLE of a stage; ``parse_json`` asks for JSON data."""
        return (
            f"CREATE TABLE {table} ({self._stage_columns_sql(parse_json=parse_json)})"
        )

    def _stage_columns_sql(self, *, parse_json: bool) -> str:
        data_type = self.stage_data_type(parse_json=parse_json)
        return (
            "seq bigint NOT NULL, key text NOT NULL, "
            f"data {data_type} NOT NULL, checksum text NOT NULL"
        )

    def stage_data_type(self, *, parse_json: bool) -> str:
        """The column type of a stage's ``data``."""
        return "text"

    def as_json(self, expression: str) -> str:
        """``expression`` (staged ``data``) as the records' JSON column takes it."""
        return expression

    def analyze_sql(self, table: str) -> str | None:
        """A statement giving the planner a stage's statistics, if any."""
        return None

    def lock_timeout_sql(self, milliseconds: int) -> str | None:
        """A statement bounding how long this transaction waits for locks."""
        return None

    def delete_duplicates_sql(self, table: str) -> str:
        """Delete all but the last row (by ``seq``) of each repeated key."""
        return (
            f"DELETE FROM {table} WHERE seq NOT IN "
            f"(SELECT max(seq) FROM {table} GROUP BY key)"
        )

    def upsert_changed(self, cursor: CursorWrapper, merge: Merge) -> tuple[int, int]:
        """Write the new and changed staged rows; return (inserted, updated).

        This version counts first, then upserts. "WHERE true" keeps SQLite
        from reading ON CONFLICT as a join constraint of the SELECT.
        """
        project_id, run_id = merge.project_id, merge.run_id
        cursor.execute(
            f"SELECT sum(CASE WHEN r.key IS NULL THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN r.key IS NULL THEN 0 ELSE 1 END) "
            f"FROM {merge.stage} s LEFT JOIN {merge.records} r "
            f"ON r.project_id = %s AND r.key = s.key "
            f"WHERE r.key IS NULL OR r.checksum <> s.checksum",
            [project_id],
        )
        inserted, updated = (value or 0 for value in cursor.fetchone())
        cursor.execute(
            f"INSERT INTO {merge.records} {merge.COLUMNS} "
            f"SELECT %s, c.key, {self.as_json('c.data')}, c.checksum, %s "
            f"FROM ({merge.changed_sql()}) c WHERE true {merge.conflict_sql()}",
            [project_id, run_id, project_id],
        )
        return inserted, updated


class PostgresDialect(Dialect):
    """PostgreSQL: COPY, unlogged stages, jsonb, one counted upsert."""

    vendor = "postgresql"
    relays_lines = True

    def stage_writer(self, table: str) -> StageWriter:
        return CopyWriter(table)

    def create_stage_sql(self, table: str, *, parse_json: bool) -> str:
        # Unlogged: a stage is rebuilt from the source if a crash empties
        # it, so its writes need not go through the WAL.
        return (
            f"CREATE UNLOGGED TABLE {table} "
            f"({self._stage_columns_sql(parse_json=parse_json)})"
        )

    def stage_data_type(self, *, parse_json: bool) -> str:
        return "jsonb" if parse_json else "text"

    def as_json(self, expression: str) -> str:
        return f"{expression}::jsonb"

    def analyze_sql(self, table: str) -> str | None:
        return f"ANALYZE {table}"

    def lock_timeout_sql(self, milliseconds: int) -> str | None:
        return f"SET LOCAL lock_timeout = {int(milliseconds)}"

    def delete_duplicates_sql(self, table: str) -> str:
        return (
            f"DELETE FROM {table} s USING (SELECT key, max(seq) AS "
            f"last FROM {table} GROUP BY key HAVING count(*) > 1) d "
            f"WHERE s.key = d.key AND s.seq < d.last"
        )

    def upsert_changed(self, cursor: CursorWrapper, merge: Merge) -> tuple[int, int]:
        # One statement: RETURNING tells an inserted row (xmax = 0) from an
        # updated one, so the changed rows are joined only once.
        cursor.execute(
            f"WITH changed AS ({merge.changed_sql()}), up AS ("
            f"INSERT INTO {merge.records} {merge.COLUMNS} "
            f"SELECT %s, key, {self.as_json('data')}, checksum, %s FROM changed "
            f"{merge.conflict_sql()} RETURNING (xmax = 0) AS inserted) "
            f"SELECT count(*) FILTER (WHERE inserted), "
            f"count(*) FILTER (WHERE NOT inserted) FROM up",
            [merge.project_id, merge.project_id, merge.run_id],
        )
        inserted, updated = cursor.fetchone()
        return inserted, updated


class SqliteDialect(Dialect):
    """SQLite, the standalone mode: the portable SQL as it is."""

    vendor = "sqlite"


DIALECTS: dict[str, Dialect] = {
    dialect.vendor: dialect for dialect in (PostgresDialect(), SqliteDialect())
}


def dialect_for(vendor: str) -> Dialect:
    """The dialect of a database vendor (``connection.vendor``).

    Raises:
        ValueError: the loading does not support that database.
    """
    try:
        return DIALECTS[vendor]
    except KeyError:
        raise ValueError(
            f"importhub loads into PostgreSQL or SQLite, not {vendor!r}"
        ) from None


def transaction_lock_timeout(milliseconds: int) -> None:
    """Bound how long the current transaction waits for any lock."""
    statement = dialect_for(connection.vendor).lock_timeout_sql(milliseconds)
    if statement:
        with connection.cursor() as cursor:
            cursor.execute(statement)
