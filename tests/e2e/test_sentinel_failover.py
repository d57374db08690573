"""Imports through Redis Sentinel failovers: the one rule still holds.

A master, a replica and three sentinels of the test's own on loopback
(``tests/redis_topologies.py``) are both the lock store and the broker
(``REDIS_URL=CELERY_BROKER_URL=sentinel://.../mymaster/0``) of a real
worker and of the guard in this process. While projects are requested over
and over, the master is failed over again and again, by ``SENTINEL
FAILOVER`` and by killing its process. Afterwards: no project ever had two
active runs, no connector ran more imports than its slots, and every run
ended with a reason (a failover may fail or delay runs, never double or
lose them). The figures are printed for the record.
"""

import threading
import time
from collections import Counter, defaultdict

import pytest
from celery import current_app
from django.db.models import Count, Q

from connectors.models import Connector
from imports.exceptions import ConnectorBusy, LockServiceUnavailable, ProjectBusy
from imports.locks import redis_client
from imports.models import ImportRun
from imports.services.guard import RunRequest, import_runs_request
from imports.services.sweep import runs_sweep
from locking.urls import kombu_sentinel_url, parse_redis_url
from tests.redis_topologies import sentinel_group

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.slow,
]

#: Failovers during the load, alternating the two ways a master goes.
FAILOVERS = ("sentinel", "kill", "sentinel", "kill")
SECONDS_BETWEEN_FAILOVERS = 6.0


@pytest.fixture
def sentinel(tmp_path, settings, monkeypatch):
    """The group, and this process's lock store and broker moved onto it
    (the Celery app's producer pool is rebuilt for the new broker URL;
    Celery reads the variable before its settings)."""
    with sentinel_group(tmp_path / "sentinel") as group:
        app = current_app
        saved = (
            app.conf.broker_url,
            app.conf.broker_transport_options,
            app.conf.broker_transport,
        )
        url, options = kombu_sentinel_url(parse_redis_url(group.url))
        monkeypatch.setenv("CELERY_BROKER_URL", url)
        app.conf.broker_url = url
        app.conf.broker_transport_options = {**saved[1], **options}
        app.conf.broker_transport = "config.sentinel_transport:SentinelTransport"
        app.amqp._producer_pool = None
        shared, settings.REDIS_URL = settings.REDIS_URL, group.url
        try:
            yield group
        finally:
            settings.REDIS_URL = shared
            (
                app.conf.broker_url,
                app.conf.broker_transport_options,
                app.conf.broker_transport,
            ) = saved
            app.amqp._producer_pool = None


