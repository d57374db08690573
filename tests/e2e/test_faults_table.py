"""Faults during a typed load: the table stays as it was; a retry resumes.

The same faults as ``test_faults.py`` (a killed worker, a database cut),
for projects whose data land in a typed table.
"""

import time

import psycopg
import pytest

from imports.models import ImportRun, ImportRunEvent, Project
from tests.conftest import wait_for
from tests.e2e.test_faults import (
    backends,
    database_url,
    imported,
    request,
    sweep_until,
)
from tests.imports.loading.table_helpers import table_rows

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.slow,
]

MERGE = "WITH changed AS"


def names(project) -> dict:
    found: dict = {}
    for row in table_rows(project):
        found[row["name"]] = found.get(row["name"], 0) + 1
    return found


def test_sigkill_mid_merge_is_reaped_and_the_retry_resumes(
    make_project, write_csv, start_worker, settings
):
    rows = 100_000
    project = make_project(max_retries=1, layout=Project.Layout.TABLE)
    imported(project, write_csv, [(i, "old", i) for i in range(rows)], "data.csv")
    write_csv([(i, "new", i) for i in range(rows)], name="data.csv")
    victim = start_worker()
    run = request(project)
    wait_for(lambda: backends(MERGE), timeout=120, interval=0.01)
    victim.kill()
    killed_at = time.monotonic()
    assert names(project) == {"old": rows}
    start_worker()
    run = sweep_until(
        lambda: ImportRun.objects.finished().filter(pk=run.pk).first(),
        timeout=settings.IMPORTHUB_LEASE_SECONDS + 120,
        message="the retry did not finish",
    )
    assert time.monotonic() - killed_at <= settings.IMPORTHUB_LEASE_SECONDS + 120
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert run.attempt == 2
    assert (run.rows_read, run.rows_inserted, run.rows_updated) == (rows, 0, rows)
    kinds = set(run.events.values_list("kind", flat=True))
    assert {ImportRunEvent.Kind.REAPED, ImportRunEvent.Kind.RESUMED} <= kinds
    assert names(project) == {"new": rows}


@pytest.mark.parametrize(
    "statement, resumes",
    [('COPY "import_stage_', False), (MERGE, True)],
    ids=["during-extract", "during-merge"],
)
def test_database_cut_during_a_typed_load_is_transient(
    make_project, write_csv, start_worker, statement, resumes
):
    rows = 100_000
    path = write_csv([(i, "x", i) for i in range(rows)])
    project = make_project(
        source={"path": str(path)}, max_retries=2, layout=Project.Layout.TABLE
    )
    # A first import, so that the merge is the upsert (WITH changed AS ...).
    imported(project, write_csv, [(i, "y", i) for i in range(rows)], "first.csv")
    project.source = {"path": str(path)}
    project.save()
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
    assert (run.rows_read, run.rows_updated) == (rows, rows)
    kinds = list(run.events.values_list("kind", flat=True))
    assert ImportRunEvent.Kind.RETRY_SCHEDULED in kinds
    assert (ImportRunEvent.Kind.RESUMED in kinds) is resumes
    assert names(project) == {"x": rows}
