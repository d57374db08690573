"""The import pipeline: stream the source into a staging table, then merge.

Extract and load are separate stages. Extraction streams the connector's
batches into a per-run staging table (COPY on PostgreSQL), so memory does not
grow with the source. Loading merges the staged rows into the project's
records in one transaction with set-based statements; a failed or killed
import leaves the records exactly as the last successful import left them.
"""

import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import orjson
from django.db import IntegrityError, connection, transaction
from django.db.models import Max

from connectors.base import BadRow, BaseConnector
from connectors.exceptions import PermanentSourceError
from imports.models import ImportRun, Project, Record

logger = logging.getLogger(__name__)

KEY_SEPARATOR = "\x1f"
STAGE_TABLE = re.compile(r"^import_stage_(\d+)(?:_(\d+))?$")
REJECTED_SAMPLES = 10
PROGRESS_SECONDS = 1.0


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


class Stage:
    """A per-run staging table ``(seq, key, data, checksum)``.

    ``data`` is staged as text and parsed to jsonb only for the rows the
    merge writes, so re-importing unchanged data (the common case) costs the
    database no JSON parsing at all; measured on 1,000,000 rows this is
    faster overall than staging jsonb, whose parsing slowed COPY down. The
    table is a real (unlogged) table, not a temporary one, so a retry of a
    run whose load failed can merge it again without extracting.
    """

    def __init__(self, run_id: int, fence: int | None = None, *, table: str = ""):
        # One table per attempt: a paused attempt that wakes up can never
        # write into, or drop, the table of the attempt that replaced it.
        suffix = f"_{int(fence)}" if fence is not None else ""
        self.table = table or f"import_stage_{int(run_id)}{suffix}"
        if not STAGE_TABLE.match(self.table):
            raise ValueError(f"not a staging table name: {self.table!r}")
        self.vendor = connection.vendor
        self._copy = self._copy_context = self._cursor = None
        self.data_sql = "data::jsonb" if self.vendor == "postgresql" else "data"

    def exists(self) -> bool:
        return self.table in connection.introspection.table_names()

    def count(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {self.table}")
            return cursor.fetchone()[0]

    def create(self, *, parse_json: bool = False) -> None:
        """Create the table; ``parse_json`` stages ``data`` as jsonb.

        jsonb staging parses while COPY streams, which pays when the worker
        only relays bytes (the server would otherwise wait); text staging
        pays when the worker's Python is the bottleneck.
        """
        postgres = self.vendor == "postgresql"
        unlogged = "UNLOGGED " if postgres else ""
        data_type = "jsonb" if postgres and parse_json else "text"
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")
            cursor.execute(
                f"CREATE {unlogged}TABLE {self.table} ("
                "seq bigint NOT NULL, key text NOT NULL, "
                f"data {data_type} NOT NULL, checksum text NOT NULL)"
            )

    def drop(self) -> None:
        self.flush(exc=RuntimeError("staging abandoned"))
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.table}")

    def write(self, rows: list[tuple[int, str, str, str]]) -> None:
        """Stage rows. On PostgreSQL one COPY stays open across calls, so
        the server ingests while the worker reads on; ``flush()`` ends it.
        """
        if not rows:
            return
        if self.vendor != "postgresql":
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {self.table} (seq, key, data, checksum) "
                    "VALUES (%s, %s, %s, %s)",
                    rows,
                )
            return
        if self._copy is None:
            self.write_rows_open()
        write_row = self._copy.write_row
        for row in rows:
            write_row(row)

    def write_lines(self, lines: list[bytes]) -> None:
        """Stage complete lines of COPY text (PostgreSQL only)."""
        if not lines:
            return
        if self._copy is None:
            self.write_rows_open()
        self._copy.write(b"".join(lines))

    def write_rows_open(self) -> None:
        connection.ensure_connection()
        self._cursor = connection.connection.cursor()
        self._copy_context = self._cursor.copy(
            f"COPY {self.table} (seq, key, data, checksum) FROM STDIN"
        )
        self._copy = self._copy_context.__enter__()

    def flush(self, exc: BaseException | None = None) -> None:
        """End the open COPY: commit what was written, or abort on ``exc``."""
        if self._copy is None:
            return
        context, cursor = self._copy_context, self._cursor
        self._copy = self._copy_context = self._cursor = None
        try:
            if exc is None:
                context.__exit__(None, None, None)
            else:
                context.__exit__(type(exc), exc, exc.__traceback__)
        finally:
            cursor.close()

    def seal(self) -> tuple[int, int]:
        """Drop all but the last row of each key and index the keys.

        Returns ``(rows, duplicates)``: how many rows stay staged and how
        many earlier rows with a repeated key were dropped. Idempotent.
        """
        self.flush()
        index = f"{self.table}_key"
        duplicates = 0
        with connection.cursor() as cursor:
            try:
                # Most sources have unique keys: building the unique index
                # is both the check and what the merge joins on.
                with transaction.atomic():
                    cursor.execute(
                        f"CREATE UNIQUE INDEX IF NOT EXISTS {index} "
                        f"ON {self.table} (key)"
                    )
            except IntegrityError:
                if self.vendor == "postgresql":
                    cursor.execute(
                        f"DELETE FROM {self.table} s USING (SELECT key, max(seq) AS "
                        f"last FROM {self.table} GROUP BY key HAVING count(*) > 1) d "
                        f"WHERE s.key = d.key AND s.seq < d.last"
                    )
                else:
                    cursor.execute(
                        f"DELETE FROM {self.table} WHERE seq NOT IN "
                        f"(SELECT max(seq) FROM {self.table} GROUP BY key)"
                    )
                duplicates = cursor.rowcount
                cursor.execute(f"CREATE UNIQUE INDEX {index} ON {self.table} (key)")
            cursor.execute(f"SELECT count(*) FROM {self.table}")
            (rows,) = cursor.fetchone()
        return rows, duplicates

    def merge(self, *, project: Project, run_id: int, replace: bool) -> dict[str, int]:
        """Merge the sealed stage into the project's records; return counts.

        Only new and changed records (by checksum) are written; unchanged
        ones are filtered out by the join before the upsert, so they are
        neither rewritten nor row-locked. Must run inside a transaction.
        """
        self.flush()
        records = Record._meta.db_table
        columns = "(project_id, key, data, checksum, last_run_id)"
        changed = (
            f"SELECT s.key, s.data, s.checksum FROM {self.table} s "
            f"LEFT JOIN {records} r ON r.project_id = %s AND r.key = s.key "
            f"WHERE r.key IS NULL OR r.checksum <> s.checksum"
        )
        upsert_tail = (
            "ON CONFLICT (project_id, key) DO UPDATE SET "
            "data = excluded.data, checksum = excluded.checksum, "
            "last_run_id = excluded.last_run_id"
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {records} WHERE project_id = %s)",
                [project.pk],
            )
            (has_records,) = cursor.fetchone()
            if not has_records:
                # A first import (or one after the records were emptied):
                # nothing to compare with, so a plain insert (the records
                # are locked by the project row lock the caller holds).
                cursor.execute(
                    f"INSERT INTO {records} {columns} "
                    f"SELECT %s, key, {self.data_sql}, checksum, %s FROM {self.table}",
                    [project.pk, run_id],
                )
                inserted, updated = cursor.rowcount, 0
            elif self.vendor == "postgresql":
                # Statistics for the join's plan; a first import needs none.
                cursor.execute(f"ANALYZE {self.table}")
                cursor.execute(
                    f"WITH changed AS ({changed}), up AS ("
                    f"INSERT INTO {records} {columns} "
                    f"SELECT %s, key, {self.data_sql}, checksum, %s FROM changed "
                    f"{upsert_tail} RETURNING (xmax = 0) AS inserted) "
                    f"SELECT count(*) FILTER (WHERE inserted), "
                    f"count(*) FILTER (WHERE NOT inserted) FROM up",
                    [project.pk, project.pk, run_id],
                )
                inserted, updated = cursor.fetchone()
            else:
                cursor.execute(
                    f"SELECT sum(CASE WHEN r.key IS NULL THEN 1 ELSE 0 END), "
                    f"sum(CASE WHEN r.key IS NULL THEN 0 ELSE 1 END) "
                    f"FROM {self.table} s LEFT JOIN {records} r "
                    f"ON r.project_id = %s AND r.key = s.key "
                    f"WHERE r.key IS NULL OR r.checksum <> s.checksum",
                    [project.pk],
                )
                inserted, updated = (v or 0 for v in cursor.fetchone())
                # "WHERE true" keeps SQLite from reading ON CONFLICT as a
                # join constraint of the SELECT.
                cursor.execute(
                    f"INSERT INTO {records} {columns} "
                    f"SELECT %s, c.key, c.data, c.checksum, %s "
                    f"FROM ({changed}) c WHERE true {upsert_tail}",
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
            "rows_deleted": int(deleted),
        }


