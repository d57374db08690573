"""The guard: the one way an import is requested.

Every entry point (admin, commands, beat, the HTTP API and direct calls of the
Celery tasks) ends here, so the rule "at most one active import per project,
and no second one ever dispatched" is enforced in one place. A request costs
one Redis round trip and, if accepted, one database round trip and the
publish; a request for many projects (a page of a selection, a beat tick)
costs the same, not once per project:

1. The run's id is reserved ahead (``run_rows``), so the lock's value can
   name the run. One script per project takes its lock ``project:<id>``
   and, in the same call, a slot of its connector (``locking.admission``);
   the scripts of all projects go in one pipelined round trip. A busy
   project is refused by that script, which also counts the refusal and
   returns the token of the lock's holder, and so the run that holds it:
   nothing is read from or written to the database for a refusal. (The
   project's settings are validated only once its lock is taken, so a busy
   project's refusal costs no validation either; an invalid one gives its
   lock and slot back.)
2. The accepted runs and their first events are written in one statement.
   The partial unique index ``one_active_run_per_project`` still refuses a
   second active run (Redis flushed, failed over), and that refusal becomes
   the same ``ProjectBusy``. The same statement refuses a fencing token not
   above the project's highest recorded one (Redis lost its counter); the
   lock is then re-taken with that floor and the run written again.
3. Once the runs are committed their tasks are published, over one producer
   connection (``dispatch.py``). A run the broker refuses is failed with the
   reason and its lock and slot released: nothing is left behind.

Outside a transaction the statement commits at once, so the lock is taken
with the queued lease right away. Inside the caller's transaction the lock
starts with a short grace TTL instead and is extended after the commit: if
the transaction rolls back, ``on_commit`` never runs and the lock frees
itself within seconds rather than blocking the project.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext as _

from connectors.messages import Message, gettext_noop
from connectors.models import Connector
from imports import tracing
from imports.exceptions import (
    ConnectorBusy,
    DispatchFailed,
    ImportRequestError,
    ProjectBusy,
    ProjectNotImportable,
    ProjectPaused,
)
from imports.locks import admissions_decide, project_admission, run_lock_token
from imports.models import ImportRun, Project
from imports.services.acceptance import (
    admissions_release,
    busy_refusal,
    run_build,
    runs_write,
    unavailable_refusal,
)
from imports.services.dispatch import runs_publish
from imports.services.run_rows import run_ids_give_back, run_ids_reserve
from imports.services.waiting import runs_wait
from imports.validation import project_settings_errors
from locking import LockingUnavailable
from locking.admission import Admitted, Full, Held

logger = logging.getLogger(__name__)

_TRIGGERS = frozenset(ImportRun.Trigger.values)
_REJECT = Connector.WhenBusy.REJECT

# How long the lock lives between the take and the commit of the run.
DISPATCH_GRACE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class RunRequest:
    """One project of a request, and the failed run it retries, if any."""

    project: Project
    retry_of: ImportRun | None = None


@dataclass(slots=True)
class RequestOutcome:
    """What became of one project of a request: its run, or the refusal."""

    project: Project
    run: ImportRun | None = None
    error: ImportRequestError | None = None


def project_importable_check(*, project: Project) -> None:
    """Refuse a project that is switched off, paused or whose settings are
    invalid.

    Raises:
        ProjectPaused: paused after failing too often (a ProjectNotImportable).
        ProjectNotImportable: with every reason, in words an operator reads.
    """
    project_switches_check(project=project)
    project_settings_check(project=project)


def project_switches_check(*, project: Project) -> None:
    """Refuse a project or connector that is switched off (no query)."""
    connector = project.connector
    if not project.is_active:
        raise ProjectNotImportable(
            Message(
                gettext_noop("Project %(id)s is inactive and accepts no imports."),
                id=project.pk,
            )
        )
    if project.paused_at is not None:
        raise ProjectPaused(project)
    if not connector.is_enabled:
        raise ProjectNotImportable(
            Message(
                gettext_noop(
                    "Connector “%(name)s” is disabled and accepts no imports."
                ),
                name=connector.name,
            )
        )


def project_settings_check(*, project: Project) -> None:
    """Refuse settings saved past the admin's form (a shell, a fixture):
    an invalid config never reaches a worker."""
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
    (outcome,) = import_runs_request(
        requests=[RunRequest(project, retry_of)],
        requested_by=requested_by,
        trigger=trigger,
        confirm_deletions=confirm_deletions,
        full_refresh=full_refresh,
        reason=reason,
    )
    if outcome.error is not None:
        raise outcome.error
    return outcome.run


def import_runs_request(
    *,
    requests: Sequence[RunRequest],
    requested_by: str,
    trigger: str,
    confirm_deletions: bool = False,
    full_refresh: bool = False,
    reason: str = "",
) -> list[RequestOutcome]:
    """Request an import of each project at once; one outcome each, in order.

    Each project is decided on its own, exactly as ``import_run_request``
    decides one: accepted (``run``), or refused (``error``: busy, connector
    busy, not importable, lock service unavailable, dispatch failed). A
    project named twice is accepted once. Nothing is raised for a refusal;
    a database error is raised, with every lock this call took released.

    With tracing on, the request is a span (``importhub.request``); the
    messages it publishes carry its context, so each run's attempts are
    traced as its children.
    """
    with tracing.span("importhub.request", trigger=trigger, projects=len(requests)):
        outcomes = _runs_request(
            requests=requests,
            requested_by=requested_by,
            trigger=trigger,
            confirm_deletions=confirm_deletions,
            full_refresh=full_refresh,
            reason=reason,
        )
        if tracing.tracing_enabled():
            _span_outcomes(outcomes)
        return outcomes


def _span_outcomes(outcomes: list[RequestOutcome]) -> None:
    current = tracing.span_current()
    runs = [outcome.run.pk for outcome in outcomes if outcome.run is not None]
    tracing.span_set(current, accepted=len(runs), refused=len(outcomes) - len(runs))
    if len(outcomes) == 1:
        (outcome,) = outcomes
        tracing.span_set(
            current,
            project_id=outcome.project.pk,
            run_id=runs[0] if runs else None,
            refusal=type(outcome.error).__name__ if outcome.error else None,
        )


def _runs_request(
    *,
    requests: Sequence[RunRequest],
    requested_by: str,
    trigger: str,
    confirm_deletions: bool,
    full_refresh: bool,
    reason: str,
) -> list[RequestOutcome]:
    if trigger not in _TRIGGERS:
        raise ValueError(f"Unknown trigger {trigger!r}")
    outcomes = [RequestOutcome(request.project) for request in requests]
    pending: list[int] = []
    seen: set[int] = set()
    for index, request in enumerate(requests):
        try:
            project_switches_check(project=request.project)
        except ProjectNotImportable as exc:
            outcomes[index].error = exc
            continue
        if request.project.pk in seen:
            outcomes[index].error = ProjectBusy(request.project.pk)
            continue
        seen.add(request.project.pk)
        pending.append(index)
    if not pending:
        return outcomes

    deferred = connection.in_atomic_block
    ttl = (
        DISPATCH_GRACE_SECONDS if deferred else settings.IMPORTHUB_DISPATCH_LOCK_SECONDS
    )
    ids = run_ids_reserve(len(pending))
    admissions = {}
    for index, run_id in zip(pending, ids, strict=True):
        project = requests[index].project
        admissions[index] = project_admission(
            project.pk,
            token=run_lock_token(run_id),
            ttl=ttl,
            connector=project.connector,
            reject_when_full=project.connector.when_busy == _REJECT,
        )
    try:
        decided = admissions_decide(list(admissions.values()))
    except LockingUnavailable as exc:
        for index in pending:
            outcomes[index].error = unavailable_refusal(exc)
        return outcomes

    runs: dict[int, ImportRun] = {}
    unused: list[int | None] = []
    for (index, admission), run_id, outcome in zip(
        admissions.items(), ids, decided, strict=True
    ):
        project = requests[index].project
        if not isinstance(outcome, Admitted):
            unused.append(run_id)
        if isinstance(outcome, Held):
            outcomes[index].error = busy_refusal(project, holder=outcome.holder)
        elif isinstance(outcome, Full):
            connector = project.connector
            outcomes[index].error = ConnectorBusy(
                connector, limit=connector.max_concurrent_imports
            )
        elif (invalid := _settings_refusal(project)) is not None:
            # Checked only now: a busy project's refusal costs no validation.
            admissions_release([admission])
            unused.append(run_id)
            outcomes[index].error = invalid
        else:
            runs[index] = run_build(
                project,
                retry_of=requests[index].retry_of,
                run_id=run_id,
                admitted=outcome,
                token=admission.lock.token,
                requested_by=requested_by,
                trigger=trigger,
                deletions_confirmed=confirm_deletions,
                full_refresh=full_refresh,
            )
    run_ids_give_back(unused)
    runs_write(runs, admissions, outcomes, requested_by=requested_by, reason=reason)
    accepted = [outcomes[index].run for index in runs if outcomes[index].run]
    if not accepted:
        return outcomes
    if deferred:
        # Published after the commit, under the request's trace context.
        context = tracing.context_current()
        transaction.on_commit(
            lambda: _after_commit(accepted, hold=True, context=context), robust=False
        )
    else:
        failed = _after_commit(accepted, hold=False)
        for index in runs:
            run = outcomes[index].run
            if run is not None and run.pk in failed:
                outcomes[index].error = failed[run.pk]
                outcomes[index].run = None
    return outcomes


def _settings_refusal(project: Project) -> ProjectNotImportable | None:
    try:
        project_settings_check(project=project)
    except ProjectNotImportable as exc:
        return exc
    return None


def _after_commit(
    runs: list[ImportRun], *, hold: bool, context=None
) -> dict[int, DispatchFailed]:
    """Publish the queued runs (one producer connection) and settle the
    waiting ones; return the runs the broker refused, by id.

    ``hold``: the locks were taken with the grace TTL, so they are raised to
    the queued lease first. Inside ``on_commit`` a refusal is raised.
    """
    queued = [run for run in runs if run.status == ImportRun.Status.QUEUED]
    with tracing.context_attached(context):
        failed = runs_publish(queued, hold=hold)
    waiting = [run for run in runs if run.status == ImportRun.Status.WAITING]
    if waiting:
        runs_wait(waiting, hold=hold)
    if hold and failed:
        raise next(iter(failed.values()))
    return failed
