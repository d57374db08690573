"""The extraction of a typed load: a source's fields into a text stage.

Where the source is already delimited text and the stage is in PostgreSQL
(a CSV file, an SQL source's ``COPY ... TO``), its bytes are relayed into
the stage by COPY on a connection of their own, and PostgreSQL parses
them: the worker's Python never touches a row. A CSV file that COPY cannot
read (a row with too many fields, a blank line, bytes that are not valid
in its encoding) is read again row by row, so that the project's bad-row
policy and the row's place in the file decide, exactly as before.

Every other source is read row by row: each record's values become text
(``column_types.as_text``) in the stage, its fields columns in the order
they first appear; the types are inferred from a sample of the values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg

from connectors.base import BadRow, BaseConnector, CopySource
from connectors.exceptions import PermanentSourceError
from imports import column_types, tracing
from imports.cursors import cursor_config, cursor_start
from imports.models import ImportRun, Project

from .results import (
    REJECTED_SAMPLES,
    BadRowError,
    ImportInterrupted,
    LoadResult,
    row_label,
)
from .table_copy import copy_into, skip_bytes
from .table_schema import SchemaViolation
from .table_stage import TableStage

SAMPLE_ROWS = 1000
PROGRESS_SECONDS = 1.0


class _CopyUnreadable(Exception):
    """COPY could not read the source's text; read it row by row instead."""


def table_extract(
    *,
    run: ImportRun,
    connector: BaseConnector,
    stage: TableStage,
    batch_size: int,
    should_stop: Callable[[], bool],
    on_progress: Callable[[LoadResult], None],
    on_checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
) -> LoadResult:
    """Stage the source as text; the result names its fields and types.

    ``resume``: a checkpoint an earlier attempt recorded (its stage adopted
    by ``stage``): the extraction goes on from there.

    Raises:
        BadRowError: a bad row, when the project fails on bad rows.
        ImportInterrupted: ``should_stop()`` turned true between batches.
    """
    project = run.project
    stage.target.ensure()
    markers = set(project.null_markers or [])
    config = cursor_config(project.source)
    stored = None
    if config is not None:
        state = stage.target.state()
        stored = state.cursor if state else None
        connector.cursor_value = cursor_start(config, stored, full=run.full_refresh)
    result = None
    with connector:
        if resume is not None and resume.get("path") == "copy":
            if resume.get("fingerprint") != connector.fingerprint():
                resume = None  # the file changed since: start over
        fingerprint = connector.fingerprint() if config is not None else None
        if resume is not None:
            fingerprint = resume.get("fingerprint", fingerprint)
        elif (
            fingerprint
            and not run.full_refresh
            and stored
            and stored.get("fingerprint") == fingerprint
        ):
            stage.create(0)
            return LoadResult(
                source_unchanged=True,
                cursor_before=stored,
                fingerprint=fingerprint,
                incremental=True,
            )
        copying = resume is None or resume.get("path") == "copy"
        if copying and stage.postgres and connector.supports_copy:
            source = connector.copy_source()
            if source is not None:
                try:
                    with tracing.span("importhub.stage", path="copy") as span:
                        result = _copy(
                            stage,
                            source,
                            should_stop,
                            on_progress,
                            markers,
                            on_checkpoint=on_checkpoint
                            and _with(on_checkpoint, connector.fingerprint()),
                            resume=resume,
                        )
                        tracing.span_set(span, rows_staged=result.rows_read)
                except _CopyUnreadable:
                    connector.close()
                    connector.open()
        if result is None:
            with tracing.span("importhub.stage", path="rows") as span:
                result = _rows(
                    project,
                    connector,
                    stage,
                    batch_size,
                    should_stop,
                    on_progress,
                    on_checkpoint=on_checkpoint and _with(on_checkpoint, fingerprint),
                    resume=resume if resume and resume.get("path") != "copy" else None,
                )
                tracing.span_set(span, rows_staged=result.rows_read)
    if config is not None:
        result.cursor_before = stored
        result.incremental = not run.full_refresh
        result.fingerprint = fingerprint
    _reject_missing_keys(project, stage, result, cursor=config)
    on_progress(result)
    return result