def _key_builder(key_fields: list[str]) -> Callable[[dict], str | None]:
    """A function giving a record's key: its key fields' values joined.

    It returns None when a key field is missing or empty.
    """
    if len(key_fields) == 1:
        (name,) = key_fields

        def single(row: dict) -> str | None:
            value = row.get(name)
            return None if value is None or value == "" else str(value)

        return single

    def joined(row: dict) -> str | None:
        values = [row.get(name) for name in key_fields]
        if None in values or "" in values:
            return None
        try:
            return KEY_SEPARATOR.join(values)
        except TypeError:  # non-text values, from JSON or SQL sources
            return KEY_SEPARATOR.join(map(str, values))

    return joined


class _Extraction:
    """One pass over a connector into a stage, with the bad-row policy."""

    def __init__(self, *, project: Project, stage: Stage):
        self.stage = stage
        self.key_fields = list(project.key_fields or [])
        self.row_key = _key_builder(self.key_fields) if self.key_fields else None
        self.skip_bad = project.on_bad_row == Project.OnBadRow.SKIP
        self.result = LoadResult()

    def reject(self, number: int, reason: str) -> None:
        if not self.skip_bad:
            raise BadRowError(f"Row {number}: {reason}.")
        result = self.result
        result.rows_rejected += 1
        if len(result.rejected_samples) < REJECTED_SAMPLES:
            result.rejected_samples.append({"row": number, "reason": reason})

    def stage_rows(self, batch: list, seq: int) -> int:
        """Stage one batch; return the last row number it used."""
        rows = []
        append = rows.append
        row_key = self.row_key
        # The hot loop of every import: one pass per row, nothing avoidable.
        # A record's payload is canonical JSON (sorted keys, UTF-8) and its
        # checksum the payload's MD5, so an unchanged row is never rewritten.
        dumps, option, md5 = orjson.dumps, orjson.OPT_SORT_KEYS, hashlib.md5
        for item in batch:
            seq += 1
            if type(item) is not dict:
                if isinstance(item, BadRow):
                    self.reject(item.number, item.reason)
                    continue
            try:
                payload = dumps(item, option=option, default=str)
            except (TypeError, orjson.JSONEncodeError) as exc:
                self.reject(seq, f"cannot be stored as JSON ({exc})")
                continue
            checksum = md5(payload, usedforsecurity=False).hexdigest()
            if row_key is None:
                key = checksum
            else:
                key = row_key(item)
                if key is None:
                    missing = [f for f in self.key_fields if item.get(f) in (None, "")]
                    self.reject(seq, f"missing key field(s) {', '.join(missing)}")
                    continue
            append((seq, key, payload.decode(), checksum))
        self.stage.write(rows)
        return seq

    def stage_lines(self, lines: list[bytes]) -> int:
        """Stage lines the source serialised; return the last row number."""
        if any(b"\t\\N\t" in line for line in lines):
            kept = []
            for line in lines:
                if b"\t\\N\t" in line:
                    seq, _, data, _ = line.split(b"\t")
                    row = orjson.loads(data.replace(b"\\\\", b"\\"))
                    missing = [f for f in self.key_fields if row.get(f) in (None, "")]
                    self.reject(int(seq), f"missing key field(s) {', '.join(missing)}")
                else:
                    kept.append(line)
            lines = kept
        self.stage.write_lines(lines)
        return int(lines[-1].split(b"\t", 1)[0]) if lines else 0


