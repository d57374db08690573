"""The guard: the one way an import is requested and dispatched.

Every entry point (admin, commands, beat, the HTTP API and direct calls of the
Celery tasks) ends here, so the rule "at most one active import per project,
and no second one ever dispatched" is enforced in one place, in this order:

1. The Redis lock ``project:<id>`` is taken in one round trip. A busy
   project is rejected here, before the database or the broker is touched.
2. The run is written. The partial unique index ``one_active_run_per_project``
   refuses a second active run even if Redis lost the lock (flush, failover),
   and that refusal becomes the same ``ProjectBusy``.
3. After the transaction commits, the lock's TTL is raised from a short grace
   to the queued lease and the task is published. If publishing fails the run
   is failed with the reason and the lock released: nothing is left behind.

Why the lock starts with a short grace TTL: if the caller's transaction rolls
back, ``on_commit`` never runs and nobody would release the lock; with the
grace it frees itself within seconds instead of blocking the project.
"""

import logging
import uuid
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from imports.exceptions import (
    DispatchFailed,
    LockServiceUnavailable,
    ProjectBusy,
    ProjectNotImportable,
    RunNotCancellable,
    RunNotRetryable,
)
from imports.locks import (
    project_lock,
    project_lock_force_release,
    run_cancel_flag_set,
    stat_incr,
)
from imports.models import ImportRun, ImportRunEvent, Project, ProjectEvent
from imports.services.events import import_run_event_record
from imports.validation import project_settings_errors
from locking import Lock, LockingUnavailable

logger = logging.getLogger(__name__)

# How long the lock lives between the take and the commit of the run.
DISPATCH_GRACE_SECONDS = 60.0

# The id of the run whose task the guard is publishing right now; the tasks'
# ``apply_async`` lets through only that publish and routes every other call
# through the guard.
_publishing_run_id: ContextVar[int | None] = ContextVar(
    "importhub_publishing_run_id", default=None
)


def publishing_run_id() -> int | None:
    return _publishing_run_id.get()


@contextmanager
def _publishing(run_id: int):
    token = _publishing_run_id.set(run_id)
    try:
        yield
    finally:
        _publishing_run_id.reset(token)


def project_fence_floor(*, project_id: int) -> int:
    """The highest fencing token the database recorded for a project.

    The lock's counter is raised to it before issuing the next token, so the
    fence stays monotonic even when Redis lost its data.
    """
    value = ImportRun.objects.filter(project_id=project_id).aggregate(
        top=Max("fencing_token")
    )["top"]
    return value or 0


def project_active_run(*, project_id: int) -> ImportRun | None:
    return ImportRun.objects.active().filter(project_id=project_id).first()


def _reject_busy(project: Project) -> ProjectBusy:
    active = project_active_run(project_id=project.pk)
    # A rejection is an expected outcome, not an error: one INFO line and a
    # counter; no row is written for it.
    stat_incr("rejected_busy")
    logger.info(
        "import rejected: project busy",
        extra={"project_id": project.pk, "run_id": active.pk if active else None},
    )
    return ProjectBusy(project.pk, active_run_id=active.pk if active else None)


