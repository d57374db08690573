"""The operators' operations on runs and projects: retry, cancel, unlock."""

import logging

from django.db import transaction
from django.utils.translation import gettext as _

from connectors.messages import Message, gettext_noop
from imports.exceptions import RunNotCancellable, RunNotRetryable
from imports.locks import project_lock, project_lock_force_release, run_cancel_flag_set
from imports.models import ImportRun, Project, ProjectEvent
from imports.services.guard import import_run_request
from imports.services.transitions import CANCEL, FORCE_UNLOCK
from imports.services.waiting import run_slot_free
from locking import LockingUnavailable

logger = logging.getLogger(__name__)


def import_run_retry(
    *, run: ImportRun, requested_by: str, confirm_deletions: bool = False
) -> ImportRun:
    """Start a new run of a failed or cancelled run's project, linked to it.

    Raises:
        RunNotRetryable: the run has not failed nor been cancelled.
        ProjectBusy: and every other error of ``import_run_request``.
    """
    if not run.is_retryable:
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
        confirm_deletions=confirm_deletions,
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
        if not locked.is_active:
            raise RunNotCancellable(
                _("Run %(id)s is %(status)s and cannot be cancelled.")
                % {"id": locked.pk, "status": locked.get_status_display()}
            )
        previous = locked.status
        CANCEL.apply(
            locked,
            source=previous,
            actor=cancelled_by,
            message=reason,
            data={"from": previous},
            error_class="Cancelled",
            error_message=(
                Message(
                    gettext_noop("Cancelled by %(who)s: %(reason)s"),
                    who=cancelled_by,
                    reason=reason,
                )
                if reason
                else Message(gettext_noop("Cancelled by %(who)s."), who=cancelled_by)
            ),
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

    Raises:
        ValueError: no reason was given.
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
        if run is not None:
            FORCE_UNLOCK.apply(
                run,
                source=run.status,
                actor=unlocked_by,
                message=reason,
                error_class="ForceUnlocked",
                error_message=Message(
                    gettext_noop("Force-unlocked by %(who)s: %(reason)s"),
                    who=unlocked_by,
                    reason=reason,
                ),
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
