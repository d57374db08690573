"""Running an import on a worker: the run's side of the lock and its life.

Timeline of one attempt on a worker, and what each check protects against::

    t0  message arrives   the run must still be startable (queued, waiting or
                          retrying): a redelivered or stale message finds it
                          running or finished and does nothing
    t1  lock re-taken     with the attempt's token; a new fencing token is
                          issued and recorded, so any older writer is fenced
    t2  slot taken        the connector's lease (already held when the run
                          was dispatched); none free: the run waits again
    t3  running           a renewer extends lock and lease every third of the
                          lease and moves heartbeat_at; a lost lock, a cancel
                          or a reap stops the run at the next batch
    t4  load commits      in one transaction that checks the run is still
                          running under this fence, merges, and records the
                          success; otherwise nothing is written
    t5  finished          lock and slot given back by their owner; waiting
                          runs of the connector start

Every update the worker makes to its run is conditional on the attempt's
fencing token, so a worker paused past its lease (and reaped, and perhaps
retried elsewhere) can never overwrite what happened after it.
"""

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from django.conf import settings
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from connectors.exceptions import SourceError, TransientSourceError
from connectors.models import Connector
from connectors.registry import get_connector
from imports.loading import (
    FenceRejected,
    ImportInterrupted,
    LoadResult,
    Stage,
    import_run_extract,
    import_run_load,
)
from imports.locks import connector_slots, project_lock, run_cancel_requested
from imports.models import ImportRun, ImportRunEvent
from imports.services.events import import_run_event_record
from imports.services.runs import import_run_dispatch, project_fence_floor
from imports.services.slots import (
    connector_waiting_promote,
    run_slot_acquire,
    run_slot_free,
    run_slot_release,
)
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
# Database errors that mean "the server went away", worth a retry: Django's,
# and psycopg's own from the staging COPY, which bypasses Django's wrappers
# (AdminShutdown, a cut connection).
DATABASE_GONE = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


@dataclass
class Attempt:
    """One attempt of a run on this worker: its identity is its fence."""

    run: ImportRun
    fence: int
    connector_id: int

    def runs(self):
        """The run's row, if this attempt still owns it (running, same fence)."""
        return ImportRun.objects.filter(
            pk=self.run.pk, status=ImportRun.Status.RUNNING, fencing_token=self.fence
        )


def _with_database(action, *, attempts: int = 20, delay: float = 1.0):
    """Run ``action``, reconnecting while the database restarts.

    A worker whose database restarted mid-run still owes the run its final
    state; without it the reaper would have to find the run.
    """
    for attempt in range(attempts):
        try:
            return action()
        except DATABASE_GONE:
            if attempt == attempts - 1:
                raise
            connection.close()
            time.sleep(delay)


def _finish(
    attempt: Attempt,
    *,
    status: str,
    event_kind: str,
    message: str = "",
    error_class: str = "",
    counts: dict[str, int] | None = None,
    data: dict | None = None,
) -> bool:
    """End the attempt's run; False if the run is no longer this attempt's."""
    fields = {
        "status": status,
        "finished_at": timezone.now(),
        "next_attempt_at": None,
        "error_class": error_class,
        "error_message": message if error_class else "",
        **(counts or {}),
    }

    def write() -> bool:
        with transaction.atomic():
            changed = attempt.runs().update(**fields)
            if changed:
                import_run_event_record(
                    run=attempt.run,
                    kind=event_kind,
                    message=message,
                    actor="worker",
                    data=data,
                )
        return bool(changed)

    changed = _with_database(write)
    if changed:
        for name, value in fields.items():
            setattr(attempt.run, name, value)
    return changed


