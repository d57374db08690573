"""The guard: the one way an import is requested.

Every entry point (admin, commands, beat, the HTTP API and direct calls of the
Celery tasks) ends here, so the rule "at most one active import per project,
and no second one ever dispatched" is enforced in one place, in this order:

1. The Redis lock ``project:<id>`` is taken in one round trip. A busy
   project is rejected here, before the database or the broker is touched.
2. The run is written. The partial unique index ``one_active_run_per_project``
   refuses a second active run even if Redis lost the lock (flush, failover),
   and that refusal becomes the same ``ProjectBusy``.
3. After the transaction commits, the lock's TTL is raised from a short grace
   to the queued lease and the task is published (``dispatch.py``). If
   publishing fails the run is failed with the reason and the lock released:
   nothing is left behind.

Why the lock starts with a short grace TTL: if the caller's transaction rolls
back, ``on_commit`` never runs and nobody would release the lock; with the
grace it frees itself within seconds instead of blocking the project.
"""

import logging
import uuid

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from connectors.models import Connector
from imports.exceptions import (
    ConnectorBusy,
    LockServiceUnavailable,
    ProjectBusy,
    ProjectNotImportable,
)
from imports.locks import project_lock, project_lock_owner, stat_incr
from imports.models import ImportRun, ImportRunEvent, Project
from imports.services.dispatch import import_run_dispatch
from imports.services.events import import_run_event_record
from imports.services.selectors import project_active_run, project_fence_floor
from imports.services.slots import run_slot_acquire, run_slot_release
from imports.services.transitions import run_request_build
from imports.services.waiting import SCHEDULER, run_wait
from imports.validation import project_settings_errors
from locking import LockingUnavailable

logger = logging.getLogger(__name__)

# How long the lock lives between the take and the commit of the run.
DISPATCH_GRACE_SECONDS = 60.0


def _reject_busy(project: Project, *, active: ImportRun | None = None) -> ProjectBusy:
    if active is None:
        active = project_active_run(project_id=project.pk)
    # A rejection is an expected outcome, not an error: one INFO line and a
    # counter; no row is written for it.
    stat_incr("rejected_busy")
    logger.info(
        "import rejected: project busy",
        extra={"project_id": project.pk, "run_id": active.pk if active else None},
    )
    return ProjectBusy(project.pk, active_run_id=active.pk if active else None)


def _lock_of_a_finished_run_freed(project: Project) -> bool:
    """Free the project's lock if the run that holds it has already ended.

    A worker marks its run final, then releases the lock: for those few
    milliseconds the project is not busy, and a request must not be refused
    with no active run to show. Only a lock whose owner is a finished run of
    this project is freed (compare-and-delete with that owner's token); a
    lock whose run is not written yet (a request in flight) stays.
    """
    owner = project_lock_owner(project.pk)
    if owner is None:
        return True  # released meanwhile: try again
    finished = (
        ImportRun.objects.finished()
        .filter(project_id=project.pk, lock_token=owner)
        .exists()
    )
    if not finished or not project_lock(project.pk, token=owner).release():
        return False
    # Its slot lease goes with it (the worker is about to give both back).
    run_slot_release(connector_id=project.connector_id, token=owner)
    return True


def _unavailable(exc: LockingUnavailable) -> LockServiceUnavailable:
    return LockServiceUnavailable(
        _("The lock service (Redis) is unreachable: %(error)s") % {"error": exc}
    )


def project_importable_check(*, project: Project) -> None:
    """Refuse a project that is switched off or whose settings are invalid.

    Raises:
        ProjectNotImportable: with every reason, in words an operator reads.
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


def import_run_request(
    *,
    project: Project,
    requested_by: str,
    trigger: str,
    retry_of: ImportRun | None = None,
    confirm_deletions: bool = False,
    full_refresh: bool = False,
    reason: str = "",
) -> ImportRun:
    """Accept an import of ``project`` and dispatch it, or refuse it.

    Returns the new run, queued (its task is published when the surrounding
    transaction commits; at once when there is none) or waiting for a slot.
    ``confirm_deletions`` lets a replace run delete more than the project's
    deletion limit. ``full_refresh`` makes an incremental project read its
    whole source and start its cursor anew (the run holds the project's
    lock, so the reset happens under it); ``reason`` is recorded with it.

    Raises:
        ProjectBusy: the project already has an active import.
        ConnectorBusy: every slot is taken and the connector rejects.
        ProjectNotImportable: the project or its connector is switched off.
        LockServiceUnavailable: Redis cannot be reached.
        DispatchFailed: the broker refused the task; the run is failed.
    """
    project_importable_check(project=project)
    connector = project.connector

    lock = project_lock(project.pk, token=uuid.uuid4().hex, ttl=DISPATCH_GRACE_SECONDS)
    try:
        fence = lock.acquire(fence_floor=project_fence_floor(project_id=project.pk))
        if fence is None:
            active = project_active_run(project_id=project.pk)
            if active is not None or not _lock_of_a_finished_run_freed(project):
                raise _reject_busy(project, active=active)
            fence = lock.acquire(fence_floor=project_fence_floor(project_id=project.pk))
    except LockingUnavailable as exc:
        raise _unavailable(exc) from exc
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
        raise _unavailable(exc) from exc
    if not has_slot and connector.when_busy == Connector.WhenBusy.REJECT:
        lock.release()
        stat_incr("rejected_connector_busy")
        raise ConnectorBusy(connector, limit=connector.max_concurrent_imports)

    try:
        with transaction.atomic():
            run = run_request_build(
                project=project,
                waiting=not has_slot,
                trigger=trigger,
                requested_by=requested_by,
                retry_of=retry_of,
                fencing_token=fence,
                lock_token=lock.token,
                celery_task_id=str(uuid.uuid4()),
                deletions_confirmed=confirm_deletions,
                full_refresh=full_refresh,
            )
            # The foreign keys are the caller's objects: no query to check
            # that they exist; the database's constraints hold anyway.
            run.full_clean(exclude=["project", "retry_of"], validate_constraints=False)
            run.save()
            _record_request(
                run, connector=connector, requested_by=requested_by, reason=reason
            )
            if has_slot:
                transaction.on_commit(
                    lambda: import_run_dispatch(run=run), robust=False
                )
            else:
                transaction.on_commit(lambda: run_wait(run=run), robust=False)
    except IntegrityError:
        lock.release()
        if has_slot:
            run_slot_release(connector_id=connector.pk, token=lock.token)
        if ImportRun.objects.active().filter(project_id=project.pk).exists():
            raise _reject_busy(project)
        raise
    return run


def _record_request(
    run: ImportRun, *, connector: Connector, requested_by: str, reason: str = ""
) -> None:
    import_run_event_record(
        run=run,
        kind=ImportRunEvent.Kind.REQUESTED,
        actor=requested_by,
        message=_("Import requested (%(trigger)s).")
        % {"trigger": run.get_trigger_display()},
        data={
            "trigger": run.trigger,
            "retry_of": run.retry_of_id,
            **({"confirm_deletions": True} if run.deletions_confirmed else {}),
            **({"full_refresh": True} if run.full_refresh else {}),
            **({"reason": reason[:500]} if reason else {}),
        },
    )
    if run.status == ImportRun.Status.WAITING:
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.WAITING,
            actor=SCHEDULER,
            message=_(
                "All %(limit)s slots of connector “%(name)s” are taken; "
                "the run starts by itself when one frees."
            )
            % {"limit": connector.max_concurrent_imports, "name": connector.name},
        )
