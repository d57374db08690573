"""Randomized faults against incremental imports: never a lost or a doubled row.

Each trial changes the source (new rows, updated rows with a newer cursor
value), then imports it with a fault injected at a random point, and lets
the run retry until it succeeds. Real faults, from real services:

- a source error on a random row (the query's function raises a
  serialization failure there: transient, as a source database would);
- the app's database cut mid-merge, after the rows are written and before
  the commit (a trigger on the table holds the merge there and its backend
  is terminated);
- none.

After every trial the destination must equal the source exactly: the
cursor commits with the data, so a fault can neither skip rows (a cursor
saved without its data) nor double them (the key is the primary key; the
counts are checked too).
"""

import os
import random
import threading
import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from imports.loading import Target
from imports.models import ImportRun, ImportRunEvent, Project
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request

from .table_helpers import table_rows

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TRIALS = int(os.environ.get("IMPORTHUB_INCREMENTAL_TRIALS", "200"))
QUERY = (
    "SELECT id, name, updated FROM items "
    "WHERE (%(cursor)s IS NULL OR updated > %(cursor)s) AND fault(id, %(fail)s)"
)


def app_url() -> str:
    db = settings.DATABASES["default"]
    return (
        f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )


class MergeCut:
    """Cut this process's database connection in the middle of its merge.

    A statement trigger on the project's table sleeps while a flag row is
    set, after the merge has written its rows and before it can commit;
    a watcher terminates the backend found sleeping there.
    """

    def __init__(self, project):
        self.project = project
        self.done = threading.Event()

    def __enter__(self):
        with psycopg.connect(app_url(), autocommit=True) as admin:
            admin.execute("INSERT INTO importhub_trial_slow VALUES (1)")
        self.thread = threading.Thread(target=self._cut, daemon=True)
        self.thread.start()
        return self

    def _cut(self):
        with psycopg.connect(app_url(), autocommit=True) as watcher:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not self.done.is_set():
                rows = watcher.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                    "AND datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchall()
                if rows:
                    # The retry's merge must not sleep: the flag goes first.
                    watcher.execute("DELETE FROM importhub_trial_slow")
                    for (pid,) in rows:
                        watcher.execute("SELECT pg_terminate_backend(%s)", [pid])
                    self.done.set()
                time.sleep(0.005)

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(timeout=30)
        with psycopg.connect(app_url(), autocommit=True) as admin:
            admin.execute("DELETE FROM importhub_trial_slow")


def slow_merges_allow(project) -> None:
    """The trigger ``MergeCut`` needs, on the project's table."""
    table = Target(project).qualified(Target(project).table)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS importhub_trial_slow (x int)")
        cursor.execute(
            "CREATE OR REPLACE FUNCTION importhub_trial_sleep() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN IF EXISTS (SELECT 1 FROM "
            "importhub_trial_slow) THEN PERFORM pg_sleep(2); END IF; "
            "RETURN NULL; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER importhub_trial_sleep AFTER INSERT OR UPDATE ON "
            f"{table} FOR EACH STATEMENT EXECUTE FUNCTION importhub_trial_sleep()"
        )


def import_until_done(project) -> ImportRun:
    run = import_run_request(project=project, requested_by="trial", trigger="command")
    for _attempt in range(10):
        import_run_execute(run_id=run.pk)
        run.refresh_from_db()
        if run.status in ImportRun.FINAL_STATUSES:
            return run
        connection.close()  # a cut connection is opened anew
    raise AssertionError(f"run {run.pk} did not end: {run.status}")


def test_randomized_faults_never_lose_or_double_a_row(
    make_connector, make_project, sql_source_url, sql_execute
):
    seed = int(os.environ.get("IMPORTHUB_TRIALS_SEED", random.randrange(1 << 30)))
    rnd = random.Random(seed)
    sql_execute("DROP TABLE IF EXISTS items")
    sql_execute("CREATE TABLE items (id int PRIMARY KEY, name text, updated int)")
    sql_execute(
        "CREATE OR REPLACE FUNCTION fault(id int, fail int) RETURNS boolean "
        "LANGUAGE plpgsql AS $$ BEGIN IF id = fail THEN RAISE EXCEPTION "
        "'injected' USING ERRCODE = '40001'; END IF; RETURN true; END $$"
    )
    connector = make_connector(kind="sql", config={"url": sql_source_url})
    project = make_project(
        connector=connector,
        layout=Project.Layout.TABLE,
        max_retries=5,
        source={"query": QUERY, "params": {"fail": 0}, "cursor": {"field": "updated"}},
    )
    sql_execute("INSERT INTO items VALUES (1, 'first', 1)")
    clock = 1
    source: dict[int, tuple[str, int]] = {1: ("first", 1)}
    assert import_until_done(project).status == ImportRun.Status.SUCCEEDED
    slow_merges_allow(project)
    faults = {"none": 0, "source": 0, "merge": 0}
    for trial in range(TRIALS):
        committed = clock  # every row changed after this is read this trial
        for _ in range(rnd.randint(0, 6)):  # new rows
            clock += 1
            key = len(source) + 1
            source[key] = (f"n{trial}", clock)
            sql_execute("INSERT INTO items VALUES (%s, %s, %s)", [key, *source[key]])
        for key in rnd.sample(sorted(source), min(len(source), rnd.randint(0, 4))):
            clock += 1
            source[key] = (f"u{trial}", clock)
            sql_execute(
                "UPDATE items SET name = %s, updated = %s WHERE id = %s",
                [*source[key], key],
            )
        fault = rnd.choice(["none", "source", "merge"])
        changed = sorted(k for k, (_, at) in source.items() if at > committed)
        if fault == "source" and not changed:
            fault = "none"
        fail = rnd.choice(changed) if fault == "source" else 0
        project.source = {**project.source, "params": {"fail": fail}}
        project.save()
        if fault == "merge":
            with MergeCut(project) as cut:
                run = import_until_done(project)
            assert cut.done.is_set()
            # Cut after the rows were written: the retry loads the stage.
            assert run.attempt >= 2
            assert run.events.filter(kind=ImportRunEvent.Kind.RESUMED).exists()
        elif fail:
            # The first attempt meets the error; the source heals for the
            # retry, as a real one would.
            first = import_run_request(
                project=project, requested_by="trial", trigger="command"
            )
            import_run_execute(run_id=first.pk)
            first.refresh_from_db()
            assert first.status == ImportRun.Status.RETRYING, first.error_message
            project.source = {**project.source, "params": {"fail": 0}}
            project.save()
            import_run_execute(run_id=first.pk)
            run = ImportRun.objects.get(pk=first.pk)
        else:
            run = import_until_done(project)
        faults[fault] += 1
        assert run.status == ImportRun.Status.SUCCEEDED, (
            seed,
            trial,
            run.error_message,
        )
        landed = {r["id"]: (r["name"], r["updated"]) for r in table_rows(project)}
        assert landed == source, f"seed {seed}, trial {trial} ({fault})"
    assert min(faults.values()) > 0, faults
