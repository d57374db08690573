"""The merge of a typed stage into a project's table, in SQL.

The stage holds text; the merge reads each value through the project's null
markers, casts it to its column's type and checksums the row, all in the
database. On PostgreSQL the casts are tried first (PostgreSQL does the
parsing): when a value does not cast, the statement fails, the savepoint is
rolled back and ``analyze`` finds, in one scan, which columns hold values
that do not fit and the narrowest type that holds them; the policy then
widens, fails or discards, and the merge runs again. SQLite casts nothing
strictly, so there the scan always runs first.

Only new and changed rows (by checksum) are written; ``replace`` also
deletes the rows whose keys the stage no longer has, once the deletion
limit has let it. Names are quoted (``quote_name``), markers are quoted
literals (``quote_text``), values never leave the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from imports.column_types import LADDERS, PHYSICAL, TEXT, VALID_FUNCTION_SQL, check_sql

from .destination import quote_name, quote_text
from .safety import DeletionLimit
from .table_schema import SYSTEM_COLUMNS, Column, Plan
from .table_stage import TableStage, sqlite_functions

RUN_ID, LOADED_AT, CHECKSUM = (name for name, _ in SYSTEM_COLUMNS)


@dataclass
class Misfit:
    """A column's values that do not fit its type, found by ``analyze``."""

    column: Column
    count: int
    row: int
    value: str | None
    #: The narrowest type holding every value (text at worst).
    fits: str