def retry_delay(*, attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter, capped; Retry-After wins if later."""
    base = settings.IMPORTHUB_RETRY_BASE_SECONDS
    cap = settings.IMPORTHUB_RETRY_MAX_SECONDS
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    delay = random.uniform(ceiling / 2, ceiling)
    if retry_after:
        delay = max(delay, min(float(retry_after), cap))
    return delay


def _retry_or_fail(attempt: Attempt, *, error: BaseException, kind: str) -> None:
    """A transient failure: schedule the next attempt, or fail if none is left."""
    run = attempt.run
    max_attempts = 1 + run.project.max_retries
    error_class = type(error).__name__
    message = str(error) or repr(error)
    if run.attempt >= max_attempts:
        _finish(
            attempt,
            status=ImportRun.Status.FAILED,
            event_kind=ImportRunEvent.Kind.FAILED,
            error_class=error_class,
            message=_("%(message)s (gave up after %(count)s attempts)")
            % {"message": message, "count": run.attempt},
        )
        return
    delay = retry_delay(
        attempt=run.attempt, retry_after=getattr(error, "retry_after", None)
    )
    due = timezone.now() + timedelta(seconds=delay)

    def write() -> bool:
        with transaction.atomic():
            changed = attempt.runs().update(
                status=ImportRun.Status.RETRYING,
                attempt=run.attempt + 1,
                next_attempt_at=due,
                error_class=error_class,
                error_message=message,
            )
            if changed:
                import_run_event_record(
                    run=run,
                    kind=ImportRunEvent.Kind.RETRY_SCHEDULED,
                    actor="worker",
                    message=_("%(kind)s: %(message)s; attempt %(next)s in %(delay)ss.")
                    % {
                        "kind": kind,
                        "message": message,
                        "next": run.attempt + 1,
                        "delay": round(delay, 1),
                    },
                    data={
                        "error_class": error_class,
                        "delay": round(delay, 3),
                        "attempt": run.attempt + 1,
                    },
                )
        return bool(changed)

    if not _with_database(write):
        return
    run.status, run.attempt, run.next_attempt_at = (
        ImportRun.Status.RETRYING,
        run.attempt + 1,
        due,
    )
    # During backoff the run keeps its project's lock and frees its slot.
    try:
        import_run_dispatch(run=run, countdown=delay)
    except Exception:
        logger.exception("retry of run %s not dispatched; the sweep will", run.pk)


class _Heartbeat:
    """Called by the renewer's thread after each renewal of the lease."""

    def __init__(self, attempt: Attempt):
        self.attempt = attempt
        self.stopped = False

    def __call__(self) -> None:
        try:
            alive = self.attempt.runs().update(heartbeat_at=timezone.now())
            if not alive:
                # Cancelled, reaped or force-unlocked from outside: stop at
                # the next batch.
                self.stopped = True
        except Exception:
            logger.exception("heartbeat of run %s failed", self.attempt.run.pk)
        finally:
            # The renewer's thread must not keep a connection per run.
            connections.close_all()


def import_run_execute(*, run_id: int) -> ImportRun | None:
    """Run an attempt of an import that the guard accepted.

    Returns the run as this attempt left it, or None when there was nothing
    to do (an unknown id, or a message for a run that is not startable).
    """
    try:
        run = ImportRun.objects.select_related("project__connector").get(pk=run_id)
    except ImportRun.DoesNotExist:
        logger.warning("message for unknown run %s ignored", run_id)
        return None
    if run.status not in STARTABLE_STATUSES:
        logger.info("stale message for run %s (%s) ignored", run.pk, run.status)
        if run.status == ImportRun.Status.RUNNING:
            import_run_event_record(
                run=run,
                kind=ImportRunEvent.Kind.STALE_MESSAGE,
                actor="worker",
                message=_("A second message for this run was ignored."),
            )
        return None
    connector = run.project.connector
    previous = run.status

    lock = project_lock(run.project_id, token=run.lock_token)
    try:
        fence = lock.acquire(
            blocking=True,
            timeout=LOCK_HANDOVER_SECONDS,
            fence_floor=project_fence_floor(project_id=run.project_id),
        )
    except LockingUnavailable as exc:
        logger.warning("run %s cannot start: %s", run.pk, exc)
        return _start_later(run, previous, reason=str(exc))
    if fence is None:
        reason = _("The project lock is held by another owner.")
        ImportRun.objects.filter(
            pk=run.pk, status=previous, lock_token=run.lock_token
        ).update(
            status=ImportRun.Status.FAILED,
            finished_at=timezone.now(),
            error_class="LockLost",
            error_message=reason,
        )
        import_run_event_record(
            run=run, kind=ImportRunEvent.Kind.LOCK_LOST, actor="worker", message=reason
        )
        run_slot_release(connector_id=connector.pk, token=run.lock_token)
        run.refresh_from_db()
        return run

    try:
        has_slot = run_slot_acquire(
            connector=connector,
            token=run.lock_token,
            ttl=settings.IMPORTHUB_LEASE_SECONDS,
        )
    except LockingUnavailable as exc:
        return _start_later(run, previous, reason=str(exc))
    if not has_slot:
        # Its lease ran out while it was queued, or it comes back from a
        # backoff, and every slot is taken: it waits (keeping its lock).
        moved = ImportRun.objects.filter(
            pk=run.pk, status=previous, lock_token=run.lock_token
        ).update(status=ImportRun.Status.WAITING, next_attempt_at=None)
        if moved:
            import_run_event_record(
                run=run,
                kind=ImportRunEvent.Kind.WAITING,
                actor="worker",
                message=_("All slots of connector “%(name)s” are taken; waiting.")
                % {"name": connector.name},
            )
            connector_waiting_promote(connector_id=connector.pk)
        return None

    now = timezone.now()
    with transaction.atomic():
        # The database's half of the slot limit, as the unique index is for
        # projects: Redis's leases vanish with a flush or a failover, and a
        # run still running then must keep its slot. Starts of one connector
        # are serialised by its row lock and counted here.
        limit = (
            Connector.objects.select_for_update()
            .filter(pk=connector.pk)
            .values_list("max_concurrent_imports", flat=True)
            .first()
        )
        running = ImportRun.objects.filter(
            status=ImportRun.Status.RUNNING, project__connector_id=connector.pk
        ).count()
        if limit is not None and running >= limit:
            started = 0
            waits = ImportRun.objects.filter(
                pk=run.pk, status=previous, lock_token=run.lock_token
            ).update(status=ImportRun.Status.WAITING, next_attempt_at=None)
        else:
            waits = 0
            started = ImportRun.objects.filter(
                pk=run.pk, status=previous, lock_token=run.lock_token
            ).update(
                status=ImportRun.Status.RUNNING,
                started_at=now,
                heartbeat_at=now,
                fencing_token=fence,
                next_attempt_at=None,
            )
    if waits:
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.WAITING,
            actor="worker",
            message=_(
                "%(running)s runs of connector “%(name)s” are running (limit "
                "%(limit)s); waiting."
            )
            % {"running": running, "name": connector.name, "limit": limit},
        )
        # Give back the lease this start took; the run keeps its lock.
        run_slot_release(connector_id=connector.pk, token=run.lock_token)
        return None
    if not started:
        # Cancelled (or started by a duplicate message) between the read and
        # the start: this message is done. A final run frees what it held.
        run.refresh_from_db()
        if run.status in ImportRun.FINAL_STATUSES:
            lock.release()
            run_slot_free(connector_id=connector.pk, token=run.lock_token)
        return None
    run.status, run.started_at, run.heartbeat_at, run.fencing_token = (
        ImportRun.Status.RUNNING,
        now,
        now,
        fence,
    )
    attempt = Attempt(run=run, fence=fence, connector_id=connector.pk)
    import_run_event_record(
        run=run,
        kind=ImportRunEvent.Kind.STARTED,
        actor="worker",
        data={"fencing_token": fence, "attempt": run.attempt},
    )
    heartbeat = _Heartbeat(attempt)
    renewer = Renewer(
        lock=lock,
        lease=(connector_slots(connector), run.lock_token),
        on_renewed=heartbeat,
    ).start()
    try:
        _run_pipeline(attempt, renewer=renewer, heartbeat=heartbeat)
    finally:
        renewer.stop()
        close_old_connections()
        try:
            _with_database(run.refresh_from_db, attempts=5)
        except DATABASE_GONE:
            logger.warning("run %s: database unreachable at the end", run.pk)
        # A retrying run keeps its project's lock through the backoff.
        if run.status != ImportRun.Status.RETRYING or run.lock_token != lock.token:
            try:
                lock.release()
            except LockingUnavailable:
                logger.warning("could not release the lock of run %s", run.pk)
        run_slot_free(connector_id=connector.pk, token=lock.token)
    return run


