"""The product's guard and every lock-store path of imports/locks.py on a
real Redis Cluster of three nodes (``REDIS_URL=redis+cluster://...``).

The projects' locks and the connectors' slots land in different hash slots,
so on several nodes: the guard decides each part where its keys are, and
listing the held locks scans every primary.
"""

import shutil

import pytest
from redis.cluster import RedisCluster

from connectors.models import Connector
from imports.exceptions import PROJECT_BUSY_MESSAGE, ConnectorBusy, ProjectBusy
from imports.locks import (
    beat_ticks_claim,
    connector_slots,
    project_lock_force_release,
    project_lock_owner,
    project_locks_held,
    redis_client,
    run_cancel_flag_set,
    run_cancel_requested,
    stat_get,
    stat_incr,
)
from imports.models import ImportRun
from imports.services.guard import RunRequest, import_run_request, import_runs_request
from tests.conftest import end_run
from tests.redis_topologies import local_cluster

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        shutil.which("redis-cli") is None, reason="redis-cli builds the cluster"
    ),
]


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory):
    with local_cluster(lambda: tmp_path_factory.mktemp("node")) as (_client, nodes):
        yield ",".join(f"127.0.0.1:{node.port}" for node in nodes), nodes


@pytest.fixture
def on_cluster(settings, cluster_url):
    """The product's lock store is the cluster for this test (the broker
    stays the suite's); the test's key prefix is deleted from it after."""
    hosts, nodes = cluster_url
    shared, settings.REDIS_URL = settings.REDIS_URL, f"redis+cluster://{hosts}"
    client = redis_client()
    yield client, nodes
    keys = list(client.scan_iter(match=f"{settings.IMPORTHUB_REDIS_PREFIX}*"))
    for key in keys:
        client.delete(key)
    settings.REDIS_URL = shared


def request(project):
    return import_run_request(project=project, requested_by="test", trigger="command")


def test_the_product_client_is_a_cluster_client(on_cluster):
    client, _nodes = on_cluster
    assert isinstance(client, RedisCluster)
    assert len(client.get_primaries()) == 3


def test_guard_accepts_refuses_busy_naming_the_run_and_releases(
    on_cluster, make_project, published
):
    """Accepted, then busy with the exact message and the active run named,
    then free again once the run ends: on a Cluster as on one server."""
    project = make_project()
    run = request(project)
    assert run.status == ImportRun.Status.QUEUED and run.fencing_token >= 1
    assert project_lock_owner(project.pk) == run.lock_token
    with pytest.raises(ProjectBusy) as excinfo:
        request(project)
    assert str(excinfo.value) == PROJECT_BUSY_MESSAGE.format(project_id=project.pk)
    assert excinfo.value.active_run_id == run.pk
    assert stat_get("rejected_busy") == 1
    end_run(run, ImportRun.Status.SUCCEEDED)
    assert project_lock_owner(project.pk) is None
    again = request(project)
    assert again.fencing_token > run.fencing_token  # the fence only grows
    assert published() == 2


def test_connector_slots_queue_and_reject_on_a_cluster(
    on_cluster, make_connector, make_project
):
    """A one-slot connector: the second project waits (queue) or is refused
    (reject), and the slot is counted where its keys live."""
    queueing = make_connector(max_concurrent_imports=1)
    first = request(make_project(connector=queueing))
    second = request(make_project(connector=queueing))
    assert first.status == ImportRun.Status.QUEUED
    assert second.status == ImportRun.Status.WAITING
    assert connector_slots(queueing).count() == 1
    rejecting = make_connector(
        max_concurrent_imports=1, when_busy=Connector.WhenBusy.REJECT
    )
    held = request(make_project(connector=rejecting))
    refused_project = make_project(connector=rejecting)
    with pytest.raises(ConnectorBusy):
        request(refused_project)
    # The refused project's lock was given back.
    assert project_lock_owner(refused_project.pk) is None
    assert stat_get("rejected_connector_busy") == 1
    end_run(held, ImportRun.Status.SUCCEEDED)
    assert connector_slots(rejecting).count() == 0
    assert request(refused_project).status == ImportRun.Status.QUEUED


def test_bulk_request_and_the_held_locks_scan_every_primary(
    on_cluster, make_connector, make_project
):
    """import_runs_request for 30 projects at once, a second time all busy;
    project_locks_held lists every lock although they are on three nodes."""
    client, nodes = on_cluster
    connector = make_connector(max_concurrent_imports=100)
    projects = [make_project(connector=connector) for _ in range(30)]
    outcomes = import_runs_request(
        requests=[RunRequest(p) for p in projects], requested_by="t", trigger="command"
    )
    assert all(o.error is None for o in outcomes), [o.error for o in outcomes]
    runs = {o.run.project_id: o.run for o in outcomes}
    again = import_runs_request(
        requests=[RunRequest(p) for p in projects], requested_by="t", trigger="command"
    )
    assert {type(o.error) for o in again} == {ProjectBusy}
    assert {o.error.active_run_id for o in again} == {r.pk for r in runs.values()}
    held = {project_id: token for project_id, token, _left in project_locks_held()}
    assert held == {pid: run.lock_token for pid, run in runs.items()}
    # The locks really are spread: every node holds some of them.
    holders = {
        client.get_node_from_key(client_key).name
        for client_key in client.scan_iter(match="*lock:{project:*")
    }
    assert len(holders) == 3 == len(nodes)
    assert project_lock_force_release(projects[0].pk) is True
    assert projects[0].pk not in {pid for pid, _t, _l in project_locks_held()}


def test_cancel_flags_beat_ticks_and_counters_on_a_cluster(on_cluster):
    """The other keys of imports/locks.py: one key each, any slot."""
    assert run_cancel_requested(101) is False
    run_cancel_flag_set(101)
    assert run_cancel_requested(101) is True
    ticks = [(f"entry-{i}", 30.0) for i in range(20)]  # over many slots
    assert beat_ticks_claim(ticks) == [True] * 20
    assert beat_ticks_claim(ticks) == [False] * 20
    stat_incr("cluster_test", 3)
    stat_incr("cluster_test")
    assert stat_get("cluster_test") == 4


def test_the_sweep_and_the_metrics_on_a_cluster(
    on_cluster, settings, make_connector, make_project, client
):
    """The sweep's orphan check finds a lock with no run behind it on any
    node and frees it (and no other); /metrics reads the slots and counters
    from the cluster."""
    from imports.locks import project_lock
    from imports.services.sweep import runs_sweep

    connector = make_connector(max_concurrent_imports=3)
    kept = request(make_project(connector=connector))
    orphans = [make_project(connector=connector) for _ in range(6)]
    for project in orphans:  # spread over the slots, so over the nodes
        lock = project_lock(project.pk, token=f"r{10**9 + project.pk}-x", ttl=600)
        assert lock.acquire(blocking=False)
    summary = runs_sweep()
    assert summary["locks_released"] == len(orphans)
    assert all(project_lock_owner(p.pk) is None for p in orphans)
    assert project_lock_owner(kept.project_id) == kept.lock_token
    settings.IMPORTHUB_METRICS_TOKEN = ""
    body = client.get("/metrics").content.decode()
    assert "importhub_redis_up 1.0" in body
    assert (
        f'importhub_connector_slots_in_use{{connector="{connector.pk}",'
        f'name="{connector.name}"}} 1.0'
    ) in body
