"""What the sweep frees that nobody owns any more: project locks and
connector slots whose run is over (their release was lost), and staging
tables a killed worker left behind.

Each step is safe to run in several processes at once: a lock or a lease is
released only with its owner's token, a table dropped only when its run has
ended.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from imports.loading import STAGE_TABLE, TableStage, Target, stages_present
from imports.locks import (
    connector_slot_leases,
    connector_slots_for_id,
    lock_token_run_id,
    project_lock,
    project_locks_held,
)
from imports.models import ImportRun, Project
from imports.services.guard import DISPATCH_GRACE_SECONDS
from locking import LockingUnavailable

logger = logging.getLogger("imports.services.sweep")


def locks_release_orphaned() -> int:
    """Release project locks whose owner is no active run.

    A lock younger than the dispatch grace may belong to a request that has
    not committed its run yet; it is left alone (it expires by itself).
    """
    released = 0
    try:
        for project_id, owner, left in project_locks_held():
            if left <= DISPATCH_GRACE_SECONDS:
                continue
            if (
                ImportRun.objects.active()
                .filter(project_id=project_id, lock_token=owner)
                .exists()
            ):
                continue
            # Compare-and-delete: only that owner's lock goes.
            if project_lock(project_id, token=owner).release():
                released += 1
                logger.warning("released orphaned lock of project %s", project_id)
    except LockingUnavailable:
        pass
    return released


def _lease_orphaned(token: str, left: float, run) -> bool:
    """Whether a slot lease belongs to no run that may still hold it.

    A run that ended never needs its lease again (a retry is a new attempt
    that takes a new one); its worker gives the lease back a moment after
    the run's end commits, so the sweep waits a lease's length (a renewed
    lease has expired by then) and frees only what that release missed: a
    lease with the dispatch TTL. A lease naming no run row may be a request
    between its take and its commit, which follows at once: it counts as
    lost only once it is older than the dispatch grace (taken with the
    dispatch TTL, ``left`` tells its age); a lease with less than the grace
    left expires by itself soon. Waiting and retrying runs are left alone:
    a promotion takes the lease just before the run moves to queued.
    """
    if run is not None:
        status, lock_token, finished_at = run
        if lock_token != token:
            return True  # a reaped attempt's: the next one has a new token
        settled = timezone.now() - timedelta(seconds=settings.IMPORTHUB_LEASE_SECONDS)
        return status in ImportRun.FINAL_STATUSES and (
            finished_at is None or finished_at < settled
        )
    if lock_token_run_id(token) is None:
        return False  # not a run's token: somebody else's lease
    dispatch_ttl = settings.IMPORTHUB_DISPATCH_LOCK_SECONDS
    return DISPATCH_GRACE_SECONDS < left <= dispatch_ttl - DISPATCH_GRACE_SECONDS


def slots_release_orphaned() -> int:
    """Give back connector slots still leased to runs that ended.

    A run's end gives its slot back, but not when Redis was unreachable at
    that moment or a failover lost the write: the lease would then stay
    until its TTL ran out (the dispatch TTL, an hour by default, for a run
    that never started), with the connector's waiting runs stuck behind it.
    """
    released = 0
    try:
        leases = list(connector_slot_leases())
        if not leases:
            return 0
        runs = {
            pk: row
            for pk, *row in ImportRun.objects.filter(
                pk__in={lock_token_run_id(token) for _c, token, _l in leases} - {None}
            ).values_list("pk", "status", "lock_token", "finished_at")
        }
        for connector_id, token, left in leases:
            run = runs.get(lock_token_run_id(token))
            if not _lease_orphaned(token, left, run):
                continue
            if connector_slots_for_id(connector_id).release(token):
                released += 1
                logger.warning(
                    "released orphaned slot of connector %s (token %s)",
                    connector_id,
                    token,
                )
    except LockingUnavailable:
        pass
    return released


def _destination_stages() -> list:
    """The staging tables in other databases that projects' tables land in."""
    found = []
    projects = Project.objects.filter(
        layout=Project.Layout.TABLE, destination__isnull=False
    ).order_by("destination_id", "pk")
    seen = set()
    for project in projects.select_related("destination"):
        if project.destination_id in seen:
            continue
        seen.add(project.destination_id)
        try:
            target = Target(project)
            names = target.db.introspection.table_names()
        except Exception:  # noqa: BLE001 - unreachable: try at the next sweep
            logger.warning("destination %s unreachable", project.destination_id)
            continue
        for name in names:
            if match := STAGE_TABLE.match(name):
                found.append((int(match.group(1)), TableStage(target, 0, table=name)))
    return found


def stages_drop_orphaned() -> int:
    """Drop staging tables whose run is over (left by a killed worker)."""
    stages = stages_present() + _destination_stages()
    if not stages:
        return 0
    active = set(
        ImportRun.objects.filter(pk__in=[run_id for run_id, _stage in stages])
        .exclude(status__in=ImportRun.FINAL_STATUSES)
        .values_list("pk", flat=True)
    )
    # A paused worker may still hold its table (its COPY is open): never
    # wait for it, try again at the next sweep.
    return sum(
        stage.drop_unless_busy() for run_id, stage in stages if run_id not in active
    )
