"""Running an import on a worker: claim → run → settle.

``import_run_execute`` is what the Celery task calls. It claims the run
(``claim.py``: lock, slot, the database's slot limit, START), runs the
attempt here (extract, or resume from what an earlier attempt staged, then
load and SUCCEED in one transaction), and settles whatever else happened
(``settle.py``: the outcome table). While it runs, a renewer extends the
lock and the slot every third of the lease and moves the heartbeat; a lost
lock, a cancel or a reap stops the attempt at the next batch boundary.
"""

import logging

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.utils import timezone

from connectors.messages import Message, gettext_noop
from connectors.registry import get_connector
from imports import tracing
from imports.loading import (
    ImportInterrupted,
    LoadResult,
    TableStage,
    change_text,
    import_run_extract,
    import_run_load,
    stage_for,
)
from imports.locks import connector_slots, run_cancel_requested
from imports.logging import run_log_context
from imports.models import ImportRun, ImportRunEvent
from imports.run_log import run_log_flush
from imports.services.attempt import WORKER, Attempt, Heartbeat, with_database
from imports.services.claim import run_claim, run_is_startable
from imports.services.events import import_run_event_record
from imports.services.progress import progress_fields
from imports.services.selectors import run_for_execution
from imports.services.settle import attempt_release, attempt_settle
from imports.services.transitions import SUCCEED
from locking import LockingUnavailable, Renewer

logger = logging.getLogger(__name__)


def import_run_execute(*, run_id: int) -> ImportRun | None:
    """Run an attempt of an import that the guard accepted.

    Returns the run as this attempt left it, or None when there was nothing
    to do (an unknown id, a message for a run that is not startable, or a
    run that waits for a slot again).
    """
    with tracing.span("importhub.attempt", run_id=run_id) as span:
        run = _execute(run_id, span)
        tracing.span_set(span, status=run.status if run is not None else None)
        return run


def _execute(run_id: int, span) -> ImportRun | None:
    run = run_for_execution(run_id=run_id)
    if run is None:
        logger.warning("message for unknown run %s ignored", run_id)
        return None
    tracing.span_set(
        span,
        project_id=run.project_id,
        connector_id=run.project.connector_id,
        attempt=run.attempt,
    )
    if not run_is_startable(run):
        return None
    # The lines logged on the way are the run's log (``imports.run_log``);
    # what the handler remembered of this run id before is forgotten first.
    run_log_flush(run.pk)
    with run_log_context(run):
        try:
            return _attempt(run, span)
        finally:
            run_log_flush(run.pk)


def _attempt(run: ImportRun, span) -> ImportRun | None:
    with tracing.span("importhub.lock", run_id=run.pk) as claim:
        attempt = run_claim(run=run)
        tracing.span_set(claim, claimed=attempt is not None)
    if attempt is None:
        return run if run.status in ImportRun.FINAL_STATUSES else None
    tracing.span_set(span, attempt=run.attempt, fence=attempt.fence)
    heartbeat = Heartbeat(attempt)
    renewer = Renewer(
        lock=attempt.lock,
        lease=(connector_slots(run.project.connector), run.lock_token),
        on_renewed=heartbeat,
    ).start()
    logger.info(
        "attempt %s of run %s started (project %s, fence %s)",
        run.attempt,
        run.pk,
        run.project_id,
        attempt.fence,
    )
    try:
        _attempt_run(attempt, renewer=renewer, heartbeat=heartbeat, span=span)
    finally:
        renewer.stop()
        close_old_connections()
        attempt_release(attempt)
    return run


