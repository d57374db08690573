"""The import pipeline: stream the source into a staging table, then merge.

Extract and load are separate stages. Extraction streams the connector's
batches into a per-run staging table (COPY on PostgreSQL), so memory does not
grow with the source. Loading merges the staged rows into the project's
records in one transaction with set-based statements; a failed or killed
import leaves the records exactly as the last successful import left them.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from django.db import connection, transaction
from django.db.models import Max

from connectors.base import BadRow, BaseConnector
from connectors.exceptions import PermanentSourceError
from imports.models import ImportRun, Project, Record

logger = logging.getLogger(__name__)

KEY_SEPARATOR = "\x1f"
REJECTED_SAMPLES = 10


class ImportInterrupted(Exception):
    """The run must stop: it was cancelled or lost its lock."""


class FenceRejected(Exception):
    """A newer run of the project took over; this run may not commit."""


class BadRowError(PermanentSourceError):
    """A row cannot be imported and the project fails on bad rows."""


@dataclass
class LoadResult:
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    rows_deleted: int = 0
    rows_rejected: int = 0
    duplicates: int = 0
    rejected_samples: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        data = asdict(self)
        data.pop("rejected_samples")
        data.pop("duplicates")
        return data


def record_checksum(payload: str) -> str:
    return hashlib.md5(payload.encode(), usedforsecurity=False).hexdigest()


class Stage:
    """A per-run staging table: ``(seq, key, data, checksum)``."""

    def __init__(self, run_id: int):
        self.table = f"import_stage_{int(run_id)}"
        self.vendor = connection.vendor

    def create(self) -> None:
        unlogged = "UNLOGGED " if self.vendor == "postgresql" else ""
        data_type = "jsonb" if self.vendor == "postgresql" else "text"
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            cursor.execute(
                f"CREATE {unlogged}TABLE {self.table} ("
                "seq bigint NOT NULL, key text NOT NULL, "
                f"data {data_type} NOT NULL, checksum text NOT NULL)"
            )

    def drop(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")

    def write(self, rows: list[tuple[int, str, str, str]]) -> None:
        if not rows:
            return
        with connection.cursor() as cursor:
            if self.vendor == "postgresql":
                with cursor.cursor.copy(
                    f"COPY {self.table} (seq, key, data, checksum) FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(
                    f"INSERT INTO {self.table} (seq, key, data, checksum) "
                    "VALUES (%s, %s, %s, %s)",
                    rows,
                )

    def merge(self, *, project: Project, run_id: int, replace: bool) -> dict[str, int]:
        """Merge the staged rows into the project's records; return counts.

        Duplicate keys: the last staged row wins. Unchanged records (same
        checksum) are not rewritten. Must run inside a transaction.
        """
        records = Record._meta.db_table
        latest = (
            f"SELECT key, data, checksum FROM {self.table} WHERE seq IN "
            f"(SELECT max(seq) FROM {self.table} GROUP BY key)"
        )
        data_expr = "s.data"
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT
                    coalesce(sum(CASE WHEN r.id IS NULL THEN 1 ELSE 0 END), 0),
                    coalesce(sum(CASE WHEN r.checksum <> s.checksum
                                 THEN 1 ELSE 0 END), 0),
                    coalesce(sum(CASE WHEN r.checksum = s.checksum
                                 THEN 1 ELSE 0 END), 0),
                    count(*)
                FROM ({latest}) s
                LEFT JOIN {records} r ON r.project_id = %s AND r.key = s.key
                """,
                [project.pk],
            )
            inserted, updated, unchanged, distinct = cursor.fetchone()
            if inserted or updated:
                # "WHERE true" keeps SQLite from reading ON CONFLICT as a
                # join constraint of the SELECT.
                cursor.execute(
                    f"INSERT INTO {records} "
                    f"(project_id, key, data, checksum, last_run_id) "
                    f"SELECT %s, s.key, {data_expr}, s.checksum, %s "
                    f"FROM ({latest}) s LEFT JOIN {records} r "
                    f"ON r.project_id = %s AND r.key = s.key "
                    f"WHERE r.id IS NULL OR r.checksum <> s.checksum "
                    f"ON CONFLICT (project_id, key) DO UPDATE SET "
                    f"data = excluded.data, checksum = excluded.checksum, "
                    f"last_run_id = excluded.last_run_id",
                    [project.pk, run_id, project.pk],
                )
            deleted = 0
            if replace:
                cursor.execute(
                    f"DELETE FROM {records} WHERE project_id = %s AND NOT EXISTS "
                    f"(SELECT 1 FROM {self.table} s WHERE s.key = {records}.key)",
                    [project.pk],
                )
                deleted = cursor.rowcount
        return {
            "rows_inserted": int(inserted),
            "rows_updated": int(updated),
            "rows_unchanged": int(unchanged),
            "rows_deleted": int(deleted),
            "distinct": int(distinct),
        }


