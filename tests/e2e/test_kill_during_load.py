"""A worker killed in the middle of the load leaves the records as they were."""

import psycopg
import pytest

from imports.models import ImportRun, ImportRunEvent, Record
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.conftest import ARTIFACTS, WorkerProcess, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

ROWS = 200_000


def load_is_running(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND datname = current_database() AND query LIKE 'WITH changed AS%'"
        ).fetchone()
    return row[0] > 0


def test_sigkill_mid_load_changes_nothing(
    worker_env, make_project, write_csv, settings
):
    """SIGKILL during the merge: another connection sees the old records."""
    # A queue of its own, so that only the worker killed here can take it.
    settings.IMPORTHUB_TASK_QUEUE = f"{settings.IMPORTHUB_TASK_QUEUE}-kill"
    path = write_csv([(i, "old", i) for i in range(ROWS)])
    project = make_project(source={"path": str(path)})
    first = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=first.pk)
    assert Record.objects.filter(project=project, data__name="old").count() == ROWS

    write_csv([(i, "new", i) for i in range(ROWS)], name=path.name)
    worker = WorkerProcess(
        env={**worker_env, "IMPORTHUB_TASK_QUEUE": settings.IMPORTHUB_TASK_QUEUE},
        log_path=ARTIFACTS / "logs" / "celery-worker-killed.log",
        concurrency=1,
        pool="solo",
    ).start()
    db = settings.DATABASES["default"]
    url = worker_env["DATABASE_URL"].replace("postgres://", "postgresql://")
    try:
        run = import_run_request(project=project, requested_by="t", trigger="command")
        wait_for(
            lambda: ImportRunEvent.objects.filter(
                run=run, kind=ImportRunEvent.Kind.EXTRACTED
            ).exists(),
            timeout=120,
            interval=0.02,
            message="the run never finished extracting",
        )
        wait_for(lambda: load_is_running(url), timeout=30, interval=0.01)
        worker.kill()
    finally:
        worker.stop()
    assert db["NAME"] in url
    # The merge's transaction died with its connection: nothing changed.
    wait_for(lambda: not load_is_running(url), timeout=30)
    assert Record.objects.filter(project=project).count() == ROWS
    assert Record.objects.filter(project=project, data__name="new").count() == 0
    run.refresh_from_db()
    assert run.status == ImportRun.Status.RUNNING  # until the reaper finds it
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.FAILED)