def _attempt_run(
    attempt: Attempt, *, renewer: Renewer, heartbeat: Heartbeat, span=None
) -> None:
    """Extract (or resume) and load; any failure is settled by the table."""
    run = attempt.run
    stage = stage_for(run.project, run.pk, attempt.fence)
    keep_stage = False

    def should_stop() -> bool:
        # Checked between batches: a lost lock, or a cancel (seen by the
        # heartbeat, or flagged in Redis by the cancel service at once).
        if renewer.lost.is_set() or heartbeat.stopped:
            return True
        try:
            return run_cancel_requested(run.pk)
        except LockingUnavailable:
            # A Redis blip is no reason to stop: the renewer decides whether
            # the lock is lost, and the heartbeat sees a cancel in the
            # database within a third of the lease.
            return False

    try:
        with tracing.span("importhub.extract", run_id=run.pk) as extracting:
            result, stage = _extract_or_resume(attempt, stage, should_stop)
            tracing.span_set(
                extracting,
                rows_read=result.rows_read,
                rows_rejected=result.rows_rejected,
                duplicates=result.duplicates,
            )
        if should_stop():
            raise ImportInterrupted
        # From here on a transient failure keeps the staged data: the next
        # attempt loads it without extracting again.
        keep_stage = True

        def finish(changes: list[dict]) -> None:
            # The success is recorded in the load's own transaction: data and
            # status commit together or not at all.
            if result.rejected_at_load:
                import_run_event_record(
                    run=run,
                    kind=ImportRunEvent.Kind.REJECTED_ROWS,
                    actor=WORKER,
                    message=Message(
                        gettext_noop(
                            "%(count)s rows did not fit the table's schema and "
                            "were rejected; the first are kept here."
                        ),
                        count=result.rejected_at_load,
                    ),
                    data={"samples": result.rejected_samples},
                )
            for warning in result.warnings:
                import_run_event_record(
                    run=run,
                    kind=ImportRunEvent.Kind.WARNING,
                    actor=WORKER,
                    message=warning,
                )
            if changes:
                import_run_event_record(
                    run=run,
                    kind=ImportRunEvent.Kind.SCHEMA_CHANGED,
                    actor=WORKER,
                    message="; ".join(map(change_text, changes)),
                    data={"changes": changes},
                )
            SUCCEED.apply(
                run,
                guards=attempt.guards,
                actor=WORKER,
                message=_success_message(result),
                data={
                    "duplicates": result.duplicates,
                    **(
                        {
                            "cursor_before": result.cursor_before,
                            "cursor_after": result.cursor_after,
                        }
                        if result.cursor_before or result.cursor_after
                        else {}
                    ),
                },
                error_class="",
                error_message="",
                cursor_before=result.cursor_before,
                cursor_after=result.cursor_after,
                **result.counts(),
            )

        with (
            tracing.span("importhub.merge", run_id=run.pk) as merging,
            transaction.atomic(),
        ):
            import_run_load(run=run, stage=stage, result=result, finish=finish)
            tracing.span_set(merging, **result.counts())
        keep_stage = False
        logger.info("run %s succeeded: %s", run.pk, _success_message(result))
    except Exception as exc:
        tracing.span_error(span, exc)
        logger.warning(
            "attempt %s of run %s stopped: %s: %s",
            run.attempt,
            run.pk,
            type(exc).__name__,
            exc,
        )
        # Only a failure after the extraction, or after a checkpoint of it,
        # can keep the staged data.
        kept = attempt_settle(attempt, exc, renewer=renewer)
        keep_stage = (kept and keep_stage) or _checkpointed(run, stage)
    finally:
        # A superseded attempt (reaped while paused) leaves the tables alone:
        # its successor may be loading from them; the sweep drops what is
        # left once the run is over.
        if not keep_stage and attempt.is_current():
            try:
                with_database(stage.drop, attempts=5)
            except Exception:
                logger.exception("could not drop the staging table of run %s", run.pk)


