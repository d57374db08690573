"""Incremental imports with real workers killed mid-extract and mid-merge.

The cursor commits with the data in one transaction: whatever a SIGKILL
interrupts, the retry (on another worker, after the reaper) reads from the
cursor that committed, and the table ends equal to the source.
"""

import random

import psycopg
import pytest

from imports.models import ImportRun, Project
from tests.conftest import wait_for
from tests.e2e.test_faults import backends, database_url, request, sweep_until
from tests.imports.loading.table_helpers import table_rows
from tests.imports.loading.test_incremental_trials import slow_merges_allow

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.slow,
]

QUERY = (
    "SELECT id, name, updated FROM items "
    "WHERE (%(cursor)s IS NULL OR updated > %(cursor)s) AND slow(id)"
)


def test_sigkill_during_extract_and_merge_loses_and_doubles_nothing(
    make_connector, make_project, sql_source_url, sql_execute, start_worker, settings
):
    rnd = random.Random()
    sql_execute("DROP TABLE IF EXISTS items")
    sql_execute("CREATE TABLE items (id int PRIMARY KEY, name text, updated int)")
    sql_execute("CREATE TABLE IF NOT EXISTS slow_rows (id int)")
    sql_execute("GRANT SELECT ON slow_rows TO PUBLIC")
    sql_execute(
        "CREATE OR REPLACE FUNCTION slow(id int) RETURNS boolean LANGUAGE plpgsql "
        "AS $$ BEGIN IF EXISTS (SELECT 1 FROM slow_rows s WHERE s.id = slow.id) "
        "THEN PERFORM pg_sleep(3); END IF; RETURN true; END $$"
    )
    connector = make_connector(kind="sql", config={"url": sql_source_url})
    project = make_project(
        connector=connector,
        layout=Project.Layout.TABLE,
        max_retries=3,
        source={"query": QUERY, "cursor": {"field": "updated"}},
    )
    source = {i: (f"v0-{i}", i) for i in range(1, 201)}
    sql_execute(
        "INSERT INTO items SELECT g, 'v0-' || g, g FROM generate_series(1, 200) g"
    )
    clock = 200
    worker = start_worker()
    first = request(project)
    wait_for(
        lambda: ImportRun.objects.finished().filter(pk=first.pk).exists(), timeout=60
    )
    worker.stop()  # each trial's victim must be the only worker
    slow_merges_allow(project)
    for trial, phase in enumerate(["extract", "merge", "extract", "merge"]):
        changed = rnd.sample(sorted(source), 20)
        for key in changed:
            clock += 1
            source[key] = (f"v{trial + 1}-{key}", clock)
            sql_execute(
                "UPDATE items SET name = %s, updated = %s WHERE id = %s",
                [*source[key], key],
            )
        victim = start_worker()
        if phase == "extract":
            sql_execute("INSERT INTO slow_rows VALUES (%s)", [rnd.choice(changed)])
        else:
            with psycopg.connect(database_url(), autocommit=True) as admin:
                admin.execute("INSERT INTO importhub_trial_slow VALUES (1)")
        run = request(project)
        if phase == "extract":
            wait_for(lambda: backends('COPY "import_stage_'), timeout=60, interval=0.01)
        else:
            wait_for(
                lambda: backends("WITH changed AS") or backends('INSERT INTO "'),
                timeout=60,
                interval=0.01,
            )
        victim.kill()
        sql_execute("DELETE FROM slow_rows")
        with psycopg.connect(database_url(), autocommit=True) as admin:
            admin.execute("DELETE FROM importhub_trial_slow")
        healer = start_worker()
        run = sweep_until(
            lambda run_id=run.pk: (
                ImportRun.objects.finished().filter(pk=run_id).first()
            ),
            timeout=settings.IMPORTHUB_LEASE_SECONDS + 90,
            message=f"trial {trial} ({phase}) did not finish",
        )
        assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
        assert run.attempt >= 2, f"trial {trial}: the kill missed the run"
        landed = {r["id"]: (r["name"], r["updated"]) for r in table_rows(project)}
        assert landed == source, f"trial {trial} ({phase})"
        assert run.cursor_after["value"] == clock
        healer.stop()
