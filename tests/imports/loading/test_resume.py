"""Resume: a retry after a transient failure goes on from the last checkpoint.

A paged API fails on page k: the retry re-fetches that page only, keeps the
rows already staged, and the counts and the table are as if nothing failed.
"""

import pytest
from django.db import connection

from imports.models import ImportRun, ImportRunEvent, Project
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.connectors.servers import LocalHttpServer, Reply

from .helpers import counts
from .table_helpers import table_rows

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = 6
PER_PAGE = 3


@pytest.fixture
def server():
    server = LocalHttpServer().start()
    yield server
    server.stop()


def paged(failing: set[int]):
    """Pages 1..PAGES of PER_PAGE records, then an empty page; the pages in
    ``failing`` answer 503 once."""

    def reply(request) -> Reply:
        page = int(request.query.get("page", 1))
        if page in failing:
            failing.discard(page)
            return Reply({"error": "busy"}, status=503)
        if page > PAGES:
            return Reply({"items": []})
        first = (page - 1) * PER_PAGE
        return Reply(
            {"items": [{"id": i, "name": f"n{i}"} for i in range(first, first + 3)]}
        )

    return reply


def first_attempt(make_connector, make_project, server):
    """A typed project of the paged API, and its run after a first attempt."""
    connector = make_connector(
        kind="http_json",
        config={"url": server.url("/"), "timeout_read": 5, "page_retries": 0},
    )
    project = make_project(
        connector=connector,
        layout=Project.Layout.TABLE,
        max_retries=2,
        source={"path": "/items", "pagination": "page", "records_path": "items"},
    )
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return project, run


def requested_pages(server) -> list[int]:
    return [int(r.query.get("page", 1)) for r in server.requests]


@pytest.mark.parametrize("failing_page", [1, 4, PAGES, PAGES + 1])
def test_a_failed_page_is_the_only_one_fetched_again(
    make_connector, make_project, server, failing_page
):
    server.route("/items", paged({failing_page}))
    project, run = first_attempt(make_connector, make_project, server)
    assert run.status == ImportRun.Status.RETRYING, run.error_message
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    rows = PAGES * PER_PAGE
    assert counts(run) == (rows, rows, 0, 0, 0, 0)
    assert sorted(r["id"] for r in table_rows(project)) == list(range(rows))
    pages = requested_pages(server)
    # Every page once, and the failed one once more: nothing else again.
    assert sorted(pages) == sorted([*range(1, PAGES + 2), failing_page])
    if failing_page > 1:
        assert run.events.filter(kind=ImportRunEvent.Kind.RESUMED).exists()
    assert run.checkpoint is None


def test_without_a_checkpoint_the_retry_starts_over(
    make_connector, make_project, server
):
    """A run whose stage is gone (dropped) reads from the start again."""
    server.route("/items", paged({3}))
    project, run = first_attempt(make_connector, make_project, server)

    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{run.checkpoint["stage"]}"')
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert run.rows_read == PAGES * PER_PAGE


def test_a_csv_copy_cut_midway_resumes_from_its_last_segment(
    make_project, write_csv, settings
):
    """The database drops the COPY after some segments committed: the retry
    skips the bytes already staged and stages the rest, each row once."""
    import threading
    import time

    import psycopg

    settings.IMPORTHUB_COPY_SEGMENT_BYTES = 64 * 1024
    rows = 150_000
    path = write_csv([(i, f'name "{i}"\nline two', i) for i in range(rows)])
    project = make_project(
        source={"path": str(path)}, layout=Project.Layout.TABLE, max_retries=2
    )
    run = import_run_request(project=project, requested_by="t", trigger="command")
    db = settings.DATABASES["default"]
    url = (
        f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}"
    )
    cut = threading.Event()

    def cut_after_a_checkpoint():
        with psycopg.connect(url, autocommit=True) as watcher:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                staged = watcher.execute(
                    "SELECT (checkpoint->>'seq')::int FROM imports_importrun "
                    "WHERE id = %s",
                    [run.pk],
                ).fetchone()[0]
                if staged and staged > 10_000:
                    watcher.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE query LIKE 'COPY \"import_stage_%%' "
                        "AND datname = current_database() "
                        "AND pid <> pg_backend_pid()"
                    )
                    cut.set()
                    return
                time.sleep(0.002)

    watcher = threading.Thread(target=cut_after_a_checkpoint, daemon=True)
    watcher.start()
    import_run_execute(run_id=run.pk)
    watcher.join(timeout=30)
    run.refresh_from_db()
    assert cut.is_set(), "the COPY ended before the cut"
    assert run.status == ImportRun.Status.RETRYING, run.error_message
    staged = run.checkpoint["seq"]
    assert 0 < staged < rows
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert counts(run) == (rows, rows, 0, 0, 0, 0)
    resumed = run.events.get(kind=ImportRunEvent.Kind.RESUMED)
    assert resumed.data["checkpoint"]["seq"] >= staged
    landed = table_rows(project, order_by="id")
    assert [r["id"] for r in landed] == list(range(rows))
    assert landed[7]["name"] == 'name "7"\nline two'
