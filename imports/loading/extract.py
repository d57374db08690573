"""The extraction: stream a connector's batches into a run's stage.

Bad rows fail the run or are counted and sampled, by project policy. A bad
row is named by its data row, counted here for every source (the stage's
``seq``), and by its file line when the connector gives one (``BadRow``
with a ``line``). Without key fields a record's identity is its content
(replace mode).
"""

import hashlib
import time
from collections.abc import Callable

import orjson

from connectors.base import BadRow, BaseConnector
from connectors.lineformat import (
    MISSING_KEY,
    decode_line,
    key_builder,
    line_seq,
    missing_key_fields,
)
from imports import tracing
from imports.models import ImportRun, Project

from .results import BadRowError, ImportInterrupted, LoadResult, row_label
from .stage import Stage
from .table_extract import table_extract
from .table_stage import TableStage

PROGRESS_SECONDS = 1.0


class _Extraction:
    """One pass over a connector into a stage, with the bad-row policy."""

    def __init__(self, *, project: Project, stage: Stage):
        self.stage = stage
        self.key_fields = list(project.key_fields or [])
        self.row_key = key_builder(self.key_fields) if self.key_fields else None
        self.skip_bad = project.on_bad_row == Project.OnBadRow.SKIP
        self.result = LoadResult()

    def reject(self, row: int, reason: str, *, line: int | None = None) -> None:
        """Fail on data row ``row`` (file line ``line``), or count it."""
        if not self.skip_bad:
            raise BadRowError(f"{row_label(row, line)}: {reason}.")
        self.result.rejected_add([row], reason, line=line)

    def reject_missing_key(self, number: int, row: dict) -> None:
        missing = missing_key_fields(row, self.key_fields)
        self.reject(number, f"missing key field(s) {', '.join(missing)}")

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
                    # The data row is this count, whatever the connector
                    # numbers; a file connector adds the line.
                    self.reject(seq, item.reason, line=getattr(item, "line", None))
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
                    self.reject_missing_key(seq, item)
                    continue
            append((seq, key, payload.decode(), checksum))
        self.stage.write(rows)
        return seq

    def stage_lines(self, lines: list[bytes]) -> int:
        """Stage lines the source serialised; return the last row number."""
        if any(MISSING_KEY in line for line in lines):
            kept = []
            for line in lines:
                if MISSING_KEY in line:
                    rejected = decode_line(line)
                    self.reject_missing_key(rejected.seq, orjson.loads(rejected.data))
                else:
                    kept.append(line)
            lines = kept
        self.stage.write_lines(lines)
        return line_seq(lines[-1]) if lines else 0


def import_run_extract(
    *,
    run: ImportRun,
    connector: BaseConnector,
    stage: Stage | TableStage,
    batch_size: int,
    should_stop: Callable[[], bool],
    on_progress: Callable[[LoadResult], None],
    on_checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
) -> LoadResult:
    """Create the staging table, stream the source into it and seal it.

    A connector that serialises its records itself (``supports_stage_lines``)
    is relayed as bytes when the database can take its lines as they are.
    ``on_progress`` is called about once a second.

    Raises:
        BadRowError: a bad row, when the project fails on bad rows.
        ImportInterrupted: ``should_stop()`` turned true between batches.
    """
    if isinstance(stage, TableStage):
        return table_extract(
            run=run,
            connector=connector,
            stage=stage,
            batch_size=batch_size,
            should_stop=should_stop,
            on_progress=on_progress,
            on_checkpoint=on_checkpoint,
            resume=resume,
        )
    extraction = _Extraction(project=run.project, stage=stage)
    result = extraction.result
    relay = connector.supports_stage_lines and stage.dialect.relays_lines
    with tracing.span("importhub.stage", path="lines" if relay else "rows") as span:
        _stream(
            extraction, connector, stage, relay, batch_size, should_stop, on_progress
        )
        _, result.duplicates = stage.seal()
        tracing.span_set(
            span, rows_staged=result.rows_read, duplicates=result.duplicates
        )
    return result


def _stream(extraction, connector, stage, relay, batch_size, should_stop, on_progress):
    """Stream the connector's batches into the stage."""
    result = extraction.result
    seq = 0
    last_progress = time.monotonic()
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
