"""Accepting the runs the lock store admitted: build them, write them with
their first events in one statement, and settle what the database refused.

The guard (``guard.py``) decides which projects may import; this module
turns its admissions into committed rows. The database refuses a run when
the project has an active one already (the partial unique index: Redis was
flushed or failed over) or when the run's fencing token is not above the
project's highest (Redis lost its counter): the first is the same
``ProjectBusy``, the second re-takes the lock with that floor and writes the
run again. Whatever is not written gives its lock and slot back.
"""

import logging
import uuid

from django.utils.translation import gettext as _

from connectors.messages import Choice, Message, gettext_noop, message_fields
from imports.exceptions import ConnectorBusy, LockServiceUnavailable, ProjectBusy
from imports.locks import admissions_decide, lock_token_run_id
from imports.models import ImportRun, ImportRunEvent, Project
from imports.services.run_rows import ids_reserved, runs_insert
from imports.services.selectors import project_active_run
from imports.services.transitions import run_request_build
from imports.services.waiting import SCHEDULER
from locking import LockingUnavailable
from locking.admission import Admitted, Held

logger = logging.getLogger(__name__)

# How often a run refused by the fence floor is written again.
FLOOR_ATTEMPTS = 3


def busy_refusal(project: Project, *, holder: str | None = None) -> ProjectBusy:
    """The refusal of a busy project, naming the run that holds it.

    The run is the one the lock's token names. A token that names none (a
    lock taken by hand, or by a database that assigns ids only on insert)
    is looked up in the database where ids are not reserved; otherwise the
    request is in flight and has no run to show yet.
    """
    active_run_id = lock_token_run_id(holder)
    if active_run_id is None and not ids_reserved():
        active = project_active_run(project_id=project.pk)
        active_run_id = active.pk if active else None
    # A rejection is an expected outcome, not an error: it is answered to
    # the caller and counted by the script that refused (the metrics'
    # ``rejected_busy``); no row is written, and the log line is DEBUG (beat
    # refuses every busy project on every tick).
    logger.debug(
        "import rejected: project busy",
        extra={"project_id": project.pk, "run_id": active_run_id},
    )
    return ProjectBusy(project.pk, active_run_id=active_run_id)


def unavailable_refusal(exc: LockingUnavailable) -> LockServiceUnavailable:
    return LockServiceUnavailable(
        _("The lock service (Redis) is unreachable: %(error)s") % {"error": exc}
    )


def run_build(
    project: Project,
    *,
    retry_of: ImportRun | None,
    run_id: int | None,
    admitted: Admitted,
    token: str,
    requested_by: str,
    trigger: str,
    **extra,
) -> ImportRun:
    """The new run of an admitted request (not saved; ``runs_write`` saves
    it). Its values are the guard's own, bounded where they are built; the
    trigger was checked before any lock was taken."""
    run = run_request_build(
        project=project,
        waiting=not admitted.slot,
        trigger=trigger,
        requested_by=requested_by,
        retry_of=retry_of,
        fencing_token=admitted.fence,
        lock_token=token,
        celery_task_id=str(uuid.uuid4()),
        **extra,
    )
    run.pk = run_id
    return run


def runs_write(runs, admissions, outcomes, *, requested_by: str, reason: str) -> None:
    """Write the admitted runs (one statement), re-taking the locks of those
    the fence floor refused; record each run or refusal in ``outcomes``."""
    todo = dict(runs)
    for _attempt in range(FLOOR_ATTEMPTS):
        if not todo:
            return
        indexes = list(todo)
        events = [
            event
            for index in indexes
            for event in _request_events(
                todo[index], requested_by=requested_by, reason=reason
            )
        ]
        try:
            written = runs_insert([todo[index] for index in indexes], events)
        except Exception:
            admissions_release([admissions[index] for index in todo])
            raise
        floors = {}
        for index, result in zip(indexes, written, strict=True):
            run = todo.pop(index)
            if result.inserted:
                outcomes[index].run = run
            elif result.floor >= (run.fencing_token or 0):
                floors[index] = (run, result.floor)
            else:
                admissions_release([admissions[index]])
                active = project_active_run(project_id=run.project_id)
                outcomes[index].error = ProjectBusy(
                    run.project_id, active_run_id=active.pk if active else None
                )
        if floors:
            todo.update(_retake(floors, admissions, outcomes))
    for index, run in todo.items():
        admissions_release([admissions[index]])
        outcomes[index].error = unavailable_refusal(
            LockingUnavailable(f"the fence of project {run.project_id} stays behind")
        )


def _retake(floors, admissions, outcomes) -> dict[int, ImportRun]:
    """Re-take the locks of runs whose fence the database refused, raising
    each fence counter to its floor first; the runs to write again."""
    retaken = {}
    for index, (_run, floor) in floors.items():
        admissions[index].fence_floor = floor
    try:
        decided = admissions_decide([admissions[index] for index in floors])
    except LockingUnavailable as exc:
        for index in floors:
            outcomes[index].error = unavailable_refusal(exc)
        return retaken
    for (index, (run, _floor)), outcome in zip(floors.items(), decided, strict=True):
        if isinstance(outcome, Admitted):
            run.fencing_token = outcome.fence
            retaken[index] = run
        elif isinstance(outcome, Held):
            outcomes[index].error = busy_refusal(run.project, holder=outcome.holder)
        else:
            connector = run.project.connector
            outcomes[index].error = ConnectorBusy(
                connector, limit=connector.max_concurrent_imports
            )
    return retaken


def admissions_release(admissions) -> None:
    """Give back what admissions took (a run that was not written)."""
    for admission in admissions:
        token = admission.lock.token
        try:
            admission.lock.release()
        except LockingUnavailable:
            logger.warning("could not release lock %s", admission.lock.name)
        if admission.slots is not None:
            try:
                admission.slots.release(token)
            except LockingUnavailable:
                logger.warning("could not release a slot of %s", admission.slots.name)


def _request_events(
    run: ImportRun, *, requested_by: str, reason: str = ""
) -> list[ImportRunEvent]:
    """The events a new run starts its log with (not saved)."""
    events = [
        ImportRunEvent(
            run=run,
            kind=ImportRunEvent.Kind.REQUESTED,
            actor=requested_by,
            **message_fields(
                Message(
                    gettext_noop("Import requested (%(trigger)s)."),
                    trigger=Choice("imports.ImportRun.trigger", run.trigger),
                )
            ),
            data={
                "trigger": run.trigger,
                "retry_of": run.retry_of_id,
                **({"confirm_deletions": True} if run.deletions_confirmed else {}),
                **({"full_refresh": True} if run.full_refresh else {}),
                **({"reason": reason[:500]} if reason else {}),
            },
        )
    ]
    if run.status == ImportRun.Status.WAITING:
        connector = run.project.connector
        events.append(
            ImportRunEvent(
                run=run,
                kind=ImportRunEvent.Kind.WAITING,
                actor=SCHEDULER,
                **message_fields(
                    Message(
                        gettext_noop(
                            "All %(limit)s slots of connector “%(name)s” are "
                            "taken; the run starts by itself when one frees."
                        ),
                        limit=connector.max_concurrent_imports,
                        name=connector.name,
                    )
                ),
            )
        )
    return events
