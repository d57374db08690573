"""A run's progress against its source's total, through the execution path."""

import datetime
import uuid

import pytest
from django.utils import timezone

from imports.models import ImportRun, Project
from imports.services import attempt as attempt_module
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from imports.services.progress import run_progress

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def updates(monkeypatch):
    """Every field set a run's attempt wrote, in order (the real writes)."""
    seen = []
    update = attempt_module.Attempt.update

    def spy(self, **fields):
        seen.append(fields)
        return update(self, **fields)

    monkeypatch.setattr(attempt_module.Attempt, "update", spy)
    return seen


@pytest.fixture
def every_batch(monkeypatch):
    """The pipeline reports after every batch instead of once a second."""
    from imports.loading import extract, table_extract

    monkeypatch.setattr(extract, "PROGRESS_SECONDS", 0)
    monkeypatch.setattr(table_extract, "PROGRESS_SECONDS", 0)


def execute(project) -> ImportRun:
    run = import_run_request(
        project=project, requested_by="tester", trigger=ImportRun.Trigger.COMMAND
    )
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    return run


@pytest.mark.parametrize("layout", [Project.Layout.RECORDS, Project.Layout.TABLE])
def test_csv_progress_counts_the_files_bytes(
    layout, make_project, write_csv, settings, updates, every_batch
):
    """A CSV run's total is the file's size; while it reads, the bytes read
    are stored below it; at the end, all of it."""
    settings.IMPORTHUB_BATCH_SIZE = 500
    path = write_csv([(i, "x" * 60, i) for i in range(30_000)])
    size = path.stat().st_size
    run = execute(make_project(source={"path": str(path)}, layout=layout))
    assert (run.progress_total, run.progress_done, run.progress_unit) == (
        size,
        size,
        "bytes",
    )
    partial = [
        u["progress_done"]
        for u in updates
        if "progress_done" in u and u["progress_done"] < size
    ]
    if layout == Project.Layout.RECORDS:
        # The row path reports after each batch: many partial positions.
        assert len(partial) > 3 and partial == sorted(partial)
    assert all(u.get("progress_total") == size for u in updates if "progress_done" in u)


def test_sql_progress_is_the_planners_estimate(
    make_connector, make_project, sql_source_url, sql_execute, updates, every_batch
):
    """An SQL run's total is the planner's row estimate while it reads, and
    the rows it read once the extraction ends."""
    table = f"t_{uuid.uuid4().hex[:8]}"
    sql_execute(f"CREATE TABLE {table} (id int PRIMARY KEY, name text)")
    sql_execute(
        f"INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(1, 4000) g"
    )
    sql_execute(f"ANALYZE {table}")
    # Rows the statistics do not know yet: the estimate falls short.
    sql_execute(
        f"INSERT INTO {table} SELECT g, 'n' || g FROM generate_series(4001, 4500) g"
    )
    connector = make_connector(kind="sql", config={"url": sql_source_url})
    project = make_project(
        connector=connector, source={"query": f"SELECT * FROM {table}"}
    )
    run = execute(project)
    assert run.rows_read == 4500
    assert (run.progress_total, run.progress_done, run.progress_unit) == (
        4500,
        4500,
        "rows",
    )
    # While it read, the planner's estimate was the total (the last update
    # is the end's, with the rows counted).
    reported = [u for u in updates if "progress_total" in u]
    assert len(reported) >= 2
    assert all(3500 <= u["progress_total"] <= 5500 for u in reported[:-1])
    assert reported[-1]["progress_total"] == 4500


def test_a_source_without_a_total_stores_none(make_project, write_csv, monkeypatch):
    from connectors.csv import CsvConnector

    monkeypatch.setattr(CsvConnector, "_progress_start", lambda self, raw: None)
    path = write_csv([(1, "a", 1)])
    run = execute(make_project(source={"path": str(path)}))
    assert (run.progress_total, run.progress_done, run.progress_unit) == (
        None,
        None,
        "",
    )


def make_run(**fields) -> ImportRun:
    now = timezone.now()
    fields.setdefault("status", ImportRun.Status.RUNNING)
    fields.setdefault("started_at", now - datetime.timedelta(seconds=100))
    return ImportRun(**fields)


class TestRunProgress:
    def test_percent_rate_and_time_left(self):
        run = make_run(rows_read=5000, progress_total=1000, progress_done=250)
        progress = run_progress(
            run, now=run.started_at + datetime.timedelta(seconds=100)
        )
        assert progress.percent == 25
        assert progress.rows_per_second == 50
        assert progress.remaining == datetime.timedelta(seconds=300)

    def test_without_a_total_only_the_rate(self):
        run = make_run(rows_read=1000)
        progress = run_progress(
            run, now=run.started_at + datetime.timedelta(seconds=10)
        )
        assert (progress.fraction, progress.remaining) == (None, None)
        assert progress.rows_per_second == 100

    def test_an_estimate_exceeded_stops_short_of_full(self):
        run = make_run(rows_read=1200, progress_total=1000, progress_done=1200)
        progress = run_progress(run)
        assert progress.percent == 99 and progress.remaining is not None

    def test_ended_runs(self):
        assert run_progress(make_run(status="succeeded")).percent == 100
        failed = make_run(status="failed", progress_total=10, progress_done=4)
        progress = run_progress(failed)
        assert (progress.percent, progress.remaining) == (40, None)


def test_the_bar_is_determinate_with_a_total():
    from imports.admin import display

    now = timezone.now()
    run = make_run(
        pk=1,
        rows_read=3000,
        progress_total=1000,
        progress_done=500,
        started_at=now - datetime.timedelta(seconds=60),
    )
    html = display.progress_bar(run)
    assert 'value="50.0" max="100"' in html
    assert "50%" in html and "50 rows/s" in html and "about 1:00 left" in html
    html = display.progress_bar(make_run(pk=2, rows_read=10))
    assert '<progress class="run-progress" title="10"></progress>' in html
