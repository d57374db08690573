"""An SQL source is serialised by the source database and relayed as bytes."""

import pytest

from imports.models import ImportRun, Project, Record
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sql_project(make_connector, make_project, sql_source_url, sql_execute):
    sql_execute("DROP TABLE IF EXISTS items")
    sql_execute(
        "CREATE TABLE items (region text, num int, name text, amount numeric, "
        "made date, extra jsonb)"
    )

    def make(**fields):
        connector = make_connector(kind="sql", config={"url": sql_source_url})
        fields.setdefault("source", {"query": "SELECT * FROM items ORDER BY num"})
        fields.setdefault("key_fields", ["region", "num"])
        return make_project(connector=connector, **fields)

    return make


def run_import(project) -> ImportRun:
    run = import_run_request(project=project, requested_by="test", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def test_rows_land_with_json_types(sql_project, sql_execute):
    """Numbers stay numbers, dates become ISO text, tabs and backslashes survive."""
    sql_execute(
        "INSERT INTO items VALUES ('north', 1, E'tab\\there \\\\ back', 1.50, "
        "'2024-02-29', '{\"a\": [1, null]}'), ('south', 2, 'b', NULL, NULL, NULL)"
    )
    project = sql_project()
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert (run.rows_read, run.rows_inserted) == (2, 2)
    record = Record.objects.get(project=project, key="north\x1f1")
    assert record.data == {
        "region": "north",
        "num": 1,
        "name": "tab\there \\ back",
        "amount": 1.5,
        "made": "2024-02-29",
        "extra": {"a": [1, None]},
    }
    again = run_import(project)
    assert (again.rows_inserted, again.rows_updated, again.rows_unchanged) == (0, 0, 2)
    sql_execute("UPDATE items SET name = 'changed' WHERE num = 2")
    third = run_import(project)
    assert (third.rows_inserted, third.rows_updated, third.rows_unchanged) == (0, 1, 1)


def test_missing_key_fails_or_is_skipped(sql_project, sql_execute):
    """A row with an empty key field follows the project's bad-row policy."""
    sql_execute(
        "INSERT INTO items (region, num, name) VALUES "
        "('a', 1, 'x'), (NULL, 2, 'y'), ('', 3, 'z'), ('b', 4, 'w')"
    )
    failing = sql_project()
    run = run_import(failing)
    assert run.status == ImportRun.Status.FAILED
    assert run.error_message == "Row 2: missing key field(s) region."
    assert not Record.objects.filter(project=failing).exists()

    skipping = sql_project(on_bad_row=Project.OnBadRow.SKIP)
    run = run_import(skipping)
    assert run.status == ImportRun.Status.SUCCEEDED
    assert (run.rows_read, run.rows_inserted, run.rows_rejected) == (4, 2, 2)


def test_duplicate_keys_and_replace(sql_project, sql_execute):
    """Duplicates: the last row wins; replace deletes keys the source dropped."""
    sql_execute(
        "INSERT INTO items (region, num, name) VALUES "
        "('a', 1, 'first'), ('a', 2, 'x'), ('a', 1, 'last')"
    )
    project = sql_project(
        mode=Project.Mode.REPLACE,
        source={"query": "SELECT * FROM items"},
    )
    run = run_import(project)
    assert (run.rows_read, run.rows_inserted, run.rows_duplicates) == (3, 2, 1)
    assert Record.objects.get(project=project, key="a\x1f1").data["name"] == "last"
    sql_execute("DELETE FROM items WHERE num = 2")
    run = run_import(project)
    assert run.rows_deleted == 1


def test_bad_query_fails_with_the_database_message(sql_project):
    """A query on a missing table fails the run with the source's message."""
    project = sql_project(source={"query": "SELECT * FROM no_such_table"})
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert run.error_class == "PermanentSourceError"
    assert "no_such_table" in run.error_message


def test_a_privileged_role_allowed_by_the_connector_is_recorded(
    make_connector, make_project, sql_admin_url, sql_execute
):
    """A superuser source is refused unless the connector allows it; when it
    does, every run says so in its log (who accepted the risk is the
    connector's history)."""
    sql_execute("DROP TABLE IF EXISTS audited")
    sql_execute("CREATE TABLE audited (id int)")
    sql_execute("INSERT INTO audited VALUES (1)")
    source = {"query": "SELECT id FROM audited"}
    refused = make_project(
        connector=make_connector(kind="sql", config={"url": sql_admin_url}),
        source=source,
    )
    run = run_import(refused)
    assert run.status == ImportRun.Status.FAILED
    assert "allow_privileged_role" in run.error_message
    allowed = make_project(
        connector=make_connector(
            kind="sql", config={"url": sql_admin_url, "allow_privileged_role": True}
        ),
        source=source,
    )
    run = run_import(allowed)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    started = run.events.get(kind="started")
    assert started.data["privileged_role_allowed"] is True
    assert "allow_privileged_role" in started.message
