"""Connector slots: queue or reject when every slot is taken."""

from datetime import timedelta

import pytest
from django.utils import timezone

from connectors.models import Connector
from imports.exceptions import ConnectorBusy
from imports.locks import connector_slots, project_lock_owner
from imports.models import ImportRun, ImportRunEvent
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from imports.services.operations import import_run_cancel

pytestmark = pytest.mark.django_db(transaction=True)


def request(project):
    return import_run_request(project=project, requested_by="t", trigger="command")


@pytest.fixture
def one_slot(make_connector):
    return make_connector(max_concurrent_imports=1)


def test_full_connector_queues_the_run_as_waiting(one_slot, make_project, published):
    """With every slot taken, a queue connector accepts the run as waiting."""
    first = request(make_project(connector=one_slot))
    second_project = make_project(connector=one_slot)
    second = request(second_project)
    assert (first.status, second.status) == (
        ImportRun.Status.QUEUED,
        ImportRun.Status.WAITING,
    )
    assert published() == 1  # nothing is sent for a waiting run
    # A waiting run still holds its project's lock: the project is busy.
    assert project_lock_owner(second_project.pk) == second.lock_token
    message = second.events.get(kind=ImportRunEvent.Kind.WAITING).message
    assert "1" in message and one_slot.name in message


def test_waiting_run_starts_by_itself_when_a_slot_frees(
    one_slot, make_project, write_csv, published
):
    """When the running import ends, the oldest waiting run is dispatched."""
    path = write_csv([(1, "a", 1)])
    first = request(make_project(connector=one_slot, source={"path": str(path)}))
    second = request(make_project(connector=one_slot, source={"path": str(path)}))
    third = request(make_project(connector=one_slot, source={"path": str(path)}))
    import_run_execute(run_id=first.pk)
    second.refresh_from_db()
    third.refresh_from_db()
    assert second.status == ImportRun.Status.QUEUED  # first come, first served
    assert third.status == ImportRun.Status.WAITING
    assert published() == 2
    assert second.events.filter(kind=ImportRunEvent.Kind.PROMOTED).exists()
    import_run_execute(run_id=second.pk)
    import_run_execute(run_id=third.pk)
    assert set(
        ImportRun.objects.filter(pk__in=[first.pk, second.pk, third.pk]).values_list(
            "status", flat=True
        )
    ) == {ImportRun.Status.SUCCEEDED}
    assert connector_slots(one_slot).count() == 0


def test_cancelling_a_waiting_run_frees_its_place(one_slot, make_project):
    """A cancelled waiting run never starts, and holds no slot."""
    request(make_project(connector=one_slot))
    waiting = request(make_project(connector=one_slot))
    import_run_cancel(run=waiting, cancelled_by="op")
    assert connector_slots(one_slot).count() == 1


def test_reject_connector_refuses_with_its_name_and_limit(make_connector, make_project):
    """A reject connector refuses the request and leaves nothing behind."""
    connector = make_connector(
        name="CRM API", max_concurrent_imports=1, when_busy=Connector.WhenBusy.REJECT
    )
    request(make_project(connector=connector))
    project = make_project(connector=connector)
    with pytest.raises(ConnectorBusy) as excinfo:
        request(project)
    message = str(excinfo.value)
    assert "CRM API" in message and "1" in message
    assert not ImportRun.objects.filter(project=project).exists()
    assert project_lock_owner(project.pk) is None
    assert connector_slots(connector).count() == 1


def test_raised_limit_takes_effect_at_once(one_slot, make_project):
    """More slots on the connector: the next request runs instead of waiting."""
    request(make_project(connector=one_slot))
    one_slot.max_concurrent_imports = 2
    one_slot.save()
    second = request(make_project(connector=one_slot))
    assert second.status == ImportRun.Status.QUEUED


