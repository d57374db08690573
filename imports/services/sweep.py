"""The sweep: finds lost workers, starts due retries and waiting runs.

Run by beat every ``IMPORTHUB_SWEEP_SECONDS`` (and by ``manage.py
import_reap``). Safe to run in several processes at once: every change is a
conditional update, and locks and slots are released only with their
owner's token.

A run is lost only when both signs agree: its heartbeat is older than the
lease, and its lock is no longer held with its token (the renewer would
have kept it). A worker whose database writes fail but whose renewals go on
is alive, and the sweep leaves it alone.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connectors.messages import Message, gettext_noop
from imports import actors
from imports.loading import run_committed, transaction_lock_timeout
from imports.locks import project_lock, project_lock_held_by, run_lock_token
from imports.models import RUN_COUNT_FIELDS, ImportRun, ImportRunEvent
from imports.services.dispatch import import_run_dispatch
from imports.services.events import import_run_event_record
from imports.services.orphans import (
    locks_release_orphaned,
    slots_release_orphaned,
    stages_drop_orphaned,
)
from imports.services.transitions import REAP_FAIL, REAP_RETRY, RECONCILE
from imports.services.waiting import connector_waiting_promote, run_slot_free
from locking import LockingUnavailable

REAPER = actors.REAPER
# How long the sweep waits for a row or table lock before it moves on: a
# stalled worker's transaction must not stall the sweep for everyone.
SWEEP_LOCK_TIMEOUT_MS = 2000

logger = logging.getLogger(__name__)


def _each(step: str, runs, handle) -> int:
    """Handle each run on its own; returns how many ``handle`` said it did.

    A run the step cannot handle (a bad row, a bug) is logged and recorded
    on the run, and the step goes on with the next one, so one bad row never
    stops the sweep for everybody. Without Redis there is no verdict: the
    step stops and the next sweep tries again.
    """
    done = 0
    for run in runs:
        try:
            done += bool(handle(run))
        except LockingUnavailable:
            logger.warning("sweep step %s stopped: Redis is unreachable", step)
            break
        except Exception as exc:
            _record_failure(step, run, exc)
    return done


def _record_failure(step: str, run: ImportRun, exc: Exception) -> None:
    logger.exception(
        "sweep step %s could not handle run %s",
        step,
        run.pk,
        extra={"run_id": run.pk, "project_id": run.project_id},
    )
    message = Message(
        gettext_noop("The sweep could not %(step)s this run: %(error)s"),
        step=step,
        error=f"{type(exc).__name__}: {exc}",
    )
    try:
        last = run.events.order_by("-at", "-id").first()
        # Once per distinct failure, not once per sweep tick.
        if (
            last is None
            or last.kind != ImportRunEvent.Kind.SWEEP_FAILED
            or (last.message_id, last.message_params) != (message.msgid, message.params)
        ):
            import_run_event_record(
                run=run,
                kind=ImportRunEvent.Kind.SWEEP_FAILED,
                actor=REAPER,
                message=message,
                data={"step": step, "error_class": type(exc).__name__},
            )
    except Exception:
        logger.exception("could not record the sweep failure of run %s", run.pk)


def _row_locked(run: ImportRun) -> bool:
    """Lock ``run``'s row for the current transaction, if nobody holds it.

    A row held by another transaction (a worker inside its load) is skipped
    and comes back at the next sweep.
    """
    transaction_lock_timeout(SWEEP_LOCK_TIMEOUT_MS)
    return (
        ImportRun.objects.select_for_update(skip_locked=True).filter(pk=run.pk).exists()
    )


def runs_sweep() -> dict[str, int]:
    """One pass of every check; returns how many runs each step touched."""
    summary = {
        "reaped": runs_reap_lost(),
        # Before the promotion: a slot whose release was lost is free again.
        "slots_released": slots_release_orphaned(),
        "retries_dispatched": runs_dispatch_due_retries(),
        "redispatched": runs_redispatch_queued(),
        "promoted": runs_promote_waiting(),
        "revoked": runs_revoke_cancelled(),
        "locks_released": locks_release_orphaned(),
        "stages_dropped": stages_drop_orphaned(),
    }
    if any(summary.values()):
        logger.info("sweep: %s", summary)
    return summary


def runs_reap_lost() -> int:
    """Fail (or retry) running runs whose worker is gone; free their slot."""
    lease = timedelta(seconds=settings.IMPORTHUB_LEASE_SECONDS)
    stale = ImportRun.objects.filter(
        status=ImportRun.Status.RUNNING, heartbeat_at__lt=timezone.now() - lease
    ).select_related("project")
    return _each("reap", stale, _reap)


def _reap(run: ImportRun) -> bool:
    if project_lock_held_by(run.project_id, run.lock_token):
        return False  # the renewer keeps it: the worker is alive
    retry = run.attempt < 1 + run.project.max_retries
    reason = Message(
        gettext_noop("Worker lost: no heartbeat since %(at)s (lease %(lease)s s)."),
        at=run.heartbeat_at.isoformat(timespec="seconds"),
        lease=settings.IMPORTHUB_LEASE_SECONDS,
    )
    lost_token = run.lock_token
    reaped = {
        "actor": REAPER,
        "message": reason,
        "data": {"retry": retry, "attempt": run.attempt},
        # Conditional on the heartbeat the reaper saw: a worker that came
        # back to life meanwhile keeps its run.
        "guards": {
            "fencing_token": run.fencing_token,
            "heartbeat_at": run.heartbeat_at,
        },
        "error_class": "WorkerLost",
        "error_message": reason,
    }
    committed = run_committed(run.project, run)
    with transaction.atomic():
        if not _row_locked(run):
            return False
        if committed is not None:
            updated = RECONCILE.apply(
                run,
                actor=REAPER,
                message=Message(
                    gettext_noop(
                        "The worker was lost after the data committed in the "
                        "destination; the run follows the destination's record."
                    )
                ),
                guards=reaped["guards"],
                error_class="",
                error_message="",
                **{k: v for k, v in committed.items() if k in RUN_COUNT_FIELDS},
            )
            retry = False
        elif retry:
            # A new token for the next attempt: the lost worker, should it
            # wake up, owns nothing any more (its extend and release fail,
            # and its fence is older than the next attempt's).
            updated = REAP_RETRY.apply(
                run,
                **reaped,
                attempt=run.attempt + 1,
                lock_token=run_lock_token(run.pk),
                next_attempt_at=timezone.now(),
            )
        else:
            updated = REAP_FAIL.apply(run, **reaped)
    if not updated:
        return False
    if lost_token:  # a run that never held a lock has none to give back
        try:
            project_lock(run.project_id, token=lost_token).release()
        except LockingUnavailable:
            pass
    if retry:
        _dispatch(run)
    run_slot_free(connector_id=run.project.connector_id, token=lost_token)
    return True


def _dispatch(run: ImportRun) -> bool:
    with transaction.atomic():
        if not _row_locked(run):
            return False
    import_run_dispatch(run=run, countdown=0)
    return True


def runs_dispatch_due_retries() -> int:
    """Send again the retries whose time has come and gone.

    A retry is published with a countdown when it is scheduled; this is the
    safety net when that message was lost. A duplicate is harmless: only
    one message can start an attempt.
    """
    late = timezone.now() - timedelta(seconds=settings.IMPORTHUB_SWEEP_SECONDS)
    due = ImportRun.objects.filter(
        status=ImportRun.Status.RETRYING, next_attempt_at__lt=late
    ).select_related("project__connector")
    return _each("dispatch", due, _dispatch)


def runs_redispatch_queued() -> int:
    """Send again a queued run whose message seems lost.

    A queued run that no worker started within ``IMPORTHUB_REDISPATCH_SECONDS``
    of its dispatch may have lost its message (a flushed or failed-over
    broker, a worker killed between receiving it and starting the run); its
    database row would otherwise hold the project for ever. A duplicate is
    harmless, and is sent at most once per period.
    """
    stale = timezone.now() - timedelta(seconds=settings.IMPORTHUB_REDISPATCH_SECONDS)
    queued = ImportRun.objects.filter(
        status=ImportRun.Status.QUEUED, dispatched_at__lt=stale
    ).select_related("project__connector")

    def redispatch(run: ImportRun) -> bool:
        if not _dispatch(run):
            return False
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.DISPATCHED,
            actor=REAPER,
            message=Message(
                gettext_noop("Not started %(after)s s after its dispatch; sent again."),
                after=int(settings.IMPORTHUB_REDISPATCH_SECONDS),
            ),
        )
        return True

    return _each("dispatch", queued, redispatch)


def runs_promote_waiting() -> int:
    connector_ids = (
        ImportRun.objects.filter(status=ImportRun.Status.WAITING)
        .values_list("project__connector_id", flat=True)
        .distinct()
    )
    promoted = 0
    for connector_id in connector_ids:
        try:
            promoted += len(connector_waiting_promote(connector_id=connector_id))
        except Exception:
            logger.exception("promoting the runs of connector %s", connector_id)
    return promoted


def runs_revoke_cancelled() -> int:
    """Stop by force a cancelled run whose worker did not stop in the grace."""
    from config.celery import app

    grace = timezone.now() - timedelta(seconds=settings.IMPORTHUB_CANCEL_GRACE_SECONDS)
    recent = ImportRun.objects.filter(
        status=ImportRun.Status.CANCELLED,
        finished_at__lt=grace,
        finished_at__gt=grace - timedelta(hours=24),
        started_at__isnull=False,
    ).select_related("project")

    def revoke(run: ImportRun) -> bool:
        lock = project_lock(run.project_id, token=run.lock_token)
        if not lock.owned():
            return False
        app.control.revoke(run.celery_task_id, terminate=True, signal="SIGTERM")
        lock.release()
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.REVOKED,
            actor=REAPER,
            message=Message(
                gettext_noop("The worker did not stop within %(grace)s s; revoked."),
                grace=settings.IMPORTHUB_CANCEL_GRACE_SECONDS,
            ),
        )
        run_slot_free(connector_id=run.project.connector_id, token=run.lock_token)
        return True

    return _each("revoke", recent, revoke)
