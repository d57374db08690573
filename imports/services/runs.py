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
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from connectors.models import Connector
from imports.exceptions import (
    ConnectorBusy,
    DispatchFailed,
    LockServiceUnavailable,
    ProjectBusy,
    ProjectNotImportable,
    RunNotCancellable,
    RunNotRetryable,
)
from imports.locks import (
    connector_slots,
    project_lock,
    project_lock_force_release,
    run_cancel_flag_set,
    stat_incr,
)
from imports.models import ImportRun, ImportRunEvent, Project, ProjectEvent
from imports.services.events import import_run_event_record
from imports.services.slots import (
    connector_waiting_promote,
    run_slot_acquire,
    run_slot_extend,
    run_slot_free,
    run_slot_release,
)
from imports.validation import project_settings_errors
from locking import LockingUnavailable

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

    # The connector's slot, taken with the run's token. Like the lock it
    # starts with a short grace TTL and is extended once the run commits.
    try:
        has_slot = run_slot_acquire(
            connector=connector, token=lock.token, ttl=DISPATCH_GRACE_SECONDS
        )
    except LockingUnavailable as exc:
        lock.release()
        raise LockServiceUnavailable(
            _("The lock service (Redis) is unreachable: %(error)s") % {"error": exc}
        ) from exc
    if not has_slot and connector.when_busy == Connector.WhenBusy.REJECT:
        lock.release()
        stat_incr("rejected_connector_busy")
        raise ConnectorBusy(connector, limit=connector.max_concurrent_imports)

    try:
        with transaction.atomic():
            run = ImportRun(
                project=project,
                status=ImportRun.Status.QUEUED
                if has_slot
                else ImportRun.Status.WAITING,
                trigger=trigger,
                requested_by=requested_by[:150],
                retry_of=retry_of,
                fencing_token=fence,
                lock_token=lock.token,
                celery_task_id=str(uuid.uuid4()),
                dispatched_at=timezone.now() if has_slot else None,
            )
            # The foreign keys are the caller's objects: no query to check
            # that they exist; the database's constraints hold anyway.
            run.full_clean(exclude=["project", "retry_of"], validate_constraints=False)
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
            if has_slot:
                transaction.on_commit(
                    lambda: import_run_dispatch(run=run), robust=False
                )
            else:
                import_run_event_record(
                    run=run,
                    kind=ImportRunEvent.Kind.WAITING,
                    actor="scheduler",
                    message=_(
                        "All %(limit)s slots of connector “%(name)s” are taken; "
                        "the run starts by itself when one frees."
                    )
                    % {
                        "limit": connector.max_concurrent_imports,
                        "name": connector.name,
                    },
                )
                transaction.on_commit(lambda: _import_run_wait(run=run), robust=False)
    except IntegrityError:
        lock.release()
        if has_slot:
            run_slot_release(connector_id=connector.pk, token=lock.token)
        if ImportRun.objects.active().filter(project_id=project.pk).exists():
            raise _reject_busy(project)
        raise
    return run


def _import_run_wait(*, run: ImportRun) -> None:
    """A waiting run keeps its project locked until a slot frees."""
    lock = project_lock(run.project_id, token=run.lock_token)
    try:
        if not lock.extend(settings.IMPORTHUB_DISPATCH_LOCK_SECONDS):
            lock.acquire(fence_floor=run.fencing_token or 0)
    except LockingUnavailable:
        logger.warning("could not extend the lock of waiting run %s", run.pk)
    # A slot may have freed between the take and the commit; only then is
    # there anything to promote (thousands of waiting runs are common).
    connector = run.project.connector
    try:
        free = connector_slots(connector).count() < connector.max_concurrent_imports
    except LockingUnavailable:
        free = False
    if free:
        connector_waiting_promote(connector_id=connector.pk)


def import_run_dispatch(*, run: ImportRun, countdown: float | None = None) -> None:
    """Publish a queued (or retrying) run's task; the only publisher there is.

    The run's project lock and slot are extended to the queued lease first.
    If the broker refuses, the run is failed with the reason and its lock
    and slot are freed, and ``DispatchFailed`` is raised.
    """
    # Local import: the tasks module imports the services.
    from imports.tasks import import_run_execute_task

    lock = project_lock(run.project_id, token=run.lock_token)
    hold = settings.IMPORTHUB_DISPATCH_LOCK_SECONDS + (countdown or 0)
    try:
        if not lock.extend(hold):
            # The grace ran out before the commit; the worker re-takes the
            # lock with the run's token, and the database holds the project.
            lock.acquire(fence_floor=run.fencing_token or 0)
        if run.status == ImportRun.Status.QUEUED:
            run_slot_extend(
                connector=run.project.connector, token=run.lock_token, ttl=hold
            )
    except LockingUnavailable:
        logger.warning("could not extend the lock of run %s", run.pk)

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
        with _publishing(run.pk):
            import_run_execute_task.apply_async(
                kwargs={"run_id": run.pk},
                task_id=run.celery_task_id,
                countdown=countdown,
            )
    except Exception as exc:
        reason = _("The task could not be sent to the broker: %(error)s") % {
            "error": f"{type(exc).__name__}: {exc}"
        }
        if countdown is not None:
            # A retry's message: the sweep dispatches due retries anyway.
            logger.warning("retry message of run %s not sent: %s", run.pk, exc)
            return
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
        run_slot_release(connector_id=run.project.connector_id, token=run.lock_token)
        run.refresh_from_db()
        raise DispatchFailed(reason, run=run) from exc
    if countdown is None:
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
    if previous != ImportRun.Status.RUNNING:
        # A running run's worker gives its slot back when it stops.
        _run_slot_free(locked)
    return locked


def _run_slot_free(run: ImportRun) -> None:
    connector_id = Project.objects.values_list("connector_id", flat=True).get(
        pk=run.project_id
    )
    run_slot_free(connector_id=connector_id, token=run.lock_token)


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
        _run_slot_free(run)
    return {"run": run, "lock_released": released}