def _start_later(run: ImportRun, previous: str, *, reason: str) -> None:
    """Redis is unreachable at start: try the attempt again after a backoff."""
    delay = retry_delay(attempt=run.attempt)
    moved = ImportRun.objects.filter(
        pk=run.pk, status=previous, lock_token=run.lock_token
    ).update(
        status=ImportRun.Status.RETRYING,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    if moved:
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.RETRY_SCHEDULED,
            actor="worker",
            message=_("Cannot start: %(reason)s; trying again in %(delay)ss.")
            % {"reason": reason, "delay": round(delay, 1)},
            data={"error_class": "LockingUnavailable", "delay": round(delay, 3)},
        )
    return None


def _run_pipeline(attempt: Attempt, *, renewer: Renewer, heartbeat: _Heartbeat) -> None:
    run = attempt.run
    stage = Stage(run.pk, attempt.fence)
    keep_stage = False

    def should_stop() -> bool:
        # Checked between batches: a lost lock, or a cancel (seen by the
        # heartbeat, or flagged in Redis by the cancel service at once).
        return (
            renewer.lost.is_set() or heartbeat.stopped or run_cancel_requested(run.pk)
        )

    def on_progress(result: LoadResult) -> None:
        # The pipeline calls this about once a second.
        attempt.runs().update(rows_read=result.rows_read)

    try:
        result, stage = _extract_or_resume(attempt, stage, should_stop, on_progress)
        if should_stop():
            raise ImportInterrupted
        # From here on a transient failure keeps the staged data: the next
        # attempt loads it without extracting again.
        keep_stage = True
        with transaction.atomic():
            import_run_load(run=run, stage=stage, result=result)
            _finish(
                attempt,
                status=ImportRun.Status.SUCCEEDED,
                event_kind=ImportRunEvent.Kind.SUCCEEDED,
                message=_success_message(result),
                counts=result.counts(),
                data={"duplicates": result.duplicates},
            )
        keep_stage = False
    except ImportInterrupted:
        keep_stage = False
        if renewer.lost.is_set():
            _finish(
                attempt,
                status=ImportRun.Status.FAILED,
                event_kind=ImportRunEvent.Kind.LOCK_LOST,
                error_class="LockLost",
                message=_("The run lost its project lock (%(reason)s) and stopped.")
                % {"reason": renewer.lost_reason or _("taken by another owner")},
            )
    except FenceRejected as exc:
        keep_stage = False
        _finish(
            attempt,
            status=ImportRun.Status.FAILED,
            event_kind=ImportRunEvent.Kind.LOCK_LOST,
            error_class="LockLost",
            message=_(
                "A newer run of the project took over; nothing was written "
                "(%(detail)s)."
            )
            % {"detail": exc},
        )
    except TransientSourceError as exc:
        keep_stage = False
        _retry_or_fail(attempt, error=exc, kind=_("The source failed"))
    except DATABASE_GONE as exc:
        connection.close()
        _retry_or_fail(attempt, error=exc, kind=_("The database failed"))
    except LockingUnavailable as exc:
        _retry_or_fail(attempt, error=exc, kind=_("Redis failed"))
    except SourceError as exc:
        keep_stage = False
        _finish(
            attempt,
            status=ImportRun.Status.FAILED,
            event_kind=ImportRunEvent.Kind.FAILED,
            error_class=type(exc).__name__,
            message=str(exc),
        )
    except Exception as exc:
        keep_stage = False
        logger.exception("run %s failed unexpectedly", run.pk)
        _finish(
            attempt,
            status=ImportRun.Status.FAILED,
            event_kind=ImportRunEvent.Kind.FAILED,
            error_class=type(exc).__name__,
            message=str(exc) or repr(exc),
        )
    finally:
        # A superseded attempt (reaped while paused) leaves the tables alone:
        # its successor may be loading from them; the sweep drops what is
        # left once the run is over.
        if not keep_stage and _still_current(attempt):
            try:
                _with_database(stage.drop, attempts=5)
            except Exception:
                logger.exception("could not drop the staging table of run %s", run.pk)


