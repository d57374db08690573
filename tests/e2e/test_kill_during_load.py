"""A worker killed in the middle of the load leaves the data as they were."""

import psycopg
import pytest

from imports.models import ImportRun, ImportRunEvent, Record
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.conftest import LOGS, WorkerProcess, wait_for
from tests.imports.loading.table_helpers import table_rows

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.brokers,
]

ROWS = 200_000


def load_is_running(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
            "AND datname = current_database() AND query LIKE 'WITH changed AS%'"
        ).fetchone()
    return row[0] > 0


def names(project) -> dict[str, int]:
    """How many rows hold each name, in either layout."""
    if project.layout == "records":
        found = Record.objects.filter(project=project).values_list(
            "data__name", flat=True
        )
    else:
        found = [row["name"] for row in table_rows(project)]
    counted: dict[str, int] = {}
    for name in found:
        counted[name] = counted.get(name, 0) + 1
    return counted


@pytest.mark.parametrize("layout", ["records", "table"])
def test_sigkill_mid_load_changes_nothing(
    worker_env, make_project, write_csv, settings, layout, own_queue
):
    """SIGKILL during the merge: another connection sees the old data."""
    # A queue of its own (own_queue), so that only the worker killed here
    # can take it.
    path = write_csv([(i, "old", i) for i in range(ROWS)])
    project = make_project(source={"path": str(path)}, layout=layout)
    first = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=first.pk)
    assert names(project) == {"old": ROWS}

    write_csv([(i, "new", i) for i in range(ROWS)], name=path.name)
    worker = WorkerProcess(
        env={**worker_env, "IMPORTHUB_TASK_QUEUE": settings.IMPORTHUB_TASK_QUEUE},
        log_path=LOGS / f"celery-worker-killed-{layout}.log",
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
    assert names(project) == {"old": ROWS}
    run.refresh_from_db()
    assert run.status == ImportRun.Status.RUNNING  # until the reaper finds it
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.FAILED)
