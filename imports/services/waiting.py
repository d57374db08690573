"""Runs waiting for a connector slot, and their promotion when one frees.

When every slot of a connector that queues is taken, the run is ``waiting``
(it still holds its project's lock). It starts by itself, oldest first across
all of the connector's projects, the moment a slot frees: whoever frees a
slot calls ``run_slot_free()``, and the sweep promotes too, in case that
process died first. Nobody relaunches a waiting run by hand.
"""

import logging

from django.conf import settings

from connectors.messages import Message, gettext_noop
from connectors.models import Connector
from imports import actors
from imports.locks import project_lock
from imports.models import ImportRun
from imports.services.dispatch import import_run_dispatch
from imports.services.selectors import connector_runs_holding_slots
from imports.services.slots import (
    connector_slot_free,
    run_slot_acquire,
    run_slot_release,
)
from imports.services.transitions import PROMOTE
from locking import LockingUnavailable

logger = logging.getLogger(__name__)

SCHEDULER = actors.SCHEDULER


def run_slot_free(*, connector_id: int, token: str) -> None:
    """Give back a run's slot and start whoever waits for one; never fails."""
    run_slot_release(connector_id=connector_id, token=token)
    try:
        connector_waiting_promote(connector_id=connector_id)
    except Exception:
        logger.exception("promoting the waiting runs of connector %s", connector_id)


def runs_wait(runs: list[ImportRun], *, hold: bool = True) -> None:
    """After waiting runs' commit: hold their projects (``hold``: their locks
    were taken with a grace TTL), and promote where a slot freed meanwhile.

    A slot may have freed between the take and the commit; only then is
    there anything to promote. That is checked once per connector, not once
    per run: a beat tick can leave thousands of runs waiting on one.
    """
    connectors = {}
    for run in runs:
        connectors.setdefault(run.project.connector_id, run.project.connector)
        if not hold:
            continue
        lock = project_lock(run.project_id, token=run.lock_token)
        try:
            if not lock.extend(settings.IMPORTHUB_DISPATCH_LOCK_SECONDS):
                lock.acquire(fence_floor=run.fencing_token or 0)
        except LockingUnavailable:
            logger.warning("could not extend the lock of waiting run %s", run.pk)
    for connector in connectors.values():
        if connector_slot_free(connector=connector):
            connector_waiting_promote(connector_id=connector.pk)


def connector_waiting_promote(*, connector_id: int, limit: int = 100) -> list[int]:
    """Start the oldest waiting runs of a connector while slots are free.

    Returns the ids of the runs it dispatched. Safe to call from several
    processes at once: a run moves from waiting to queued only once.
    """
    connector = Connector.objects.filter(pk=connector_id).first()
    if connector is None:
        return []
    # Runs that hold a slot in the database's eyes (the start checks the
    # same): with Redis's leases lost, only these are counted.
    room = connector.max_concurrent_imports - connector_runs_holding_slots(
        connector_id=connector_id
    )
    if room <= 0:
        return []
    promoted = []
    waiting = (
        ImportRun.objects.filter(
            status=ImportRun.Status.WAITING, project__connector_id=connector_id
        )
        .select_related("project__connector")
        .order_by("created_at", "id")[: min(limit, room)]
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
        moved = PROMOTE.apply(
            run,
            actor=SCHEDULER,
            message=Message(
                gettext_noop("A slot of the connector freed; the run is dispatched.")
            ),
            guards={"lock_token": run.lock_token},
            dispatched_at=None,
        )
        if not moved:
            # Promoted by another process (same token: the lease is its), or
            # cancelled meanwhile: then the slot is given back.
            run.refresh_from_db(fields=["status"])
            if run.status in ImportRun.FINAL_STATUSES:
                run_slot_release(connector_id=connector_id, token=run.lock_token)
            continue
        try:
            import_run_dispatch(run=run)
        except Exception:
            logger.exception("dispatch of promoted run %s failed", run.pk)
            continue
        promoted.append(run.pk)
    return promoted
