"""Dispatch: publishing a run's task to the broker, the only publisher there is.

A run's message is sent only from here, with ``ImportRunExecuteTask.publish``
(the task's ``apply_async`` itself routes every other caller through the
guard). Before publishing, the run's project lock and slot are extended to
the queued lease; if the broker refuses a first dispatch, the run fails with
the reason and its lock and slot are freed, so nothing is left behind.
"""

import logging
import uuid
from contextlib import nullcontext
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.utils import timezone

from connectors.messages import Message, gettext_noop
from imports.exceptions import DispatchFailed
from imports.locks import project_lock
from imports.models import ImportRun
from imports.services.slots import run_slot_extend, run_slot_release
from imports.services.transitions import DISPATCH_FAIL
from imports.tasks import import_run_execute_task
from locking import LockingUnavailable

logger = logging.getLogger(__name__)

#: Messages buffered before the batch is flushed (one round trip each).
PUBLISH_BATCH = 500


def _hold(run: ImportRun, *, seconds: float) -> None:
    """Extend the run's lock (and its slot, if queued) for ``seconds``."""
    lock = project_lock(run.project_id, token=run.lock_token)
    try:
        if not lock.extend(seconds):
            # The grace ran out before the commit; the worker re-takes the
            # lock with the run's token, and the database holds the project.
            lock.acquire(fence_floor=run.fencing_token or 0)
        if run.status == ImportRun.Status.QUEUED:
            run_slot_extend(
                connector=run.project.connector, token=run.lock_token, ttl=seconds
            )
    except LockingUnavailable:
        logger.warning("could not extend the lock of run %s", run.pk)


def runs_publish(runs: list[ImportRun], *, hold: bool) -> dict[int, DispatchFailed]:
    """Publish the first messages of newly accepted runs, over one producer
    connection; return the runs the broker refused (each failed, its lock
    and slot freed), by id.

    ``hold``: raise each run's lock and slot to the queued lease first (they
    were taken with the guard's grace TTL, inside a transaction).
    """
    failed: dict[int, DispatchFailed] = {}
    if not runs:
        return failed
    if hold:
        for run in runs:
            _hold(run, seconds=settings.IMPORTHUB_DISPATCH_LOCK_SECONDS)
    try:
        with current_app.producer_or_acquire() as producer, _batch(producer):
            for run in runs:
                try:
                    import_run_execute_task.publish(
                        run_id=run.pk, task_id=run.celery_task_id, producer=producer
                    )
                except Exception as exc:
                    failed[run.pk] = _dispatch_failed(run, exc)
    except Exception as exc:
        # No connection to the broker at all, or the batch's flush failed:
        # none of the batch's messages is known to be sent. A run failed
        # here whose message did arrive is dropped by the worker's claim.
        for run in runs:
            if run.pk not in failed:
                failed[run.pk] = _dispatch_failed(run, exc)
    return failed


def _batch(producer):
    """Publish the messages of one call together where the transport can
    (kombu's producer batch: one pipelined round trip on Redis); elsewhere
    (AMQP publishes without waiting anyway) one by one."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=PUBLISH_BATCH) if batch is not None else nullcontext()


def import_run_dispatch(*, run: ImportRun, countdown: float | None = None) -> None:
    """Publish a queued (or retrying) run's task.

    ``countdown`` delays a retry's attempt. A first dispatch that the
    broker refuses fails the run.

    Raises:
        DispatchFailed: the broker refused a first dispatch; the run failed.
    """
    _hold(run, seconds=settings.IMPORTHUB_DISPATCH_LOCK_SECONDS + (countdown or 0))
    if countdown is not None or run.dispatched_at is None:
        # A retry, a redispatch or a promoted run: each message has an id of
        # its own, recorded so that a cancel can revoke the attempt that is
        # actually running. (A first dispatch wrote both with the run.)
        if countdown is not None:
            run.celery_task_id = str(uuid.uuid4())
        run.dispatched_at = timezone.now() + timedelta(seconds=countdown or 0)
        ImportRun.objects.filter(pk=run.pk).update(
            celery_task_id=run.celery_task_id, dispatched_at=run.dispatched_at
        )
    try:
        import_run_execute_task.publish(
            run_id=run.pk, task_id=run.celery_task_id, countdown=countdown
        )
    except Exception as exc:
        if countdown is not None:
            # A retry's message: the sweep dispatches due retries anyway.
            logger.warning("retry message of run %s not sent: %s", run.pk, exc)
            return
        raise _dispatch_failed(run, exc) from exc


def _dispatch_failed(run: ImportRun, exc: Exception) -> DispatchFailed:
    """Fail a run whose first message the broker refused, free its lock and
    slot, and return the error to raise or report."""
    reason = Message(
        gettext_noop("The task could not be sent to the broker: %(error)s"),
        error=f"{type(exc).__name__}: {exc}",
    )
    logger.error("dispatch of run %s failed: %s", run.pk, exc)
    DISPATCH_FAIL.apply(
        run,
        actor="",
        message=reason,
        error_class="DispatchFailed",
        error_message=reason,
    )
    try:
        project_lock(run.project_id, token=run.lock_token).release()
    except LockingUnavailable:
        logger.warning("could not release the lock of run %s", run.pk)
    run_slot_release(connector_id=run.project.connector_id, token=run.lock_token)
    run.refresh_from_db()
    failure = DispatchFailed(reason, run=run)
    failure.__cause__ = exc
    return failure
