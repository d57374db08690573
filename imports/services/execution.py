"""Running an import on a worker: the run's side of the lock and its life.

Timeline of a run on a worker, and what each check protects against::

    t0  message arrives   run must still be queued: a redelivered or stale
                          message finds it running or finished and stops
    t1  lock re-taken     with the run's own token; a new fencing token is
                          issued and recorded, so any older writer is fenced
    t2  running           a renewer extends the lock every third of the
                          lease and moves heartbeat_at; if it finds the lock
                          taken by another owner, the run stops at the next
                          batch ("lock lost")
    t3  load commits      only if the run's fence is still the project's
                          newest, checked inside the load transaction
    t4  finished          final status, counts, lock released by its owner
"""

import logging

from django.conf import settings
from django.db import close_old_connections, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from connectors.exceptions import SourceError
from connectors.registry import get_connector
from imports.locks import project_lock, run_cancel_requested
from imports.models import ImportRun, ImportRunEvent
from imports.pipeline import (
    FenceRejected,
    ImportInterrupted,
    LoadResult,
    Stage,
    import_run_extract,
    import_run_load,
)
from imports.services.events import import_run_event_record
from imports.services.runs import project_fence_floor
from locking import LockingUnavailable, Renewer

logger = logging.getLogger(__name__)

STARTABLE_STATUSES = (
    ImportRun.Status.QUEUED,
    ImportRun.Status.WAITING,
    ImportRun.Status.RETRYING,
)
# How long a starting run waits for its lock to be handed over (a guard
# request that lost the database race releases it within milliseconds).
LOCK_HANDOVER_SECONDS = 5.0


def _run_finish(
    *,
    run: ImportRun,
    status: str,
    event_kind: str,
    message: str = "",
    error_class: str = "",
    counts: dict[str, int] | None = None,
    data: dict | None = None,
) -> bool:
    """Move a running run to a final status; False if it was not running.

    The update is conditional on the status, so a cancel that landed first
    is never overwritten.
    """
    fields = {
        "status": status,
        "finished_at": timezone.now(),
        "error_class": error_class,
        "error_message": message if error_class else "",
        **(counts or {}),
    }
    changed = ImportRun.objects.filter(
        pk=run.pk, status=ImportRun.Status.RUNNING
    ).update(**fields)
    if changed:
        for name, value in fields.items():
            setattr(run, name, value)
        import_run_event_record(
            run=run, kind=event_kind, message=message, actor="worker", data=data
        )
    return bool(changed)


class _Heartbeat:
    """Called by the renewer's thread after each renewal of the lease."""

    def __init__(self, run_id: int):
        self.run_id = run_id
        self.stopped = False

    def __call__(self) -> None:
        try:
            alive = ImportRun.objects.filter(
                pk=self.run_id, status=ImportRun.Status.RUNNING
            ).update(heartbeat_at=timezone.now())
            if not alive:
                # Cancelled (or reaped) from outside: stop at the next batch.
                self.stopped = True
        except Exception:
            logger.exception("heartbeat of run %s failed", self.run_id)
        finally:
            # The renewer's thread must not keep a connection per run.
            connections.close_all()


def import_run_execute(*, run_id: int) -> ImportRun | None:
    """Run an import that the guard accepted.

    Returns the run in its final state, or None when there is nothing to do
    (an unknown id, or a message for a run that is no longer startable).
    """
    try:
        run = ImportRun.objects.select_related("project__connector").get(pk=run_id)
    except ImportRun.DoesNotExist:
        logger.warning("message for unknown run %s ignored", run_id)
        return None
    if run.status not in STARTABLE_STATUSES:
        logger.info("stale message for run %s (%s) ignored", run.pk, run.status)
        if run.status not in ImportRun.FINAL_STATUSES:
            import_run_event_record(
                run=run,
                kind=ImportRunEvent.Kind.STALE_MESSAGE,
                actor="worker",
                message=_("A second message for this run was ignored."),
            )
        return None

    lock = project_lock(run.project_id, token=run.lock_token)
    try:
        fence = lock.acquire(
            blocking=True,
            timeout=LOCK_HANDOVER_SECONDS,
            fence_floor=project_fence_floor(project_id=run.project_id),
        )
    except LockingUnavailable as exc:
        fence = None
        reason = _("The lock service (Redis) is unreachable: %(error)s") % {
            "error": exc
        }
    else:
        reason = _("The project lock is held by another owner.")
    previous = run.status
    now = timezone.now()
    if fence is None:
        ImportRun.objects.filter(pk=run.pk, status=previous).update(
            status=ImportRun.Status.FAILED,
            finished_at=now,
            error_class="LockLost",
            error_message=reason,
        )
        import_run_event_record(
            run=run, kind=ImportRunEvent.Kind.LOCK_LOST, actor="worker", message=reason
        )
        run.refresh_from_db()
        return run

    started = ImportRun.objects.filter(pk=run.pk, status=previous).update(
        status=ImportRun.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        fencing_token=fence,
    )
    if not started:
        # Cancelled between the read and the start: the run is over.
        lock.release()
        run.refresh_from_db()
        return None
    run.status, run.started_at, run.heartbeat_at, run.fencing_token = (
        ImportRun.Status.RUNNING,
        now,
        now,
        fence,
    )
    import_run_event_record(
        run=run,
        kind=ImportRunEvent.Kind.STARTED,
        actor="worker",
        data={"fencing_token": fence, "attempt": run.attempt},
    )
    heartbeat = _Heartbeat(run.pk)
    renewer = Renewer(lock=lock, on_renewed=heartbeat).start()
    try:
        _run_pipeline(run=run, renewer=renewer, heartbeat=heartbeat)
    finally:
        renewer.stop()
        try:
            lock.release()
        except LockingUnavailable:
            logger.warning("could not release the lock of run %s", run.pk)
        close_old_connections()
    return run


