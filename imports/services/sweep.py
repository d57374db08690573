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
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from imports.loading import STAGE_TABLE
from imports.locks import project_lock, project_lock_name, redis_client
from imports.models import ImportRun, ImportRunEvent
from imports.services.events import import_run_event_record
from imports.services.runs import DISPATCH_GRACE_SECONDS, import_run_dispatch
from imports.services.slots import connector_waiting_promote, run_slot_free
from locking import Lock, LockingUnavailable

logger = logging.getLogger(__name__)


def runs_sweep() -> dict[str, int]:
    """One pass of every check; returns how many runs each step touched."""
    summary = {
        "reaped": runs_reap_lost(),
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
    reaped = 0
    for run in stale:
        try:
            alive = Lock.has_lock_with_value(
                redis_client(),
                project_lock_name(run.project_id),
                run.lock_token,
                prefix=settings.IMPORTHUB_REDIS_PREFIX,
            )
        except LockingUnavailable:
            return reaped  # no verdict without Redis
        if alive:
            continue
        if _reap(run):
            reaped += 1
    return reaped


def _reap(run: ImportRun) -> bool:
    retry = run.attempt < 1 + run.project.max_retries
    reason = _("Worker lost: no heartbeat since %(at)s (lease %(lease)s s).") % {
        "at": run.heartbeat_at.isoformat(timespec="seconds"),
        "lease": settings.IMPORTHUB_LEASE_SECONDS,
    }
    with transaction.atomic():
        changed = ImportRun.objects.filter(
            pk=run.pk,
            status=ImportRun.Status.RUNNING,
            fencing_token=run.fencing_token,
            heartbeat_at=run.heartbeat_at,
        )
        if retry:
            # A new token for the next attempt: the lost worker, should it
            # wake up, owns nothing any more (its extend and release fail,
            # and its fence is older than the next attempt's).
            updated = changed.update(
                status=ImportRun.Status.RETRYING,
                attempt=run.attempt + 1,
                lock_token=uuid.uuid4().hex,
                next_attempt_at=timezone.now(),
                error_class="WorkerLost",
                error_message=reason,
            )
        else:
            updated = changed.update(
                status=ImportRun.Status.FAILED,
                finished_at=timezone.now(),
                error_class="WorkerLost",
                error_message=reason,
            )
        if not updated:
            return False
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.REAPED,
            actor="reaper",
            message=reason,
            data={"retry": retry, "attempt": run.attempt},
        )
    try:
        project_lock(run.project_id, token=run.lock_token).release()
    except LockingUnavailable:
        pass
    lost_token = run.lock_token
    if retry:
        run.refresh_from_db()  # the new attempt's token
        _dispatch(run)
    run_slot_free(connector_id=run.project.connector_id, token=lost_token)
    return True


def _dispatch(run: ImportRun) -> bool:
    try:
        import_run_dispatch(run=run, countdown=0)
    except Exception:
        logger.exception("could not dispatch run %s", run.pk)
        return False
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
    return sum(_dispatch(run) for run in due)


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
    sent = 0
    for run in queued:
        if _dispatch(run):
            import_run_event_record(
                run=run,
                kind=ImportRunEvent.Kind.DISPATCHED,
                actor="reaper",
                message=_("Not started %(after)s s after its dispatch; sent again.")
                % {"after": int(settings.IMPORTHUB_REDISPATCH_SECONDS)},
            )
            sent += 1
    return sent


def runs_promote_waiting() -> int:
    connector_ids = (
        ImportRun.objects.filter(status=ImportRun.Status.WAITING)
        .values_list("project__connector_id", flat=True)
        .distinct()
    )
    return sum(
        len(connector_waiting_promote(connector_id=cid)) for cid in connector_ids
    )


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
    revoked = 0
    for run in recent:
        lock = project_lock(run.project_id, token=run.lock_token)
        try:
            if not lock.owned():
                continue
        except LockingUnavailable:
            return revoked
        app.control.revoke(run.celery_task_id, terminate=True, signal="SIGTERM")
        lock.release()
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.REVOKED,
            actor="reaper",
            message=_("The worker did not stop within %(grace)s s; revoked.")
            % {"grace": settings.IMPORTHUB_CANCEL_GRACE_SECONDS},
        )
        run_slot_free(connector_id=run.project.connector_id, token=run.lock_token)
        revoked += 1
    return revoked


def locks_release_orphaned() -> int:
    """Release project locks whose owner is no active run.

    A lock younger than the dispatch grace may belong to a request that has
    not committed its run yet; it is left alone (it expires by itself).
    """
    client = redis_client()
    prefix = settings.IMPORTHUB_REDIS_PREFIX
    pattern = f"{prefix}lock:{project_lock_name('*')}"
    released = 0
    try:
        for key in client.scan_iter(match=pattern, count=500):
            name = key.decode().removeprefix(f"{prefix}lock:")
            project_id = int(name.rsplit(":", 1)[1])
            owner = Lock.current_owner(client, name, prefix=prefix)
            if owner is None:
                continue
            lock = Lock(client, name, ttl=1, prefix=prefix, token=owner)
            left = lock.ttl_remaining()
            if left is None or left <= DISPATCH_GRACE_SECONDS:
                continue
            if (
                ImportRun.objects.active()
                .filter(project_id=project_id, lock_token=owner)
                .exists()
            ):
                continue
            if lock.release():  # compare-and-delete: only that owner's lock
                released += 1
                logger.warning("released orphaned lock of project %s", project_id)
    except LockingUnavailable:
        pass
    return released


def stages_drop_orphaned() -> int:
    """Drop staging tables whose run is over (left by a killed worker)."""
    tables = [
        (int(match.group(1)), name)
        for name in connection.introspection.table_names()
        if (match := STAGE_TABLE.match(name))
    ]
    if not tables:
        return 0
    active = set(
        ImportRun.objects.filter(pk__in=[run_id for run_id, _ in tables])
        .exclude(status__in=ImportRun.FINAL_STATUSES)
        .values_list("pk", flat=True)
    )
    dropped = 0
    for run_id, table in tables:
        if run_id in active:
            continue
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    # A paused worker may still hold the table (its COPY is
                    # open): never wait for it, try again next sweep.
                    cursor.execute("SET LOCAL lock_timeout = '500ms'")
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
        except OperationalError:
            continue
        dropped += 1
    return dropped
