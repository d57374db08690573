"""Every status change of an import run, each a named transition.

This module is the only code that writes ``ImportRun.status``. A transition
states the statuses it leaves, the status it enters, the fields it may write
and the event it records, and is applied as one conditional UPDATE (``WHERE
pk = … AND status IN (sources) AND <guards>``) plus its event, in one
transaction. The UPDATE's row count is the verdict: 0 means another process
changed the run first (a cancel, a reaper, a duplicate message), and then no
event is written either. Callers add guards such as the attempt's fencing
token or lock token, so a superseded worker can never move a run.

The life of a run, and the transition for each arrow::

    (new) ─REQUEST─▶ queued ─START─▶ running ─SUCCEED─▶ succeeded
    (new) ─REQUEST─▶ waiting ─PROMOTE─▶ queued          ─FAIL/LOSE_LOCK─▶ failed
    queued|waiting|retrying ─WAIT─▶ waiting              ─RETRY─▶ retrying
    queued|waiting|retrying ─POSTPONE─▶ retrying         ─REAP_RETRY─▶ retrying
    queued|waiting|retrying ─REFUSE_START─▶ failed       ─REAP_FAIL─▶ failed
    queued ─DISPATCH_FAIL─▶ failed
    any active ─CANCEL─▶ cancelled, ─FORCE_UNLOCK─▶ failed
"""

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from connectors.messages import Message, message_fields
from imports.models import RUN_COUNT_FIELDS, ImportRun, ImportRunEvent
from imports.services.events import import_run_event_record
from imports.services.notifications import run_end_guarded

Status = ImportRun.Status
Kind = ImportRunEvent.Kind

# Counters a finished attempt writes with its final status.
COUNT_FIELDS = frozenset(RUN_COUNT_FIELDS)
ERROR_FIELDS = frozenset({"error_class", "error_message"})
ENDING_FIELDS = frozenset({"finished_at", "next_attempt_at"}) | ERROR_FIELDS


class TransitionNotAllowed(ValueError):
    """A transition was asked to leave a status it does not leave."""


@dataclass(frozen=True)
class Transition:
    """One arrow of the run's life: from ``sources`` to ``target``."""

    name: str
    sources: tuple[str, ...]
    target: str
    event: str
    fields: frozenset[str] = frozenset()
    # Set when the run enters a final status, if the caller did not.
    ends: bool = False

    def apply(
        self,
        run: ImportRun,
        *,
        actor: str,
        message: Message | str = "",
        data: dict[str, Any] | None = None,
        source: str | None = None,
        guards: dict[str, Any] | None = None,
        **values: Any,
    ) -> bool:
        """Move ``run`` along this transition; False if it was not in a source.

        ``source`` narrows the statuses left to the one the caller saw;
        ``guards`` are further conditions of the UPDATE (a fencing token, a
        lock token, a heartbeat). ``values`` are the fields written, each of
        which the transition must declare. On success the in-memory ``run``
        is updated too. ``message`` and ``error_message`` may be a
        ``Message``: stored as its id and parameters, shown in the reader's
        language.
        """
        unknown = set(values) - self.fields
        if unknown:
            raise TypeError(
                f"transition {self.name} does not write {', '.join(sorted(unknown))}"
            )
        sources = self.sources
        if source is not None:
            if source not in self.sources:
                raise TransitionNotAllowed(
                    f"transition {self.name} does not leave {source!r}"
                )
            sources = (source,)
        if "error_message" in values:
            values.update(
                message_fields(values.pop("error_message"), field="error_message")
            )
        if self.ends:
            values.setdefault("finished_at", timezone.now())
            values.setdefault("next_attempt_at", None)
        changes = {"status": self.target, **values}
        rows = ImportRun.objects.filter(pk=run.pk, status__in=sources, **(guards or {}))
        # No savepoint inside a caller's transaction: the event and the
        # update stand or fall with it.
        with transaction.atomic(savepoint=False):
            changed = rows.update(**changes)
            if changed:
                import_run_event_record(
                    run=run, kind=self.event, actor=actor, message=message, data=data
                )
                if self.ends:
                    # The outbox rows (and an auto-pause) commit with the
                    # final status, or not at all.
                    run_end_guarded(run=run, status=self.target, changes=changes)
        if changed:
            for name, value in changes.items():
                setattr(run, name, value)
        return bool(changed)

    def __str__(self) -> str:
        return f"{self.name}: {'|'.join(self.sources)} → {self.target}"


ACTIVE = ImportRun.ACTIVE_STATUSES
STARTABLE = ImportRun.STARTABLE_STATUSES

