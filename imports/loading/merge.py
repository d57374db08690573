"""The merge of a sealed stage into a project's records: upsert or replace.

One place builds the statements of both strategies, as dlt's ``sql_jobs``
builds a merge per write disposition; where PostgreSQL and SQLite differ,
the stage's dialect decides (``dialects``). Only new and changed records
(by checksum) are written; unchanged ones are filtered out by the join
before the upsert, so they are neither rewritten nor row-locked. ``replace``
also deletes the records whose keys the stage no longer has, once the
deletion limit (``safety``) has let it, before anything is written.

Table names come from ``Stage`` (checked against ``STAGE_TABLE``) and model
metadata, never from input; values are always parameters.
"""

from typing import NamedTuple

from django.db import connection

from imports.models import Record

from .safety import DeletionLimit
from .stage import Stage


class MergeCounts(NamedTuple):
    """What a merge wrote."""

    inserted: int
    updated: int
    deleted: int


class Merge:
    """The statements that merge one stage into one project's records."""

    COLUMNS = "(project_id, key, data, checksum, last_run_id)"

    def __init__(self, *, stage: Stage, project_id: int, run_id: int):
        self.stage = stage.table
        self.dialect = stage.dialect
        self.records = Record._meta.db_table
        self.project_id = int(project_id)
        self.run_id = int(run_id)

    def changed_sql(self) -> str:
        """The staged rows that are new or changed; one parameter, the project."""
        return (
            f"SELECT s.key, s.data, s.checksum FROM {self.stage} s "
            f"LEFT JOIN {self.records} r ON r.project_id = %s AND r.key = s.key "
            f"WHERE r.key IS NULL OR r.checksum <> s.checksum"
        )

    def conflict_sql(self) -> str:
        """The ON CONFLICT clause that turns the insert into an upsert."""
        return (
            "ON CONFLICT (project_id, key) DO UPDATE SET "
            "data = excluded.data, checksum = excluded.checksum, "
            "last_run_id = excluded.last_run_id"
        )

    def missing_sql(self) -> str:
        """FROM and WHERE of the records the stage no longer has."""
        return (
            f"FROM {self.records} WHERE project_id = %s AND NOT EXISTS "
            f"(SELECT 1 FROM {self.stage} s WHERE s.key = {self.records}.key)"
        )

    def has_records(self, cursor) -> bool:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {self.records} WHERE project_id = %s)",
            [self.project_id],
        )
        return bool(cursor.fetchone()[0])

    def insert_all(self, cursor) -> int:
        """Insert every staged row; only for a project without records."""
        cursor.execute(
            f"INSERT INTO {self.records} {self.COLUMNS} "
            f"SELECT %s, key, {self.dialect.as_json('data')}, checksum, %s "
            f"FROM {self.stage}",
            [self.project_id, self.run_id],
        )
        return cursor.rowcount

    def stage_is_empty(self, cursor) -> bool:
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {self.stage})")
        return bool(cursor.fetchone()[0])

    def count_records(self, cursor) -> int:
        cursor.execute(
            f"SELECT count(*) FROM {self.records} WHERE project_id = %s",
            [self.project_id],
        )
        return cursor.fetchone()[0]

    def count_missing(self, cursor) -> int:
        """How many records a replace would delete."""
        cursor.execute(f"SELECT count(*) {self.missing_sql()}", [self.project_id])
        return cursor.fetchone()[0]

    def check_deletions(self, cursor, limit: DeletionLimit) -> None:
        """Count what a replace would delete and let ``limit`` refuse it.

        Counted only when the limit could refuse: a confirmed run, or a
        limit of 100% with a source that has rows, costs one cheap query.
        """
        staged_empty = self.stage_is_empty(cursor)
        if not limit.needs_counts(staged_empty=staged_empty):
            return
        current = self.count_records(cursor)
        deleting = current if staged_empty else self.count_missing(cursor)
        limit.check(deleting=deleting, current=current, staged_empty=staged_empty)

    def delete_missing(self, cursor) -> int:
        """Delete the records the stage no longer has; return how many."""
        cursor.execute(f"DELETE {self.missing_sql()}", [self.project_id])
        return cursor.rowcount

    def run(
        self, *, replace: bool, deletion_limit: DeletionLimit | None = None
    ) -> MergeCounts:
        """Merge; must run inside the transaction that ends the run.

        Raises:
            DeletionLimitExceeded: a replace would delete more than
                ``deletion_limit`` allows; nothing was written.
        """
        with connection.cursor() as cursor:
            if not self.has_records(cursor):
                # A first import (or one after the records were emptied):
                # nothing to compare with, so a plain insert (the records
                # are locked by the project row lock the caller holds).
                inserted, updated = self.insert_all(cursor), 0
            else:
                # Statistics for the join's plan; a first import needs none.
                if analyze := self.dialect.analyze_sql(self.stage):
                    cursor.execute(analyze)
                if replace and deletion_limit is not None:
                    self.check_deletions(cursor, deletion_limit)
                inserted, updated = self.dialect.upsert_changed(cursor, self)
            deleted = self.delete_missing(cursor) if replace else 0
        return MergeCounts(int(inserted), int(updated), int(deleted))


def stage_merge(
    *,
    stage: Stage,
    project_id: int,
    run_id: int,
    replace: bool,
    deletion_limit: DeletionLimit | None = None,
) -> MergeCounts:
    """Merge the sealed ``stage`` into the project's records; return counts.

    Must run inside a transaction, under the project's row lock.

    Raises:
        DeletionLimitExceeded: see ``Merge.run()``.
    """
    stage.flush()
    merge = Merge(stage=stage, project_id=project_id, run_id=run_id)
    return merge.run(replace=replace, deletion_limit=deletion_limit)