def _row_key(row: dict, key_fields: list[str], payload: str) -> str | None:
    if not key_fields:
        return record_checksum(payload)
    parts = []
    for name in key_fields:
        value = row.get(name)
        if value is None or value == "":
            return None
        parts.append(str(value))
    return KEY_SEPARATOR.join(parts)


def import_run_extract(
    *,
    run: ImportRun,
    connector: BaseConnector,
    stage: Stage,
    batch_size: int,
    should_stop: Callable[[], bool],
    on_progress: Callable[[LoadResult], None],
) -> LoadResult:
    """Stream the source into the staging table; count and police bad rows.

    Raises:
        BadRowError: a bad row, when the project fails on bad rows.
        ImportInterrupted: ``should_stop()`` turned true between batches.
    """
    project = run.project
    key_fields = list(project.key_fields or [])
    skip_bad = project.on_bad_row == Project.OnBadRow.SKIP
    result = LoadResult()
    seq = 0

    def reject(number: int, reason: str) -> None:
        if not skip_bad:
            raise BadRowError(f"Row {number}: {reason}.")
        result.rows_rejected += 1
        if len(result.rejected_samples) < REJECTED_SAMPLES:
            result.rejected_samples.append({"row": number, "reason": reason})

    with connector:
        for batch in connector.iter_batches(batch_size=batch_size):
            if should_stop():
                raise ImportInterrupted
            rows = []
            for item in batch:
                seq += 1
                result.rows_read += 1
                if isinstance(item, BadRow):
                    reject(item.number, item.reason)
                    continue
                payload = json.dumps(
                    item, ensure_ascii=False, sort_keys=True, default=str
                )
                key = _row_key(item, key_fields, payload)
                if key is None:
                    missing = [f for f in key_fields if item.get(f) in (None, "")]
                    reject(seq, f"missing key field(s) {', '.join(missing)}")
                    continue
                rows.append((seq, key, payload, record_checksum(payload)))
            stage.write(rows)
            on_progress(result)
    return result


def import_run_load(*, run: ImportRun, stage: Stage, result: LoadResult) -> LoadResult:
    """Merge the staged rows in one transaction, if the run's fence is newest.

    Raises:
        FenceRejected: a newer run of the project holds a larger fence.
    """
    project = run.project
    with transaction.atomic():
        # Serialise loads of one project and check the fence under the lock:
        # a paused worker whose lease expired finds a newer token here.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        newest = ImportRun.objects.filter(project_id=project.pk).aggregate(
            top=Max("fencing_token")
        )["top"]
        if run.fencing_token is None or (newest or 0) > run.fencing_token:
            raise FenceRejected(
                f"run {run.pk} holds fencing token {run.fencing_token}, "
                f"but the project's newest is {newest}"
            )
        counts = stage.merge(
            project=project,
            run_id=run.pk,
            replace=project.mode == Project.Mode.REPLACE,
        )
    staged = result.rows_read - result.rows_rejected
    result.duplicates = staged - counts.pop("distinct")
    for name, value in counts.items():
        setattr(result, name, value)
    return result