def _copy(
    stage: TableStage,
    source: CopySource,
    should_stop,
    on_progress,
    markers,
    *,
    on_checkpoint=None,
    resume: dict | None = None,
):
    """COPY the source's bytes into the stage (``table_copy``); a CSV source
    in segments, checkpointed, and resumed from ``resume`` when given."""
    result = LoadResult()
    offset = rows = 0
    if resume is not None:
        offset, rows = resume["position"]["offset"], resume["seq"]
        stage.seq_restart(rows + 1)
    else:
        stage.create(len(source.columns))
    last_progress = time.monotonic()
    result.rows_read = rows

    def chunks() -> Iterator[bytes]:
        nonlocal last_progress
        for chunk in skip_bytes(source.chunks, offset):
            if should_stop():
                raise ImportInterrupted
            # An estimate while streaming (a quoted field may hold a line
            # break); the stage's count is exact at the end.
            result.rows_read += chunk.count(b"\n")
            yield chunk
            if time.monotonic() - last_progress >= PROGRESS_SECONDS:
                on_progress(result)
                last_progress = time.monotonic()

    def checkpoint(staged: int, reached: int) -> None:
        on_checkpoint(
            {
                "path": "copy",
                "stage": stage.table,
                "seq": staged,
                "columns": list(source.columns),
                "position": {"offset": reached},
            }
        )

    csv_source = source.format == "csv"
    try:
        copied = copy_into(
            stage,
            stage.copy_sql(source.format, source.options),
            chunks(),
            quote=source.options.get("quotechar", '"').encode() if csv_source else None,
            offset=offset,
            rows=rows,
            on_checkpoint=checkpoint if on_checkpoint and csv_source else None,
        )
    except (
        psycopg.errors.DataError,
        psycopg.errors.BadCopyFileFormat,
        UnicodeDecodeError,
    ) as exc:
        if csv_source:
            raise _CopyUnreadable from exc
        raise PermanentSourceError(f"The source's rows could not be staged: {exc}")
    # The identity numbered them 1..copied: no scan of the stage to count.
    result.rows_read = copied
    result.columns = list(source.columns)
    sample = stage.sample(SAMPLE_ROWS)
    result.types = [
        known
        or column_types.infer_column(
            (row[index] for row in sample if row[index] not in markers),
            text_is_untyped=True,
        )
        for index, known in enumerate(source.types)
    ]
    return result


