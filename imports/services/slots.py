"""Connector slots: leases in a Redis semaphore, and the runs waiting for one.

A run takes a slot of its connector with its lock token before it may run.
When every slot is taken, a connector that queues keeps the run ``waiting``
(it still holds its project's lock) and starts it, oldest first across all
of the connector's projects, the moment a slot frees: whoever frees a slot
calls ``connector_waiting_promote()``, and the sweep calls it too in case
that process died first. Nobody relaunches a waiting run by hand.
"""

import logging

from django.conf import settings

from connectors.models import Connector
from imports.locks import connector_slots, connector_slots_for_id
from imports.models import ImportRun, ImportRunEvent
from imports.services.events import import_run_event_record
from locking import LockingUnavailable

logger = logging.getLogger(__name__)


def run_slot_acquire(*, connector: Connector, token: str, ttl: float) -> bool:
    """Take (or keep) a slot for ``token``; False when all are taken.

    The limit is read from the connector as it is now, so a changed
    ``max_concurrent_imports`` takes effect at once for new takes; holders
    above a lowered limit keep their leases until they release them.
    """
    slots = connector_slots(connector, ttl=ttl)
    return (
        slots.acquire(token=token, limit=connector.max_concurrent_imports) is not None
    )


def run_slot_extend(*, connector: Connector, token: str, ttl: float) -> bool:
    return connector_slots(connector, ttl=ttl).extend(token, ttl)


def run_slot_release(*, connector_id: int, token: str) -> None:
    """Give back a run's slot, if it holds one; never fails."""
    if not token:
        return
    try:
        connector_slots_for_id(connector_id).release(token)
    except LockingUnavailable:
        logger.warning("could not release a slot of connector %s", connector_id)


def run_slot_free(*, connector_id: int, token: str) -> None:
    """Give back a run's slot and start whoever waits for one; never fails."""
    run_slot_release(connector_id=connector_id, token=token)
    try:
        connector_waiting_promote(connector_id=connector_id)
    except Exception:
        logger.exception("promoting the waiting runs of connector %s", connector_id)


def connector_waiting_promote(*, connector_id: int, limit: int = 100) -> list[int]:
    """Start the oldest waiting runs of a connector while slots are free.

    Returns the ids of the runs it dispatched. Safe to call from several
    processes at once: a run moves from waiting to queued only once.
    """
    from imports.services.runs import import_run_dispatch

    try:
        connector = Connector.objects.get(pk=connector_id)
    except Connector.DoesNotExist:
        return []
    # Runs that hold a slot in the database's eyes (the start checks the
    # same): with Redis's leases lost, only these are counted.
    holding = ImportRun.objects.filter(
        status__in=(ImportRun.Status.RUNNING, ImportRun.Status.QUEUED),
        project__connector_id=connector_id,
    ).count()
    room = connector.max_concurrent_imports - holding
    if room <= 0:
        return []
    limit = min(limit, room)
    promoted = []
    waiting = (
        ImportRun.objects.filter(
            status=ImportRun.Status.WAITING, project__connector_id=connector_id
        )
        .select_related("project__connector")
        .order_by("created_at", "id")[:limit]
    )
    for run in waiting:
        try:
            taken = run_slot_acquire(
                connector=connector,
                token=run.lock_token,
                ttl=settings.IMPORTHUB_DISPATCH_LOCK_SECONDS,
            )
        except LockingUnavailable:
            logger.warning("cannot promote waiting runs: Redis is unreachable")
            break
        if not taken:
            break  # first come, first served: nobody overtakes the oldest
        moved = ImportRun.objects.filter(
            pk=run.pk, status=ImportRun.Status.WAITING, lock_token=run.lock_token
        ).update(status=ImportRun.Status.QUEUED, dispatched_at=None)
        if not moved:
            # Promoted by another process (same token: the lease is its), or
            # cancelled meanwhile: then the slot is given back.
            run.refresh_from_db(fields=["status"])
            if run.status in ImportRun.FINAL_STATUSES:
                run_slot_release(connector_id=connector_id, token=run.lock_token)
            continue
        run.status, run.dispatched_at = ImportRun.Status.QUEUED, None
        import_run_event_record(
            run=run,
            kind=ImportRunEvent.Kind.PROMOTED,
            actor="scheduler",
            message="A slot of the connector freed; the run is dispatched.",
        )
        try:
            import_run_dispatch(run=run)
        except Exception:
            logger.exception("dispatch of promoted run %s failed", run.pk)
            continue
        promoted.append(run.pk)
    return promoted