def _run_pipeline(*, run: ImportRun, renewer: Renewer, heartbeat: _Heartbeat) -> None:
    stage = Stage(run.pk)

    def should_stop() -> bool:
        # Checked between batches: a lost lock, or a cancel (seen by the
        # heartbeat, or flagged in Redis by the cancel service at once).
        return (
            renewer.lost.is_set() or heartbeat.stopped or run_cancel_requested(run.pk)
        )

    def on_progress(result: LoadResult) -> None:
        # The pipeline calls this about once a second.
        ImportRun.objects.filter(pk=run.pk).update(rows_read=result.rows_read)

    try:
        connector = get_connector(run.project)
        result = import_run_extract(
            run=run,
            connector=connector,
            stage=stage,
            batch_size=settings.IMPORTHUB_BATCH_SIZE,
            should_stop=should_stop,
            on_progress=on_progress,
        )
        if should_stop():
            raise ImportInterrupted
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.EXTRACTED,
            actor="worker",
            data={"rows_read": result.rows_read, "rows_rejected": result.rows_rejected},
        )
        if result.rejected_samples:
            import_run_event_record(
                run=run,
                kind=ImportRunEvent.Kind.REJECTED_ROWS,
                actor="worker",
                message=_("%(count)s rows were rejected; the first are kept here.")
                % {"count": result.rows_rejected},
                data={"samples": result.rejected_samples},
            )
        with transaction.atomic():
            import_run_load(run=run, stage=stage, result=result)
            _run_finish(
                run=run,
                status=ImportRun.Status.SUCCEEDED,
                event_kind=ImportRunEvent.Kind.SUCCEEDED,
                message=_success_message(result),
                counts=result.counts(),
                data={"duplicates": result.duplicates},
            )
    except ImportInterrupted:
        if renewer.lost.is_set():
            _run_finish(
                run=run,
                status=ImportRun.Status.FAILED,
                event_kind=ImportRunEvent.Kind.LOCK_LOST,
                error_class="LockLost",
                message=_("The run lost its project lock (%(reason)s) and stopped.")
                % {"reason": renewer.lost_reason or _("taken by another owner")},
            )
        return
    except FenceRejected as exc:
        _run_finish(
            run=run,
            status=ImportRun.Status.FAILED,
            event_kind=ImportRunEvent.Kind.LOCK_LOST,
            error_class="LockLost",
            message=_(
                "A newer run of the project took over; nothing was written "
                "(%(detail)s)."
            )
            % {"detail": exc},
        )
        return
    except SourceError as exc:
        _run_finish(
            run=run,
            status=ImportRun.Status.FAILED,
            event_kind=ImportRunEvent.Kind.FAILED,
            error_class=type(exc).__name__,
            message=str(exc),
        )
        return
    except Exception as exc:
        logger.exception("run %s failed unexpectedly", run.pk)
        _run_finish(
            run=run,
            status=ImportRun.Status.FAILED,
            event_kind=ImportRunEvent.Kind.FAILED,
            error_class=type(exc).__name__,
            message=str(exc) or repr(exc),
        )
        return
    finally:
        try:
            stage.drop()
        except Exception:
            logger.exception("could not drop the staging table of run %s", run.pk)


def _success_message(result: LoadResult) -> str:
    return _(
        "%(read)s read, %(inserted)s inserted, %(updated)s updated, "
        "%(unchanged)s unchanged, %(deleted)s deleted, %(rejected)s rejected."
    ) % {
        "read": result.rows_read,
        "inserted": result.rows_inserted,
        "updated": result.rows_updated,
        "unchanged": result.rows_unchanged,
        "deleted": result.rows_deleted,
        "rejected": result.rows_rejected,
    }
