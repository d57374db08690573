"""Incremental imports: the cursor commits with the data, exactly once."""

import pytest
from django.core.exceptions import ValidationError

from imports.loading import Target
from imports.models import ImportRun, ImportRunEvent, Project
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request

from .helpers import counts
from .table_helpers import table_rows

pytestmark = pytest.mark.django_db(transaction=True)

QUERY = (
    "SELECT id, name, updated FROM items "
    "WHERE %(cursor)s IS NULL OR updated > %(cursor)s"
)


def run_import(project, **options) -> ImportRun:
    run = import_run_request(
        project=project, requested_by="test", trigger="command", **options
    )
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    return run


@pytest.fixture
def incremental(make_connector, make_project, sql_source_url, sql_execute):
    sql_execute("DROP TABLE IF EXISTS items")
    sql_execute("CREATE TABLE items (id int primary key, name text, updated int)")

    def make(**cursor):
        connector = make_connector(kind="sql", config={"url": sql_source_url})
        return make_project(
            connector=connector,
            layout=Project.Layout.TABLE,
            source={"query": QUERY, "cursor": {"field": "updated", **cursor}},
        )

    return make


def test_only_changed_rows_are_read_and_the_cursor_commits(incremental, sql_execute):
    sql_execute("INSERT INTO items SELECT g, 'v1', g FROM generate_series(1, 50) g")
    project = incremental()
    first = run_import(project)
    assert counts(first) == (50, 50, 0, 0, 0, 0)
    assert first.cursor_before is None and first.cursor_after["value"] == 50
    assert Target(project).state().cursor["value"] == 50
    sql_execute("UPDATE items SET name = 'v2', updated = 60 WHERE id IN (3, 4)")
    sql_execute("INSERT INTO items VALUES (51, 'v1', 61)")
    second = run_import(project)
    assert counts(second) == (3, 1, 2, 0, 0, 0)
    assert (second.cursor_before["value"], second.cursor_after["value"]) == (50, 61)
    # Nothing new: nothing read, the cursor stays.
    third = run_import(project)
    assert counts(third) == (0, 0, 0, 0, 0, 0)
    assert third.cursor_after["value"] == 61
    rows = {r["id"]: r["name"] for r in table_rows(project)}
    assert len(rows) == 51 and rows[3] == rows[4] == "v2"


def test_lookback_rereads_a_window(incremental, sql_execute):
    sql_execute("INSERT INTO items SELECT g, 'a', g FROM generate_series(1, 10) g")
    project = incremental(lookback=3)
    run_import(project)
    again = run_import(project)
    assert (again.rows_read, again.rows_unchanged) == (3, 3)  # updated 8, 9, 10


def test_incremental_runs_never_delete_and_full_refresh_does(incremental, sql_execute):
    sql_execute("INSERT INTO items SELECT g, 'a', g FROM generate_series(1, 10) g")
    project = incremental()
    project.mode = Project.Mode.REPLACE
    project.replace_delete_limit = 100
    project.save()
    run_import(project)
    sql_execute("DELETE FROM items WHERE id <= 5")
    sql_execute("INSERT INTO items VALUES (11, 'b', 11)")
    inc = run_import(project)
    assert (inc.rows_read, inc.rows_inserted, inc.rows_deleted) == (1, 1, 0)
    assert len(table_rows(project)) == 11
    full = run_import(project, full_refresh=True, reason="drift")
    assert full.full_refresh and full.cursor_after["value"] == 11
    assert (full.rows_read, full.rows_deleted) == (6, 5)
    assert len(table_rows(project)) == 6
    requested = full.events.get(kind=ImportRunEvent.Kind.REQUESTED)
    assert requested.data["full_refresh"] is True
    assert requested.data["reason"] == "drift"


def test_a_null_cursor_value_is_a_bad_row(incremental, sql_execute):
    sql_execute("INSERT INTO items VALUES (1, 'a', 1), (2, 'b', NULL)")
    project = incremental()
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert "missing cursor field updated" in run.error_message
    assert Target(project).state() is None  # nothing committed


def test_a_backwards_cursor_warns_and_stays(incremental, sql_execute):
    sql_execute("INSERT INTO items VALUES (1, 'a', 100)")
    project = incremental(lookback=1000)
    run_import(project)
    sql_execute("UPDATE items SET updated = 5")
    run = run_import(project)
    assert run.cursor_after["value"] == 100
    warning = run.events.get(kind=ImportRunEvent.Kind.WARNING)
    assert "below the stored cursor" in warning.message


def test_bad_cursor_settings_are_refused(incremental):
    project = incremental()
    project.source = {"query": "SELECT 1 AS id", "cursor": {"field": "id"}}
    with pytest.raises(ValidationError, match="cursor"):
        project.full_clean()
    project.source = {"query": QUERY, "cursor": {"lookback": -1}}
    with pytest.raises(ValidationError) as caught:
        project.full_clean()
    text = str(caught.value)
    assert "needs a field" in text and "lookback" in text
    project.source = {"query": QUERY, "cursor": {"field": "updated"}}
    project.layout = Project.Layout.RECORDS
    with pytest.raises(ValidationError, match="typed table"):
        project.full_clean()


def test_an_unchanged_csv_is_not_read_again(make_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = make_project(
        layout=Project.Layout.TABLE, source={"path": str(path), "cursor": {}}
    )
    first = run_import(project)
    assert first.rows_inserted == 2
    again = run_import(project)
    assert counts(again) == (0, 0, 0, 0, 0, 0)
    assert "not changed" in again.events.get(kind="succeeded").message
    write_csv([(1, "a", 1), (2, "B", 2)], name=path.name)
    changed = run_import(project)
    assert (changed.rows_read, changed.rows_updated) == (2, 1)
    forced = run_import(project, full_refresh=True)
    assert forced.rows_read == 2


def test_an_unchanged_csv_url_is_not_read_again(make_project):
    from tests.connectors.servers import LocalHttpServer, Reply

    server = LocalHttpServer().start()
    try:
        body = "id,name,amount\n1,a,1\n2,b,2\n"
        server.route("/data.csv", lambda request: Reply(body, headers={"ETag": tag}))
        tag = '"v1"'
        project = make_project(
            layout=Project.Layout.TABLE,
            source={"url": server.url("/data.csv"), "cursor": {}},
        )
        assert run_import(project).rows_inserted == 2
        again = run_import(project)
        assert (again.rows_read, again.cursor_after["fingerprint"]["ETag"]) == (0, tag)
        body, tag = "id,name,amount\n1,a,1\n2,B,2\n", '"v2"'
        changed = run_import(project)
        assert (changed.rows_read, changed.rows_updated) == (2, 1)
    finally:
        server.stop()