def _still_current(attempt: Attempt) -> bool:
    try:
        return _with_database(
            ImportRun.objects.filter(
                pk=attempt.run.pk, fencing_token=attempt.fence
            ).exists,
            attempts=5,
        )
    except DATABASE_GONE:
        return False


def _extract_or_resume(attempt: Attempt, stage: Stage, should_stop, on_progress):
    """Extract the source, or reuse what an earlier attempt staged."""
    run = attempt.run
    extracted = (
        run.events.filter(kind=ImportRunEvent.Kind.EXTRACTED).order_by("-at").first()
        if run.extracted_at is not None
        else None
    )
    data = extracted.data if extracted else {}
    staged = data.get("rows_read", 0) - data.get("rows_rejected", 0)
    staged -= data.get("duplicates", 0)
    previous = Stage(run.pk, table=data["stage"]) if data.get("stage") else None
    # An unlogged stage is emptied by a database crash: resume only from a
    # stage that still holds every row it was sealed with.
    if previous and previous.exists() and previous.count() == staged:
        stage = previous  # adopted: this attempt drops it when done
        result = LoadResult(
            rows_read=data.get("rows_read", 0),
            rows_rejected=data.get("rows_rejected", 0),
            duplicates=data.get("duplicates", 0),
        )
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.RESUMED,
            actor="worker",
            message=_(
                "The source was already extracted by attempt %(attempt)s; "
                "loading the staged data without extracting again."
            )
            % {"attempt": data.get("attempt", "?")},
            data=data,
        )
        return result, stage
    attempt.runs().update(extracted_at=None)
    connector = get_connector(run.project)
    result = import_run_extract(
        run=run,
        connector=connector,
        stage=stage,
        batch_size=settings.IMPORTHUB_BATCH_SIZE,
        should_stop=should_stop,
        on_progress=on_progress,
    )
    attempt.runs().update(extracted_at=timezone.now(), rows_read=result.rows_read)
    run.extracted_at = timezone.now()
    import_run_event_record(
        run=run,
        kind=ImportRunEvent.Kind.EXTRACTED,
        actor="worker",
        data={
            "rows_read": result.rows_read,
            "rows_rejected": result.rows_rejected,
            "duplicates": result.duplicates,
            "attempt": run.attempt,
            "stage": stage.table,
        },
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
    return result, stage


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
