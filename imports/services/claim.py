"""Claiming a run on a worker: its lock, its slot, then the start.

Timeline of a claim, and what each check protects against::

    t0  message arrives   the run must still be startable (queued, waiting or
                          retrying): a redelivered or stale message finds it
                          running or finished and does nothing
    t1  lock re-taken     with the run's token; a new fencing token is
                          issued and recorded, so any older writer is fenced
    t2  slot taken        the connector's lease (already held when the run
                          was dispatched); none free: the run waits again
    t3  limit counted     under the connector's row lock, fewer than its
                          limit may be running: Redis's leases vanish with a
                          flush, the database's count does not
    t4  running           START, under the new fence

Anything but a start leaves the run waiting, retrying later or failed, with
its reason, and returns no attempt.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from connectors.messages import Message, gettext_noop
from connectors.models import Connector
from imports.locks import project_lock
from imports.models import ImportRun, ImportRunEvent
from imports.services.attempt import WORKER, Attempt, worker_identity
from imports.services.backoff import retry_delay
from imports.services.events import import_run_event_record
from imports.services.selectors import connector_runs_running, project_fence_floor
from imports.services.slots import run_slot_acquire, run_slot_release
from imports.services.transitions import POSTPONE, REFUSE_START, START, WAIT
from imports.services.waiting import connector_waiting_promote, run_slot_free
from locking import Lock, LockingUnavailable

logger = logging.getLogger(__name__)

# How long a starting run waits for its lock to be handed over (a guard
# request that lost the database race releases it within milliseconds).
LOCK_HANDOVER_SECONDS = 5.0


def run_is_startable(run: ImportRun) -> bool:
    """Whether a message for ``run`` may start an attempt; logs why not."""
    if run.status in ImportRun.STARTABLE_STATUSES:
        return True
    logger.info("stale message for run %s (%s) ignored", run.pk, run.status)
    if run.status == ImportRun.Status.RUNNING:
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.STALE_MESSAGE,
            actor=WORKER,
            message=Message(gettext_noop("A second message for this run was ignored.")),
        )
    return False


def run_claim(*, run: ImportRun) -> Attempt | None:
    """Take the run's lock and slot and start it; None if it did not start."""
    connector = run.project.connector
    previous = run.status
    lock = project_lock(run.project_id, token=run.lock_token)
    try:
        fence = lock.acquire(
            blocking=True,
            timeout=LOCK_HANDOVER_SECONDS,
            fence_floor=project_fence_floor(project_id=run.project_id),
        )
    except LockingUnavailable as exc:
        logger.warning("run %s cannot start: %s", run.pk, exc)
        return _postpone(run, previous, reason=exc)
    if fence is None:
        reason = Message(gettext_noop("The project lock is held by another owner."))
        REFUSE_START.apply(
            run,
            source=previous,
            guards={"lock_token": run.lock_token},
            actor=WORKER,
            message=reason,
            error_class="LockLost",
            error_message=reason,
        )
        run_slot_release(connector_id=connector.pk, token=run.lock_token)
        return None

    try:
        has_slot = run_slot_acquire(
            connector=connector,
            token=run.lock_token,
            ttl=settings.IMPORTHUB_LEASE_SECONDS,
        )
    except LockingUnavailable as exc:
        return _postpone(run, previous, reason=exc)
    if not has_slot:
        # Its lease ran out while it was queued, or it comes back from a
        # backoff, and every slot is taken: it waits (keeping its lock).
        if _wait(
            run,
            previous,
            message=Message(
                gettext_noop("All slots of connector “%(name)s” are taken; waiting."),
                name=connector.name,
            ),
        ):
            connector_waiting_promote(connector_id=connector.pk)
        return None
    return _start(run, previous, connector=connector, lock=lock, fence=fence)


def _start(
    run: ImportRun, previous: str, *, connector: Connector, lock: Lock, fence: int
) -> Attempt | None:
    now = timezone.now()
    with transaction.atomic():
        # The database's half of the slot limit, as the unique index is for
        # projects: Redis's leases vanish with a flush or a failover, and a
        # run still running then must keep its slot. Starts of one connector
        # are serialised by its row lock and counted here.
        limit = (
            Connector.objects.select_for_update()
            .filter(pk=connector.pk)
            .values_list("max_concurrent_imports", flat=True)
            .first()
        )
        running = connector_runs_running(connector_id=connector.pk)
        full = limit is not None and running >= limit
        if not full:
            started = START.apply(
                run,
                source=previous,
                guards={"lock_token": run.lock_token},
                actor=WORKER,
                message=_start_message(connector),
                data={
                    "fencing_token": fence,
                    "attempt": run.attempt,
                    "worker": worker_identity(),
                    **_start_audit(connector),
                },
                started_at=now,
                heartbeat_at=now,
                fencing_token=fence,
                next_attempt_at=None,
            )
    if full:
        _wait(
            run,
            previous,
            message=Message(
                gettext_noop(
                    "%(running)s runs of connector “%(name)s” are running (limit "
                    "%(limit)s); waiting."
                ),
                running=running,
                name=connector.name,
                limit=limit,
            ),
        )
        # Give back the lease this start took; the run keeps its lock.
        run_slot_release(connector_id=connector.pk, token=run.lock_token)
        return None
    if not started:
        # Cancelled (or started by a duplicate message) between the read and
        # the start: this message is done. A final run frees what it held.
        run.refresh_from_db()
        if run.status in ImportRun.FINAL_STATUSES:
            lock.release()
            run_slot_free(connector_id=connector.pk, token=run.lock_token)
        return None
    return Attempt(run=run, fence=fence, connector_id=connector.pk, lock=lock)


def _start_audit(connector: Connector) -> dict:
    """What the start records about risks the connector's owner accepted."""
    if (connector.config or {}).get("allow_privileged_role") is True:
        return {"privileged_role_allowed": True}
    return {}


def _start_message(connector: Connector) -> Message | str:
    if _start_audit(connector):
        return Message(
            gettext_noop(
                "Connector “%(name)s” allows a privileged database role "
                "(allow_privileged_role); the source is read with it."
            ),
            name=connector.name,
        )
    return ""


def _wait(run: ImportRun, previous: str, *, message: Message) -> bool:
    return WAIT.apply(
        run,
        source=previous,
        guards={"lock_token": run.lock_token},
        actor=WORKER,
        message=message,
        next_attempt_at=None,
    )


def _postpone(run: ImportRun, previous: str, *, reason: Exception) -> None:
    """Redis is unreachable at start: try the attempt again after a backoff."""
    delay = retry_delay(attempt=run.attempt)
    POSTPONE.apply(
        run,
        source=previous,
        guards={"lock_token": run.lock_token},
        actor=WORKER,
        message=Message(
            gettext_noop("Cannot start: %(reason)s; trying again in %(delay)ss."),
            reason=reason,
            delay=round(delay, 1),
        ),
        data={"error_class": "LockingUnavailable", "delay": round(delay, 3)},
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
    )
    return None