def import_run_request(
    *,
    project: Project,
    requested_by: str,
    trigger: str,
    retry_of: ImportRun | None = None,
) -> ImportRun:
    """Accept an import of ``project`` and dispatch it, or refuse it.

    Returns the new run, queued (its task is published when the surrounding
    transaction commits; at once when there is none).

    Raises:
        ProjectBusy: the project already has an active import.
        ProjectNotImportable: the project or its connector is switched off.
        LockServiceUnavailable: Redis cannot be reached.
        DispatchFailed: the broker refused the task; the run is failed.
    """
    connector = project.connector
    if not project.is_active:
        raise ProjectNotImportable(
            _("Project %(id)s is inactive and accepts no imports.") % {"id": project.pk}
        )
    if not connector.is_enabled:
        raise ProjectNotImportable(
            _("Connector “%(name)s” is disabled and accepts no imports.")
            % {"name": connector.name}
        )
    # Settings saved past the admin's form (a shell, a fixture) are checked
    # here too: an invalid config never reaches a worker.
    problems = project_settings_errors(project)
    if problems:
        raise ProjectNotImportable(
            _("Project %(id)s cannot be imported: %(problems)s")
            % {"id": project.pk, "problems": "; ".join(problems)}
        )

    lock = project_lock(project.pk, token=uuid.uuid4().hex, ttl=DISPATCH_GRACE_SECONDS)
    try:
        fence = lock.acquire(fence_floor=project_fence_floor(project_id=project.pk))
    except LockingUnavailable as exc:
        raise LockServiceUnavailable(
            _("The lock service (Redis) is unreachable: %(error)s") % {"error": exc}
        ) from exc
    if fence is None:
        raise _reject_busy(project)

    try:
        with transaction.atomic():
            run = ImportRun(
                project=project,
                status=ImportRun.Status.QUEUED,
                trigger=trigger,
                requested_by=requested_by[:150],
                retry_of=retry_of,
                fencing_token=fence,
                lock_token=lock.token,
                celery_task_id=str(uuid.uuid4()),
            )
            run.full_clean(validate_constraints=False)
            run.save()
            import_run_event_record(
                run=run,
                kind=ImportRunEvent.Kind.REQUESTED,
                actor=requested_by,
                message=_("Import requested (%(trigger)s).")
                % {"trigger": run.get_trigger_display()},
                data={
                    "trigger": trigger,
                    "retry_of": retry_of.pk if retry_of else None,
                },
            )
            transaction.on_commit(
                lambda: _import_run_publish(run=run, lock=lock), robust=False
            )
    except IntegrityError:
        lock.release()
        if ImportRun.objects.active().filter(project_id=project.pk).exists():
            raise _reject_busy(project)
        raise
    return run


def _import_run_publish(*, run: ImportRun, lock: Lock) -> None:
    """Publish the run's task; on failure fail the run and free the project."""
    # Local import: the tasks module imports the services.
    from imports.tasks import import_run_execute_task

    try:
        if not lock.extend(settings.IMPORTHUB_DISPATCH_LOCK_SECONDS):
            # The grace ran out before the commit; the worker re-takes the
            # lock with the run's token, and the database holds the project.
            lock.acquire(fence_floor=run.fencing_token or 0)
    except LockingUnavailable:
        logger.warning("could not extend the lock of run %s", run.pk)

    try:
        with _publishing(run.pk):
            import_run_execute_task.apply_async(
                kwargs={"run_id": run.pk}, task_id=run.celery_task_id
            )
    except Exception as exc:
        reason = _("The task could not be sent to the broker: %(error)s") % {
            "error": f"{type(exc).__name__}: {exc}"
        }
        logger.error("dispatch of run %s failed: %s", run.pk, exc)
        ImportRun.objects.filter(pk=run.pk, status=ImportRun.Status.QUEUED).update(
            status=ImportRun.Status.FAILED,
            finished_at=timezone.now(),
            error_class="DispatchFailed",
            error_message=reason,
        )
        import_run_event_record(
            run=run, kind=ImportRunEvent.Kind.DISPATCH_FAILED, message=reason
        )
        try:
            lock.release()
        except LockingUnavailable:
            logger.warning("could not release the lock of run %s", run.pk)
        run.refresh_from_db()
        raise DispatchFailed(reason, run=run) from exc
    import_run_event_record(run=run, kind=ImportRunEvent.Kind.DISPATCHED)