def _rows(
    project: Project,
    connector,
    stage,
    batch_size,
    should_stop,
    on_progress,
    on_checkpoint=None,
    resume: dict | None = None,
):
    """Read the source row by row into the stage's text columns.

    A connector that reports positions (``supports_resume``: pages of an
    API) is checkpointed after each page: the rows are committed to the
    stage and ``on_checkpoint`` records where the source goes on, so that
    ``resume`` (that checkpoint) continues from there with the rows
    already staged.
    """
    result = LoadResult()
    skip_bad = project.on_bad_row == Project.OnBadRow.SKIP
    untyped = getattr(connector, "values_are_text", False)
    markers = set(project.null_markers or [])
    names: list[str] = list(resume["columns"]) if resume else []
    index: dict[str, int] = {name: i for i, name in enumerate(names)}
    known = index.keys()
    earlier: list = list(resume["types"]) if resume else []
    samples: list[list] = [[] for _ in names]
    seq = int(resume["seq"]) if resume else 0
    if resume:
        result.rows_rejected = resume.get("rejected", 0)
        result.rejected_samples = list(resume.get("samples", []))
    else:
        stage.create(0)
    last_progress = time.monotonic()
    as_text = column_types.as_text

    def types() -> list:
        found = []
        for i, values in enumerate(samples):
            inferred = (
                column_types.infer_column(
                    (v for v in values if not (isinstance(v, str) and v in markers)),
                    text_is_untyped=untyped,
                )
                if values
                else None
            )
            before = earlier[i] if i < len(earlier) else None
            found.append(column_types.widen(before, inferred))
        return found

    if getattr(connector, "supports_resume", False) and on_checkpoint is not None:
        batches = connector.iter_positions(start=resume and resume.get("position"))
    else:
        batches = ((b, None) for b in connector.iter_batches(batch_size=batch_size))
    for batch, position in batches:
        if should_stop():
            raise ImportInterrupted
        rows = []
        for item in batch:
            seq += 1
            if type(item) is not dict:
                if isinstance(item, BadRow):
                    line, reason = getattr(item, "line", None), item.reason
                else:
                    line, reason = None, f"record {seq} is not a JSON object"
                if not skip_bad:
                    raise BadRowError(f"{row_label(seq, line)}: {reason}.")
                result.rejected_add([seq], reason, line=line)
                continue
            if not item.keys() <= known:
                new = [k for k in item if k not in index]
                if new:
                    stage.write_rows(rows)
                    rows = []
                    for name in new:
                        index[name] = len(names)
                        names.append(str(name))
                        samples.append([])
                    stage.widen(len(names))
            row = [seq]
            get = item.get
            for name, column in zip(names, samples, strict=True):
                value = get(name)
                row.append(as_text(value))
                if value is not None and len(column) < SAMPLE_ROWS:
                    column.append(value)
            rows.append(row)
        stage.write_rows(rows)
        result.rows_read = seq
        if position is not None:
            stage.flush()  # the page's rows are committed with the checkpoint
            on_checkpoint(
                {
                    "stage": stage.table,
                    "seq": seq,
                    "columns": names,
                    "types": types(),
                    "position": position,
                    "rejected": result.rows_rejected,
                    "samples": result.rejected_samples,
                }
            )
        if time.monotonic() - last_progress >= PROGRESS_SECONDS:
            stage.flush()
            on_progress(result)
            last_progress = time.monotonic()
    stage.flush()
    result.rows_read = seq
    result.columns = names
    result.types = [t or column_types.TEXT for t in types()]
    return result


def _with(on_checkpoint, fingerprint):
    def record(checkpoint: dict) -> None:
        on_checkpoint({**checkpoint, "fingerprint": fingerprint})

    return record


def _reject_missing_keys(
    project: Project, stage: TableStage, result: LoadResult, *, cursor=None
):
    """Reject the rows missing a key field (or the cursor's field)."""
    keys = list(project.key_fields or [])
    if not result.columns:
        return
    if any(name not in result.columns for name in keys):
        return  # the load's schema check names the missing key field
    if cursor is not None and cursor.field:
        if cursor.field not in result.columns:
            raise SchemaViolation(
                f"The cursor's field `{cursor.field}` is not among the source's "
                f"fields ({', '.join(result.columns[:20])})."
            )
        if cursor.field not in keys:
            keys.append(cursor.field)
    present = [(name, f"c{result.columns.index(name) + 1}") for name in keys]
    count, found = stage.reject_missing_keys(
        present, list(project.null_markers or []), samples=REJECTED_SAMPLES
    )
    if not count:
        return
    cursor_field = cursor.field if cursor is not None else None

    def reason(fields: list[str]) -> str:
        parts = []
        if missing_keys := [
            f for f in fields if f != cursor_field or f in (project.key_fields or [])
        ]:
            parts.append(f"missing key field(s) {', '.join(missing_keys)}")
        if cursor_field in fields and cursor_field not in (project.key_fields or []):
            parts.append(f"missing cursor field {cursor_field}")
        return "; ".join(parts)

    if project.on_bad_row != Project.OnBadRow.SKIP:
        row, fields = found[0]
        raise BadRowError(f"{row_label(row)}: {reason(fields)}.")
    result.rows_rejected += count
    for row, fields in found:
        result.rejected_add([row], reason(fields), count=0)
    result.rejected_samples.sort(key=lambda sample: sample["row"])
