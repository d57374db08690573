"""Fault injection with real processes: killed, paused and cut-off workers.

Each test runs workers of its own on a queue of its own, and plays beat by
calling the sweep itself, so that the timing is the test's to reason about.
"""

import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest
import redis
from django.conf import settings as django_settings

from imports.locks import connector_slots
from imports.models import ImportRun, ImportRunEvent, Record
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from imports.services.sweep import runs_sweep
from tests.conftest import LOGS, ROOT, WorkerProcess, wait_for
from tests.locking.conftest import PrivateRedis

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.brokers,
]


def database_url() -> str:
    db = django_settings.DATABASES["default"]
    return (
        f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


def backends(query_prefix: str) -> list[int]:
    """Pids of the server backends running a statement that starts so."""
    with psycopg.connect(database_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' "
            "AND datname = current_database() "
            "AND query LIKE %s AND pid <> pg_backend_pid()",
            [query_prefix + "%"],
        ).fetchall()
    return [row[0] for row in rows]


def request(project) -> ImportRun:
    return import_run_request(project=project, requested_by="test", trigger="command")


def imported(project, write_csv, rows, name) -> None:
    """Give the project records from an import done in this process."""
    path = write_csv(rows, name=name)
    project.source = {"path": str(path)}
    project.save()
    run = request(project)
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message


def sweep_until(predicate, *, timeout: float, message: str):
    """Play beat: sweep about twice a second until ``predicate()`` holds."""

    def swept():
        runs_sweep()
        return predicate()

    return wait_for(swept, timeout=timeout, interval=0.5, message=message)


def test_sigkill_mid_load_is_reaped_and_the_retry_loads_exactly(
    make_project, write_csv, start_worker, settings
):
    """SIGKILL during the load: records unchanged, reaped within the lease,
    and the retry loads the staged data with exact counts."""
    rows = 100_000
    project = make_project(max_retries=1)
    imported(project, write_csv, [(i, "old", i) for i in range(rows)], "data.csv")
    write_csv([(i, "new", i) for i in range(rows)], name="data.csv")

    victim = start_worker()
    run = request(project)
    wait_for(lambda: backends("WITH changed AS"), timeout=120, interval=0.01)
    victim.kill()
    killed_at = time.monotonic()
    assert Record.objects.filter(project=project, data__name="new").count() == 0

    start_worker()
    sweep_until(
        lambda: ImportRun.objects.get(pk=run.pk).status != ImportRun.Status.RUNNING,
        timeout=settings.IMPORTHUB_LEASE_SECONDS + 10,
        message="the lost worker was not reaped",
    )
    assert time.monotonic() - killed_at <= settings.IMPORTHUB_LEASE_SECONDS + 5
    run = sweep_until(
        lambda: ImportRun.objects.finished().filter(pk=run.pk).first(),
        timeout=120,
        message="the retry did not finish",
    )
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert run.attempt == 2
    assert (run.rows_read, run.rows_inserted, run.rows_updated) == (rows, 0, rows)
    kinds = set(run.events.values_list("kind", flat=True))
    assert {ImportRunEvent.Kind.REAPED, ImportRunEvent.Kind.RESUMED} <= kinds
    assert Record.objects.filter(project=project, data__name="new").count() == rows


def test_sigstop_past_the_lease_cannot_commit(
    make_project, write_csv, start_worker, settings, tmp_path
):
    """A worker paused past its lease, then resumed, writes nothing: the
    records are those of the run that took the project meanwhile."""
    rows = 150_000
    project = make_project(max_retries=0)
    old_path = write_csv([(i, "paused", i) for i in range(rows)], name="old.csv")
    project.source = {"path": str(old_path)}
    project.save()

    paused = start_worker()
    first = request(project)
    wait_for(
        lambda: ImportRun.objects.get(pk=first.pk).rows_read > 0,
        timeout=60,
        interval=0.02,
    )
    os.killpg(paused.process.pid, signal.SIGSTOP)
    try:
        sweep_until(
            lambda: (
                ImportRun.objects.get(pk=first.pk).status == ImportRun.Status.FAILED
            ),
            timeout=settings.IMPORTHUB_LEASE_SECONDS + 15,
            message="the paused worker's run was not reaped",
        )
        new_path = write_csv([(i, "newer", i) for i in range(10)], name="new.csv")
        project.source = {"path": str(new_path)}
        project.save()
        start_worker()
        second = request(project)
        wait_for(
            lambda: ImportRun.objects.finished().filter(pk=second.pk).exists(),
            timeout=60,
        )
    finally:
        os.killpg(paused.process.pid, signal.SIGCONT)
    # The resumed worker finds its lock gone and its run over; wait until
    # it has given up (it drops its staging table on the way out).
    wait_for(
        lambda: (
            not backends("COPY import_stage_")
            and not ImportRun.objects.filter(pk=first.pk, status="running").exists()
        ),
        timeout=60,
    )
    time.sleep(2)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == ImportRun.Status.FAILED
    assert first.error_class == "WorkerLost"
    assert second.status == ImportRun.Status.SUCCEEDED
    assert second.fencing_token > first.fencing_token
    names = set(
        Record.objects.filter(project=project).values_list("data__name", flat=True)
    )
    assert names == {"newer"}


@pytest.mark.parametrize(
    "statement, resumes",
    [("COPY import_stage_", False), ("INSERT INTO imports_record", True)],
    ids=["during-extract", "during-load"],
)
def test_database_cut_is_transient(
    make_project, write_csv, start_worker, statement, resumes
):
    """The database drops the worker's connection (as on a restart) while it
    stages or loads: the run is retried; a cut load resumes from the stage."""
    rows = 100_000
    path = write_csv([(i, "x", i) for i in range(rows)])
    project = make_project(source={"path": str(path)}, max_retries=2)
    start_worker()
    run = request(project)
    pids = wait_for(lambda: backends(statement), timeout=120, interval=0.005)
    with psycopg.connect(database_url(), autocommit=True) as conn:
        for pid in pids:
            conn.execute("SELECT pg_terminate_backend(%s)", [pid])
    run = sweep_until(
        lambda: ImportRun.objects.finished().filter(pk=run.pk).first(),
        timeout=120,
        message="the run did not finish after the database cut",
    )
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert run.attempt == 2
    assert (run.rows_read, run.rows_inserted) == (rows, rows)
    kinds = list(run.events.values_list("kind", flat=True))
    assert ImportRunEvent.Kind.RETRY_SCHEDULED in kinds
    assert (ImportRunEvent.Kind.RESUMED in kinds) is resumes
    assert Record.objects.filter(project=project).count() == rows


@pytest.mark.brokers("redis")  # its own Redis is lock store and broker
def test_redis_flushed_mid_run_never_allows_a_second_run(
    make_project, write_csv, worker_env, tmp_path, settings
):
    """FLUSHALL during a run: a second request is still refused (by the
    database), and the running import ends cleanly one way or the other."""
    redis_server = PrivateRedis(str(tmp_path))
    redis_server.start()
    queue = f"flush-{uuid.uuid4().hex[:8]}"
    env = {
        **worker_env,
        "REDIS_URL": redis_server.url,
        "CELERY_BROKER_URL": redis_server.url,
        "IMPORTHUB_TASK_QUEUE": queue,
    }
    path = write_csv([(i, "x", i) for i in range(300_000)])
    project = make_project(source={"path": str(path)})
    worker = WorkerProcess(
        env=env, log_path=LOGS / "flush-worker.log", pool="solo"
    ).start()

    def command():
        return subprocess.run(
            [
                sys.executable,
                "manage.py",
                "import_projects",
                "--project",
                str(project.pk),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    try:
        assert command().returncode == 0
        run = ImportRun.objects.get(project=project)
        wait_for(
            lambda: ImportRun.objects.get(pk=run.pk).rows_read > 0,
            timeout=60,
            interval=0.02,
        )
        redis.Redis.from_url(redis_server.url).flushall()
        active_before = ImportRun.objects.get(pk=run.pk).is_active
        second = command()
        active_after = ImportRun.objects.get(pk=run.pk).is_active
        if active_before and active_after:
            assert second.returncode == 3, second.stdout + second.stderr
            assert "уже обновляется" in second.stdout
        run = wait_for(
            lambda: ImportRun.objects.finished().filter(pk=run.pk).first(), timeout=120
        )
        assert run.status in (ImportRun.Status.SUCCEEDED, ImportRun.Status.FAILED)
        if run.status == ImportRun.Status.FAILED:
            assert run.error_class == "LockLost", run.error_message
        assert ImportRun.objects.active().filter(project=project).count() <= 1
    finally:
        worker.stop()
        redis_server.stop()


def test_two_slots_ten_projects_start_by_themselves(
    make_connector, make_project, write_csv, start_worker
):
    """A connector with 2 slots, 10 projects at once: never more than 2
    running, and all 10 succeed with nobody relaunching anything."""
    connector = make_connector(max_concurrent_imports=2)
    path = write_csv([(i, "x", i) for i in range(20_000)])
    projects = [
        make_project(connector=connector, source={"path": str(path)}) for _ in range(10)
    ]
    start_worker(pool="prefork", concurrency=4)
    runs = [request(project) for project in projects]
    assert sum(run.status == ImportRun.Status.QUEUED for run in runs) == 2
    most_running = most_slots = 0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        statuses = list(
            ImportRun.objects.filter(pk__in=[r.pk for r in runs]).values_list(
                "status", flat=True
            )
        )
        most_running = max(most_running, statuses.count(ImportRun.Status.RUNNING))
        most_slots = max(most_slots, connector_slots(connector).count())
        if all(status == ImportRun.Status.SUCCEEDED for status in statuses):
            break
        assert not set(statuses) & {"failed", "cancelled"}, statuses
        time.sleep(0.02)
    else:
        pytest.fail(f"not all runs succeeded: {statuses}")
    assert most_running <= 2 and most_slots <= 2
    # And by the runs' own clocks: no instant had three of them running.
    spans = list(
        ImportRun.objects.filter(pk__in=[r.pk for r in runs]).values_list(
            "started_at", "finished_at"
        )
    )
    for start, _ in spans:
        overlapping = sum(1 for s, f in spans if s <= start < f)
        assert overlapping <= 2
    assert Record.objects.filter(project__connector=connector).count() == 10 * 20_000