class TableMerge:
    """The statements that merge one typed stage into one project's table."""

    def __init__(self, *, stage: TableStage, plan: Plan, markers: list, run_id: int):
        self.stage = stage
        self.target = stage.target
        self.plan = plan
        self.markers = sorted(set(markers))
        self.run_id = int(run_id)
        self.postgres = self.target.vendor == "postgresql"
        self.table = self.target.qualified(self.target.table)
        if not self.postgres:
            sqlite_functions(self.target.db)

    # -- expressions -----------------------------------------------------

    def value(self, column: Column, alias: str = "s", *, normal=False) -> str:
        """The column's staged text, NULL for a null marker or no field.

        ``normal``: read the raw text (a key, or the checksum's input).
        """
        if column.stage is None:
            return "NULL"
        source = f"{alias}.{column.stage}"
        if normal or not self.markers:
            return source
        listed = ", ".join(quote_text(m) for m in self.markers)
        return f"(CASE WHEN {source} IN ({listed}) THEN NULL ELSE {source} END)"

    def fits(self, expression: str, type_: str) -> str:
        if self.postgres:
            return check_sql(expression, type_)
        return f"importhub_fits({expression}, {quote_text(type_)})"

    def typed(self, column: Column, alias: str = "s", *, normal=False) -> str:
        """The column's value as its type."""
        value = self.value(column, alias, normal=normal)
        if column.type == TEXT or column.stage is None:
            return value
        if not self.postgres:
            return f"importhub_cast({value}, {quote_text(column.type)})"
        cast = f"({value})::{column.type}"
        if column.discard:
            return f"(CASE WHEN {self.fits(value, column.type)} THEN {cast} END)"
        return cast

    def checksum(self, alias: str = "s", *, normal=False) -> str:
        """A digest of the row's values, by column name, with the markers."""
        columns = sorted(self.plan.staged, key=lambda c: c.name)
        salt = "|".join([*(c.name for c in columns), "", *self.markers])
        values = ", ".join(self.value(c, alias, normal=normal) for c in columns)
        if self.postgres:
            # A 64-bit digest (PostgreSQL's own hash, several times cheaper
            # than md5): it only tells a row's new version from its old one,
            # where a chance collision is 1 in 2**64 per changed row.
            text = f"{quote_text(salt)} || ROW({values})::text"
            if not self.plan.keys:
                return f"md5({text})::uuid"
            return f"hashtextextended({text}, 0)"
        return f"importhub_checksum({quote_text(salt)}, {values})"

    def key_names(self) -> list[str]:
        if self.plan.keys:
            return [quote_name(c.name) for c in self.plan.keys]
        return [CHECKSUM]

    def key_values(self, alias: str = "s") -> list[str]:
        """The key's values as their types; the checksum without keys.

        A key holds no marker (such rows were rejected as missing a key),
        so its raw text is read directly.
        """
        if self.plan.keys:
            return [self.typed(c, alias, normal=True) for c in self.plan.keys]
        return [self.checksum(alias, normal=True)]

    def source(self) -> str:
        """The staged rows with their checksum, as a subquery.

        The checksum is taken of the raw staged text, with the markers in
        its salt: equal text reads as equal values under the same markers,
        so an unchanged row costs no marker test and no cast but its key's.
        ("OFFSET 0" keeps the planner from inlining it, so that the digest
        is computed once a row.)
        """
        offset = "OFFSET 0" if self.postgres else "LIMIT -1 OFFSET 0"
        return (
            f"(SELECT s.*, {self.checksum('s', normal=True)} AS _cs "
            f"FROM {self.stage.sql} s {offset})"
        )

    def largest(self, column: Column):
        """The largest staged value of ``column``, as its type (None: none)."""
        if column.stage is None:
            return None
        with self.target.cursor() as cursor:
            cursor.execute(f"SELECT max({self.typed(column)}) FROM {self.stage.sql} s")
            return cursor.fetchone()[0]

    # -- checking --------------------------------------------------------

    def analyze(self) -> list[Misfit]:
        """The staged columns holding values that do not fit their type."""
        checked = [c for c in self.plan.staged if c.type != TEXT]
        if not checked:
            return []
        parts = []
        for column in checked:
            value = self.value(column)
            bad = f"({value} IS NOT NULL AND NOT {self.fits(value, column.type)})"
            parts.append(f"sum(CASE WHEN {bad} THEN 1 ELSE 0 END)")
            parts.append(f"min(CASE WHEN {bad} THEN s._seq END)")
            for wider in LADDERS[column.type][:-1]:
                fits = f"({value} IS NULL OR {self.fits(value, wider)})"
                parts.append(f"min(CASE WHEN {fits} THEN 1 ELSE 0 END)")
        with self.target.cursor() as cursor:
            if self.postgres:
                cursor.execute(VALID_FUNCTION_SQL)
            cursor.execute(f"SELECT {', '.join(parts)} FROM {self.stage.sql} s")
            row = list(cursor.fetchone())
            found = []
            for column in checked:
                count, first = row.pop(0) or 0, row.pop(0)
                fitting = TEXT
                for wider in LADDERS[column.type][:-1]:
                    if row.pop(0) == 1 and fitting == TEXT:
                        fitting = wider
                if count:
                    cursor.execute(
                        f"SELECT {self.value(column)} FROM {self.stage.sql} s "
                        f"WHERE s._seq = {int(first)}"
                    )
                    (value,) = cursor.fetchone()
                    found.append(Misfit(column, int(count), int(first), value, fitting))
        return found

    def discard_rows(self, misfits: list[Misfit], *, samples: int):
        """Delete the rows holding a misfit; ``(count, first rows)``."""
        tests = []
        for misfit in misfits:
            value = self.value(misfit.column)
            tests.append(
                f"({value} IS NOT NULL AND NOT {self.fits(value, misfit.column.type)})"
            )
        return self._delete_where(" OR ".join(tests), samples=samples)

    def discard_field_rows(self, columns: list[Column], *, samples: int):
        """Delete the rows holding a value in any of ``columns``."""
        tests = [f"({self.value(column)} IS NOT NULL)" for column in columns]
        return self._delete_where(" OR ".join(tests), samples=samples)

    def _delete_where(self, where: str, *, samples: int):
        with self.target.cursor() as cursor:
            cursor.execute(
                f"SELECT s._seq FROM {self.stage.sql} s WHERE {where} "
                f"ORDER BY s._seq LIMIT {int(samples)}"
            )
            rows = [int(r[0]) for r in cursor.fetchall()]
            if not rows:
                return 0, []
            cursor.execute(
                f"DELETE FROM {self.stage.sql} WHERE _seq IN "
                f"(SELECT s._seq FROM {self.stage.sql} s WHERE {where})"
            )
            return cursor.rowcount, rows

    # -- writing ---------------------------------------------------------

    def deduplicate(self) -> int:
        """Keep the last staged row of each key; return how many went."""
        inner = self.key_values("i")
        if self.postgres:
            aliased = ", ".join(f"{e} AS k{n}" for n, e in enumerate(inner))
            groups = ", ".join(str(n + 1) for n in range(len(inner)))
            match = " AND ".join(
                f"{e} = d.k{n}" for n, e in enumerate(self.key_values("s"))
            )
            statement = (
                f"DELETE FROM {self.stage.sql} s USING (SELECT {aliased}, "
                f"max(i._seq) AS last FROM {self.stage.sql} i GROUP BY {groups} "
                f"HAVING count(*) > 1) d WHERE {match} AND s._seq < d.last"
            )
        else:
            statement = (
                f"DELETE FROM {self.stage.sql} WHERE _seq NOT IN (SELECT "
                f"max(i._seq) FROM {self.stage.sql} i GROUP BY {', '.join(inner)})"
            )
        with self.target.cursor() as cursor:
            cursor.execute(statement)
            return max(cursor.rowcount, 0)

    def schema_apply(self) -> None:
        """Create the table, add new columns, change widened types."""
        physical = PHYSICAL[self.target.vendor]
        with self.target.cursor() as cursor:
            if self.plan.creates:
                columns = [
                    f"{quote_name(c.name)} {physical[c.type]}"
                    + (" NOT NULL" if c in self.plan.keys else "")
                    for c in self.plan.columns
                ]
                system = [
                    f"{name} {self._system_type(kind)}" for name, kind in SYSTEM_COLUMNS
                ]
                # PostgreSQL: the key comes after the rows (``run``).
                key = (
                    ""
                    if self.postgres
                    else f", PRIMARY KEY ({', '.join(self.key_names())})"
                )
                cursor.execute(
                    f"CREATE TABLE {self.table} ({', '.join(columns + system)}{key})"
                )
                return
            for column in self.plan.added:
                cursor.execute(
                    f"ALTER TABLE {self.table} ADD COLUMN "
                    f"{quote_name(column.name)} {physical[column.type]}"
                )
            if self.postgres:
                # SQLite keeps any value in any column: the logical type alone
                # changes there.
                for column, _old in self.plan.retyped:
                    name = quote_name(column.name)
                    cursor.execute(
                        f"ALTER TABLE {self.table} ALTER COLUMN {name} TYPE "
                        f"{column.type} USING {name}::{column.type}"
                    )

    def _system_type(self, kind: str) -> str:
        if kind != "checksum":
            return PHYSICAL[self.target.vendor].get(kind, "TEXT")
        if not self.postgres:
            return "TEXT"
        # Without keys the checksum is the key: 128 bits, so that two rows
        # of a large table never share one.
        return "bigint" if self.plan.keys else "uuid"

    def is_empty(self, cursor) -> bool:
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {self.table})")
        return bool(cursor.fetchone()[0])

    def _join(self) -> str:
        pairs = zip(self.key_names(), self.key_values("s"), strict=True)
        return " AND ".join(f"d.{name} = {value}" for name, value in pairs)

    def _missing_sql(self) -> str:
        pairs = zip(self.key_names(), self.key_values("s"), strict=True)
        match = " AND ".join(f"{value} = {self.table}.{name}" for name, value in pairs)
        return (
            f"FROM {self.table} WHERE NOT EXISTS "
            f"(SELECT 1 FROM {self.stage.sql} s WHERE {match})"
        )

    def _insert_head(self) -> tuple[str, str]:
        staged = self.plan.staged
        names = [quote_name(c.name) for c in staged] + [RUN_ID, LOADED_AT, CHECKSUM]
        # No statement here takes parameters: a "%" is itself.
        now = "now()" if self.postgres else "strftime('%Y-%m-%dT%H:%M:%fZ')"
        values = [self.typed(c, "c") for c in staged]
        values += [str(self.run_id), now, "c._cs"]
        return ", ".join(names), ", ".join(values)

    def _conflict(self) -> str:
        keys = self.key_names()
        if not self.plan.keys:
            return f"ON CONFLICT ({', '.join(keys)}) DO NOTHING"
        sets = [
            f"{quote_name(c.name)} = excluded.{quote_name(c.name)}"
            for c in self.plan.staged
            if quote_name(c.name) not in keys
        ]
        sets += [f"{n} = excluded.{n}" for n in (RUN_ID, LOADED_AT, CHECKSUM)]
        return f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}"

    def run(self, *, replace: bool, deletion_limit: DeletionLimit | None):
        """Write the new and changed rows (and delete, for replace).

        Returns ``(inserted, updated, deleted)``.
        """
        names, values = self._insert_head()
        source = self.source()
        with self.target.cursor() as cursor:
            if self.postgres and any(c.discard for c in self.plan.staged):
                cursor.execute(VALID_FUNCTION_SQL)
            if self.plan.creates or self.is_empty(cursor):
                cursor.execute(
                    f"INSERT INTO {self.table} ({names}) "
                    f"SELECT {values} FROM {source} c"
                )
                inserted = cursor.rowcount
                if self.plan.creates and self.postgres:
                    # One index build after the rows, not one insert each.
                    cursor.execute(
                        f"ALTER TABLE {self.table} ADD PRIMARY KEY "
                        f"({', '.join(self.key_names())})"
                    )
                return inserted, 0, 0
            if replace and deletion_limit is not None:
                self._check_deletions(cursor, deletion_limit)
            changed = (
                f"SELECT s.* FROM {source} s LEFT JOIN {self.table} d ON "
                f"{self._join_cs()} "
                f"WHERE d.{self.key_names()[0]} IS NULL OR d.{CHECKSUM} <> s._cs"
            )
            if self.postgres:
                cursor.execute(
                    f"WITH changed AS ({changed}), up AS (INSERT INTO {self.table} "
                    f"({names}) SELECT {values} FROM changed c {self._conflict()} "
                    f"RETURNING (xmax = 0) AS inserted) SELECT count(*) FILTER "
                    f"(WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
                )
                inserted, updated = cursor.fetchone()
            else:
                cursor.execute(
                    f"SELECT sum(CASE WHEN d.{self.key_names()[0]} IS NULL THEN 1 "
                    f"ELSE 0 END), sum(CASE WHEN d.{self.key_names()[0]} IS NULL "
                    f"THEN 0 ELSE 1 END) FROM {source} s LEFT JOIN {self.table} d "
                    f"ON {self._join_cs()} WHERE d.{self.key_names()[0]} IS NULL "
                    f"OR d.{CHECKSUM} <> s._cs"
                )
                inserted, updated = (v or 0 for v in cursor.fetchone())
                cursor.execute(
                    f"INSERT INTO {self.table} ({names}) SELECT {values} FROM "
                    f"({changed}) c WHERE true {self._conflict()}"
                )
            deleted = 0
            if replace:
                cursor.execute(f"DELETE {self._missing_sql()}")
                deleted = cursor.rowcount
        return int(inserted), int(updated), int(deleted)

    def _join_cs(self) -> str:
        """The join of the checksummed source ``s`` with the table ``d``."""
        if not self.plan.keys:
            return f"d.{CHECKSUM} = s._cs"
        return self._join()

    def _check_deletions(self, cursor, limit: DeletionLimit) -> None:
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {self.stage.sql})")
        staged_empty = bool(cursor.fetchone()[0])
        if not limit.needs_counts(staged_empty=staged_empty):
            return
        cursor.execute(f"SELECT count(*) FROM {self.table}")
        current = cursor.fetchone()[0]
        if staged_empty:
            deleting = current
        else:
            cursor.execute(f"SELECT count(*) {self._missing_sql()}")
            deleting = cursor.fetchone()[0]
        limit.check(deleting=deleting, current=current, staged_empty=staged_empty)