def test_slot_limit_holds_when_redis_lost_the_leases(
    one_slot, make_project, write_csv, redis_prefix
):
    """After Redis lost every lease (flush), a second run of a 1-slot
    connector does not start while the first is running: it waits."""
    from imports.locks import redis_client

    path = write_csv([(1, "a", 1)])
    first = request(make_project(connector=one_slot, source={"path": str(path)}))
    ImportRun.objects.filter(pk=first.pk).update(status=ImportRun.Status.RUNNING)
    client = redis_client()
    client.delete(*client.keys(f"{redis_prefix}sem:*"))  # the leases are gone
    second = request(make_project(connector=one_slot, source={"path": str(path)}))
    assert second.status == ImportRun.Status.QUEUED  # Redis had a free slot
    assert import_run_execute(run_id=second.pk) is None
    second.refresh_from_db()
    assert second.status == ImportRun.Status.WAITING
    assert "limit 1" in second.events.filter(kind="waiting").last().message
    assert connector_slots(one_slot).count() == 0  # its lease given back


def test_a_slot_whose_release_was_lost_is_freed_by_the_sweep(
    one_slot, make_project, write_csv, settings
):
    """A run ended while Redis could not hear its slot's release (a failover
    lost the write): the sweep gives the slot back and the connector's
    waiting run starts, instead of waiting out the hour-long dispatch TTL."""
    from imports.services.orphans import slots_release_orphaned
    from imports.services.sweep import runs_sweep

    settings.IMPORTHUB_DISPATCH_LOCK_SECONDS = 3600
    path = write_csv([(1, "a", 1)])
    first = request(make_project(connector=one_slot, source={"path": str(path)}))
    waiting = request(make_project(connector=one_slot, source={"path": str(path)}))
    assert waiting.status == ImportRun.Status.WAITING
    # The run failed; its slot's release never reached Redis.
    ImportRun.objects.filter(pk=first.pk).update(
        status=ImportRun.Status.FAILED, finished_at=timezone.now()
    )
    assert [token for token, _left in connector_slots(one_slot).holders()] == [
        first.lock_token
    ]
    # Its worker may still be about to give the slot back: not yet.
    assert slots_release_orphaned() == 0
    ImportRun.objects.filter(pk=first.pk).update(
        finished_at=timezone.now()
        - timedelta(seconds=settings.IMPORTHUB_LEASE_SECONDS + 1)
    )
    runs_sweep()
    waiting.refresh_from_db()
    assert waiting.status == ImportRun.Status.QUEUED
    assert [token for token, _left in connector_slots(one_slot).holders()] == [
        waiting.lock_token
    ]
    assert slots_release_orphaned() == 0  # a live run's lease is kept


def test_the_sweep_keeps_slots_of_requests_in_flight(one_slot, make_project, settings):
    """Leases no run row names yet: a request between its take and its
    commit is kept; one taken with the dispatch TTL longer ago than the grace
    (its request died before writing the run) is freed."""
    from imports.locks import run_lock_token
    from imports.services.guard import DISPATCH_GRACE_SECONDS
    from imports.services.orphans import slots_release_orphaned

    settings.IMPORTHUB_DISPATCH_LOCK_SECONDS = 3600
    slots = connector_slots(one_slot, ttl=3600)
    in_flight = run_lock_token(10**9)
    assert slots.acquire(token=in_flight, limit=5)
    deferred = run_lock_token(10**9 + 1)
    assert connector_slots(one_slot, ttl=DISPATCH_GRACE_SECONDS).acquire(
        token=deferred, limit=5
    )
    foreign = "not-a-run"
    assert slots.acquire(token=foreign, limit=5)
    assert slots_release_orphaned() == 0
    dead = run_lock_token(10**9 + 2)
    assert connector_slots(one_slot, ttl=3600 - DISPATCH_GRACE_SECONDS - 1).acquire(
        token=dead, limit=5
    )
    assert slots_release_orphaned() == 1
    assert {token for token, _left in slots.holders()} == {in_flight, deferred, foreign}
