"""Resume: a retry after a transient failure goes on from the last checkpoint.

A paged API fails on page k: the retry re-fetches that page only, keeps the
rows already staged, and the counts and the table are as if nothing failed.
"""

import pytest

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


def requested_pages(server) -> list[int]:
    return [int(r.query.get("page", 1)) for r in server.requests]


@pytest.mark.parametrize("failing_page", [1, 4, PAGES, PAGES + 1])
def test_a_failed_page_is_the_only_one_fetched_again(
    make_connector, make_project, server, failing_page
):
    server.route("/items", paged({failing_page}))
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
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{run.checkpoint["stage"]}"')
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert run.rows_read == PAGES * PER_PAGE