def import_run_extract(
    *,
    run: ImportRun,
    connector: BaseConnector,
    stage: Stage,
    batch_size: int,
    should_stop: Callable[[], bool],
    on_progress: Callable[[LoadResult], None],
) -> LoadResult:
    """Create the staging table, stream the source into it and seal it.

    Bad rows fail the run or are counted and sampled, by project policy.
    Without key fields a record's identity is its content (replace mode).
    ``on_progress`` is called about once a second.

    Raises:
        BadRowError: a bad row, when the project fails on bad rows.
        ImportInterrupted: ``should_stop()`` turned true between batches.
    """
    extraction = _Extraction(project=run.project, stage=stage)
    result = extraction.result
    seq = 0
    last_progress = time.monotonic()
    relay = connector.supports_stage_lines and stage.vendor == "postgresql"
    stage.create(parse_json=relay)
    try:
        with connector:
            if relay:
                batches = connector.iter_stage_lines(
                    key_fields=extraction.key_fields, batch_size=batch_size
                )
            else:
                batches = connector.iter_batches(batch_size=batch_size)
            for batch in batches:
                if should_stop():
                    raise ImportInterrupted
                if relay:
                    seq += len(batch)
                    extraction.stage_lines(batch)
                else:
                    seq = extraction.stage_rows(batch, seq)
                result.rows_read = seq
                if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                    # End the COPY so the progress update can use the
                    # connection; once a second costs little.
                    stage.flush()
                    on_progress(result)
                    last_progress = time.monotonic()
    except BaseException as exc:
        stage.flush(exc)
        raise
    stage.flush()
    on_progress(result)
    _, result.duplicates = stage.seal()
    return result


def import_run_load(*, run: ImportRun, stage: Stage, result: LoadResult) -> LoadResult:
    """Merge the staged rows, if the run is still running and its fence newest.

    Must be called inside the transaction that also records the run's end,
    so that a cancel or a reaper either lands before the load (and nothing
    is written) or finds the run finished.

    Raises:
        ImportInterrupted: the run was cancelled or reaped meanwhile.
        FenceRejected: a newer run of the project holds a larger fence.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("import_run_load() must run inside a transaction")
    project = run.project
    # Lock order, everywhere: the run row, then the project row.
    status = (
        ImportRun.objects.select_for_update()
        .filter(pk=run.pk)
        .values_list("status", flat=True)
        .first()
    )
    if status != ImportRun.Status.RUNNING:
        raise ImportInterrupted(f"run {run.pk} is {status}")
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
    for name, value in counts.items():
        setattr(result, name, value)
    staged = result.rows_read - result.rows_rejected - result.duplicates
    result.rows_unchanged = staged - result.rows_inserted - result.rows_updated
    return result
