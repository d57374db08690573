"""Connector slots: a run's lease in its connector's Redis semaphore.

A run takes a slot of its connector with its lock token before it may run,
keeps it alive with its renewer, and gives it back when it ends. These are
the leases only; the runs waiting for a slot are ``waiting.py``'s.
"""

import logging

from connectors.models import Connector
from imports.locks import connector_slots, connector_slots_for_id
from locking import LockingUnavailable

logger = logging.getLogger(__name__)


def run_slot_acquire(*, connector: Connector, token: str, ttl: float) -> bool:
    """Take (or keep) a slot for ``token``; False when all are taken.

    The limit is read from the connector as it is now, so a changed
    ``max_concurrent_imports`` takes effect at once for new takes; holders
    above a lowered limit keep their leases until they release them.

    Raises:
        LockingUnavailable: Redis cannot be reached.
    """
    slots = connector_slots(connector, ttl=ttl)
    return (
        slots.acquire(token=token, limit=connector.max_concurrent_imports) is not None
    )


def run_slot_extend(*, connector: Connector, token: str, ttl: float) -> bool:
    """Push a held slot's expiry ``ttl`` seconds ahead; False if not held."""
    return connector_slots(connector, ttl=ttl).extend(token, ttl)


def run_slot_release(*, connector_id: int, token: str) -> None:
    """Give back a run's slot, if it holds one; never fails."""
    if not token:
        return
    try:
        connector_slots_for_id(connector_id).release(token)
    except LockingUnavailable:
        logger.warning("could not release a slot of connector %s", connector_id)


def connector_slot_free(*, connector: Connector) -> bool:
    """Whether a slot of the connector is free now (False without Redis)."""
    try:
        return connector_slots(connector).count() < connector.max_concurrent_imports
    except LockingUnavailable:
        return False