def _extract_or_resume(attempt: Attempt, stage, should_stop):
    """Extract the source, or reuse what an earlier attempt staged."""
    run = attempt.run
    extracted = attempt.last_extraction()
    data = extracted.data if extracted else {}
    staged = data.get("rows_read", 0) - data.get("rows_rejected", 0)
    staged -= data.get("duplicates", 0)
    previous = (
        stage_for(run.project, run.pk, table=data["stage"])
        if data.get("stage")
        else None
    )
    # An unlogged stage is emptied by a database crash: resume only from a
    # stage that still holds every row it was sealed with.
    if previous and previous.exists() and previous.count() == staged:
        tracing.span_set(tracing.span_current(), resumed=True)
        result = LoadResult(
            rows_read=data.get("rows_read", 0),
            rows_rejected=data.get("rows_rejected", 0),
            duplicates=data.get("duplicates", 0),
            columns=data.get("columns", []),
            types=data.get("types", []),
            cursor_before=data.get("cursor_before"),
            incremental=data.get("incremental", False),
            source_unchanged=data.get("source_unchanged", False),
            fingerprint=data.get("fingerprint"),
        )
        attempt.record(
            ImportRunEvent.Kind.RESUMED,
            message=Message(
                gettext_noop(
                    "The source was already extracted by attempt %(attempt)s; "
                    "loading the staged data without extracting again."
                ),
                attempt=data.get("attempt", "?"),
            ),
            data=data,
        )
        return result, previous  # adopted: this attempt drops it when done
    attempt.update(extracted_at=None)
    resume = _checkpoint_adopt(attempt, stage)
    connector = get_connector(run.project)
    result = import_run_extract(
        run=run,
        connector=connector,
        stage=stage,
        batch_size=settings.IMPORTHUB_BATCH_SIZE,
        should_stop=should_stop,
        # The pipeline reports about once a second.
        on_progress=lambda progress: attempt.update(
            **progress_fields(connector, rows_read=progress.rows_read)
        ),
        on_checkpoint=lambda checkpoint: attempt.update(checkpoint=checkpoint),
        resume=resume,
    )
    run.extracted_at = timezone.now()
    logger.info("run %s extracted %s rows", run.pk, result.rows_read)
    attempt.update(
        extracted_at=run.extracted_at,
        checkpoint=None,
        **progress_fields(connector, rows_read=result.rows_read, finished=True),
    )
    attempt.record(
        ImportRunEvent.Kind.EXTRACTED,
        data={
            "rows_read": result.rows_read,
            "rows_rejected": result.rows_rejected,
            "duplicates": result.duplicates,
            "attempt": run.attempt,
            "stage": stage.table,
            **_typed_extraction(result),
        },
    )
    if result.rejected_samples:
        attempt.record(
            ImportRunEvent.Kind.REJECTED_ROWS,
            message=Message(
                gettext_noop("%(count)s rows were rejected; the first are kept here."),
                count=result.rows_rejected,
            ),
            data={"samples": result.rejected_samples},
        )
    return result, stage


def _checkpointed(run: ImportRun, stage) -> bool:
    """Whether the run will be retried from a checkpoint in ``stage``."""
    try:
        return ImportRun.objects.filter(
            pk=run.pk, status=ImportRun.Status.RETRYING, checkpoint__stage=stage.table
        ).exists()
    except DatabaseError:
        return False


def _checkpoint_adopt(attempt: Attempt, stage) -> dict | None:
    """The checkpoint an earlier attempt of the run left, with its stage
    taken over by ``stage``; None to extract from the start."""
    checkpoint = (
        ImportRun.objects.filter(pk=attempt.run.pk)
        .values_list("checkpoint", flat=True)
        .first()
    )
    if not checkpoint or not isinstance(stage, TableStage):
        return None
    if not stage.adopt(checkpoint["stage"], seq=checkpoint["seq"]):
        attempt.update(checkpoint=None)
        return None
    attempt.record(
        ImportRunEvent.Kind.RESUMED,
        message=Message(
            gettext_noop(
                "Going on from the checkpoint of an earlier attempt: %(rows)s "
                "rows were staged; the source is read again from there."
            ),
            rows=checkpoint["seq"],
        ),
        data={"checkpoint": {k: checkpoint[k] for k in ("seq", "position")}},
    )
    return checkpoint


def _typed_extraction(result: LoadResult) -> dict:
    """What a load-only retry of a typed load needs to know of its stage."""
    found = {}
    if result.columns:
        found.update(columns=result.columns, types=result.types)
    if result.cursor_before or result.incremental or result.fingerprint:
        found.update(
            cursor_before=result.cursor_before,
            incremental=result.incremental,
            fingerprint=result.fingerprint,
        )
    if result.source_unchanged:
        found["source_unchanged"] = True
    return found


def _success_message(result: LoadResult) -> Message:
    if result.source_unchanged:
        return Message(
            gettext_noop(
                "The source has not changed since the last successful import; "
                "nothing was read."
            )
        )
    return Message(
        gettext_noop(
            "%(read)s read, %(inserted)s inserted, %(updated)s updated, "
            "%(unchanged)s unchanged, %(deleted)s deleted, %(rejected)s rejected, "
            "%(duplicates)s duplicates."
        ),
        read=result.rows_read,
        inserted=result.rows_inserted,
        updated=result.rows_updated,
        unchanged=result.rows_unchanged,
        deleted=result.rows_deleted,
        rejected=result.rows_rejected,
        duplicates=result.duplicates,
    )