# A queued run whose message the broker refused.
DISPATCH_FAIL = Transition(
    "dispatch_fail",
    (Status.QUEUED,),
    Status.FAILED,
    Kind.DISPATCH_FAILED,
    ENDING_FIELDS,
    ends=True,
)
# Every slot is taken: the run waits, keeping its project's lock.
WAIT = Transition(
    "wait", STARTABLE, Status.WAITING, Kind.WAITING, frozenset({"next_attempt_at"})
)
# A slot freed for the oldest waiting run: it is dispatched.
PROMOTE = Transition(
    "promote",
    (Status.WAITING,),
    Status.QUEUED,
    Kind.PROMOTED,
    frozenset({"dispatched_at"}),
)
# A worker took the lock and a slot: the attempt runs under its fence.
START = Transition(
    "start",
    STARTABLE,
    Status.RUNNING,
    Kind.STARTED,
    frozenset({"started_at", "heartbeat_at", "fencing_token", "next_attempt_at"}),
)
# Redis was unreachable at the start: the attempt is tried again later.
POSTPONE = Transition(
    "postpone", STARTABLE, Status.RETRYING, Kind.RETRY_SCHEDULED, ENDING_FIELDS
)
# The project's lock is held by another owner: this run can never start.
REFUSE_START = Transition(
    "refuse_start", STARTABLE, Status.FAILED, Kind.LOCK_LOST, ENDING_FIELDS, ends=True
)
SUCCEED = Transition(
    "succeed",
    (Status.RUNNING,),
    Status.SUCCEEDED,
    Kind.SUCCEEDED,
    ENDING_FIELDS | COUNT_FIELDS | frozenset({"cursor_before", "cursor_after"}),
    ends=True,
)
# The run's data committed in its destination, but its worker died before
# the app recorded the end: the sweep finds the state row and follows it.
RECONCILE = Transition(
    "reconcile",
    (Status.RUNNING,),
    Status.SUCCEEDED,
    Kind.RECONCILED,
    ENDING_FIELDS | COUNT_FIELDS,
    ends=True,
)
FAIL = Transition(
    "fail",
    (Status.RUNNING,),
    Status.FAILED,
    Kind.FAILED,
    ENDING_FIELDS | COUNT_FIELDS,
    ends=True,
)
# The attempt lost its lock or its fence: it stops and writes nothing.
LOSE_LOCK = Transition(
    "lose_lock",
    (Status.RUNNING,),
    Status.FAILED,
    Kind.LOCK_LOST,
    ENDING_FIELDS | COUNT_FIELDS,
    ends=True,
)
# A transient failure with attempts left: the next one is due after a backoff.
RETRY = Transition(
    "retry",
    (Status.RUNNING,),
    Status.RETRYING,
    Kind.RETRY_SCHEDULED,
    ENDING_FIELDS | {"attempt"},
)
# The reaper found the worker lost; the next attempt gets a new lock token.
REAP_RETRY = Transition(
    "reap_retry",
    (Status.RUNNING,),
    Status.RETRYING,
    Kind.REAPED,
    ENDING_FIELDS | {"attempt", "lock_token"},
)
REAP_FAIL = Transition(
    "reap_fail", (Status.RUNNING,), Status.FAILED, Kind.REAPED, ENDING_FIELDS, ends=True
)
CANCEL = Transition(
    "cancel", ACTIVE, Status.CANCELLED, Kind.CANCELLED, ENDING_FIELDS, ends=True
)
FORCE_UNLOCK = Transition(
    "force_unlock", ACTIVE, Status.FAILED, Kind.UNLOCKED, ENDING_FIELDS, ends=True
)

TRANSITIONS: tuple[Transition, ...] = (
    DISPATCH_FAIL,
    WAIT,
    PROMOTE,
    START,
    POSTPONE,
    REFUSE_START,
    SUCCEED,
    FAIL,
    LOSE_LOCK,
    RETRY,
    REAP_RETRY,
    REAP_FAIL,
    CANCEL,
    FORCE_UNLOCK,
)


def run_request_build(
    *,
    project,
    waiting: bool,
    trigger: str,
    requested_by: str,
    retry_of: ImportRun | None,
    fencing_token: int,
    lock_token: str,
    celery_task_id: str,
    **extra: Any,
) -> ImportRun:
    """A new run in its first status (REQUEST), not yet saved.

    The guard saves it: the row's INSERT is where the partial unique index
    ``one_active_run_per_project`` refuses a second active run.
    """
    now = timezone.now()
    return ImportRun(
        project=project,
        status=Status.WAITING if waiting else Status.QUEUED,
        trigger=trigger,
        requested_by=requested_by[:150],
        retry_of=retry_of,
        fencing_token=fencing_token,
        lock_token=lock_token,
        celery_task_id=celery_task_id,
        created_at=now,
        dispatched_at=None if waiting else now,
        **extra,
    )