def test_failovers_during_imports_never_break_the_one_rule(
    sentinel, make_connector, make_project, write_csv, start_worker, settings
):
    # The sweep (played here, as beat would) sends again a queued run whose
    # message a failover lost, after a few seconds rather than minutes.
    settings.IMPORTHUB_REDISPATCH_SECONDS = 3
    path = write_csv([(i, "x", i) for i in range(20_000)])
    queued = make_connector(max_concurrent_imports=2)
    rejecting = make_connector(
        max_concurrent_imports=1, when_busy=Connector.WhenBusy.REJECT
    )
    limits = {queued.pk: 2, rejecting.pk: 1}
    projects = [
        make_project(connector=queued, source={"path": str(path)}, max_retries=3)
        for _ in range(5)
    ] + [
        make_project(connector=rejecting, source={"path": str(path)}, max_retries=3)
        for _ in range(2)
    ]
    start_worker(
        pool="prefork",
        concurrency=3,
        env={
            "REDIS_URL": sentinel.url,
            "CELERY_BROKER_URL": sentinel.url,
            "IMPORTHUB_REDISPATCH_SECONDS": "3",
        },
    )

    took: list[tuple[str, float]] = []
    failover_errors: list[BaseException] = []

    def fail_over() -> None:
        try:
            for how in FAILOVERS:
                time.sleep(SECONDS_BETWEEN_FAILOVERS)
                took.append((how, sentinel.failover(kill=how == "kill")))
        except BaseException as exc:  # reported by the test thread
            failover_errors.append(exc)

    thread = threading.Thread(target=fail_over, daemon=True)
    thread.start()
    outcomes: Counter = Counter()
    most_running: dict[int, int] = defaultdict(int)
    two_active_samples = 0
    trials = 0
    last_sweep = 0.0
    while thread.is_alive() or trials == 0:
        for outcome in import_runs_request(
            requests=[RunRequest(p) for p in projects],
            requested_by="failover-test",
            trigger="command",
        ):
            trials += 1
            error = outcome.error
            outcomes[
                "accepted"
                if error is None
                else {
                    ProjectBusy: "busy",
                    ConnectorBusy: "connector_busy",
                    LockServiceUnavailable: "redis_unavailable",
                }.get(type(error), type(error).__name__)
            ] += 1
        running = ImportRun.objects.filter(status=ImportRun.Status.RUNNING)
        for row in running.values("project__connector").annotate(n=Count("id")):
            connector_id = row["project__connector"]
            most_running[connector_id] = max(most_running[connector_id], row["n"])
        two_active_samples += (
            ImportRun.objects.active()
            .values("project")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .count()
        )
        if time.monotonic() - last_sweep > 0.5:
            runs_sweep()
            last_sweep = time.monotonic()
        time.sleep(0.2)
    thread.join()
    assert not failover_errors, failover_errors

    deadline = time.monotonic() + 150
    active = ImportRun.objects.active().filter(project__in=projects)
    while active.exists():
        if time.monotonic() > deadline:
            pytest.fail(
                "runs still active: "
                f"{list(active.values_list('pk', 'status', 'attempt'))}"
            )
        runs_sweep()
        time.sleep(1)

    runs = list(ImportRun.objects.filter(project__in=projects).order_by("pk"))
    statuses = Counter(run.status for run in runs)
    # No second active run of a project: the active spans (accepted ..
    # finished) of one project's runs never overlap, and the fence only grows.
    overlaps = fence_violations = 0
    by_project = defaultdict(list)
    for run in runs:
        by_project[run.project_id].append(run)
    for project_runs in by_project.values():
        for before, after in zip(project_runs, project_runs[1:], strict=False):
            overlaps += after.created_at < before.finished_at
            fence_violations += after.fencing_token <= before.fencing_token
    over_limit = sum(
        most_running[connector_id] > limit for connector_id, limit in limits.items()
    )
    # Every run ends with a reason: a final status, and a message if failed.
    unexplained = [
        run.pk
        for run in runs
        if run.status not in ImportRun.Status.values
        or run.is_active
        or (run.status == ImportRun.Status.FAILED and not run.error_message)
    ]
    violations = (
        overlaps + fence_violations + over_limit + two_active_samples + len(unexplained)
    )
    print(
        f"\nsentinel failover: trials={trials} failovers={len(took)} "
        f"({', '.join(f'{how} {s:.1f}s' for how, s in took)}) "
        f"outcomes={dict(outcomes)} runs={len(runs)} statuses={dict(statuses)} "
        f"most_running={dict(most_running)} limits={limits} "
        f"overlaps={overlaps} fence_violations={fence_violations} "
        f"over_limit={over_limit} two_active_samples={two_active_samples} "
        f"unexplained={unexplained} violations={violations}"
    )
    assert len(took) == len(FAILOVERS)
    assert outcomes["accepted"] >= len(projects) * 2
    assert statuses[ImportRun.Status.SUCCEEDED] >= len(projects)
    assert violations == 0

    # The fence counter of the new master may lag the database's (a write
    # lost with the old master): the database's floor keeps it growing.
    project = projects[0]
    highest = max(r.fencing_token for r in by_project[project.pk])
    client = redis_client()
    fence_keys = list(client.scan_iter(match=f"*fence:{{project:{project.pk}}}"))
    assert fence_keys and client.delete(*fence_keys) == len(fence_keys)
    (outcome,) = import_runs_request(
        requests=[RunRequest(project)], requested_by="t", trigger="command"
    )
    assert outcome.error is None, outcome.error
    assert outcome.run.fencing_token > highest
    assert (
        ImportRun.objects.filter(
            Q(project=project) & ~Q(pk=outcome.run.pk), fencing_token__gte=highest + 1
        ).count()
        == 0
    )