def import_run_retry(*, run: ImportRun, requested_by: str) -> ImportRun:
    """Start a new run of a failed or cancelled run's project, linked to it.

    Raises:
        RunNotRetryable: the run has not failed nor been cancelled.
        ProjectBusy: and every other error of ``import_run_request``.
    """
    if run.status not in (ImportRun.Status.FAILED, ImportRun.Status.CANCELLED):
        raise RunNotRetryable(
            _("Run %(id)s is %(status)s; only failed or cancelled runs are retried.")
            % {"id": run.pk, "status": run.get_status_display()}
        )
    project = Project.objects.select_related("connector").get(pk=run.project_id)
    return import_run_request(
        project=project,
        requested_by=requested_by,
        trigger=ImportRun.Trigger.RETRY,
        retry_of=run,
    )


def import_run_cancel(
    *, run: ImportRun, cancelled_by: str, reason: str = ""
) -> ImportRun:
    """Cancel an active run; it never starts (or goes on) after this.

    A queued, waiting or retrying run is cancelled at once and its lock and
    slot are freed. A running one is marked cancelled and told to stop: its
    worker stops at the next batch boundary, writes nothing (the load checks
    the status in its own transaction) and frees its lock itself.

    Raises:
        RunNotCancellable: the run is already finished.
    """
    with transaction.atomic():
        locked = ImportRun.objects.select_for_update().get(pk=run.pk)
        if locked.status not in ImportRun.ACTIVE_STATUSES:
            raise RunNotCancellable(
                _("Run %(id)s is %(status)s and cannot be cancelled.")
                % {"id": locked.pk, "status": locked.get_status_display()}
            )
        previous = locked.status
        locked.status = ImportRun.Status.CANCELLED
        locked.finished_at = timezone.now()
        locked.error_class = "Cancelled"
        locked.error_message = (
            _("Cancelled by %(who)s: %(reason)s")
            % {"who": cancelled_by, "reason": reason}
            if reason
            else _("Cancelled by %(who)s.") % {"who": cancelled_by}
        )
        locked.save(
            update_fields=["status", "finished_at", "error_class", "error_message"]
        )
        import_run_event_record(
            run=locked,
            kind=ImportRunEvent.Kind.CANCELLED,
            actor=cancelled_by,
            message=reason,
            data={"from": previous},
        )
    try:
        run_cancel_flag_set(locked.pk)
        if previous != ImportRun.Status.RUNNING:
            project_lock(locked.project_id, token=locked.lock_token).release()
    except LockingUnavailable:
        logger.warning("could not free the lock of cancelled run %s", locked.pk)
    _after_run_freed(locked)
    return locked


def _after_run_freed(run: ImportRun) -> None:
    """Hook for what follows a run leaving its slot (waiting runs start)."""


def project_force_unlock(*, project: Project, unlocked_by: str, reason: str) -> dict:
    """Free a stuck project: fail its active run and release its lock.

    An operator's tool for a project whose lock or run outlived its worker.
    Recorded as a project event (and on the run) with who and why.
    Returns ``{"run": the run failed or None, "lock_released": bool}``.
    """
    if not reason.strip():
        raise ValueError("a reason is required to force-unlock a project")
    with transaction.atomic():
        run = (
            ImportRun.objects.select_for_update()
            .active()
            .filter(project_id=project.pk)
            .first()
        )
        message = _("Force-unlocked by %(who)s: %(reason)s") % {
            "who": unlocked_by,
            "reason": reason,
        }
        if run is not None:
            run.status = ImportRun.Status.FAILED
            run.finished_at = timezone.now()
            run.error_class = "ForceUnlocked"
            run.error_message = message
            run.save(
                update_fields=["status", "finished_at", "error_class", "error_message"]
            )
            import_run_event_record(
                run=run,
                kind=ImportRunEvent.Kind.UNLOCKED,
                actor=unlocked_by,
                message=reason,
            )
        released = project_lock_force_release(project.pk)
        ProjectEvent.objects.create(
            project=project,
            kind=ProjectEvent.Kind.UNLOCKED,
            actor=unlocked_by,
            message=reason,
            data={"run": run.pk if run else None, "lock_released": released},
        )
    if run is not None:
        run_cancel_flag_set(run.pk)
        _after_run_freed(run)
    return {"run": run, "lock_released": released}
