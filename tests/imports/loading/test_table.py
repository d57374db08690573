"""Typed tables: types, null markers, keys, counts, replace, on PostgreSQL."""

import decimal

import pytest
from django.db import connection

from imports.loading import Target
from imports.models import ImportRun, ImportRunEvent, Project, Record

from .helpers import counts, run_import
from .table_helpers import table_key, table_rows, table_types

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def table_project(make_project):
    def make(path, **fields):
        fields.setdefault("layout", Project.Layout.TABLE)
        return make_project(source={"path": str(path)}, **fields)

    return make


def succeeded(run):
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    return run


def test_types_are_inferred_and_markers_are_null(table_project, write_csv):
    """A flights-like file: numbers become numbers, NA and "" become NULL."""
    path = write_csv(
        [
            (1, "SVO", "849.0", "2024-01-02", "2024-01-02T10:00:00Z", "true", "007"),
            (2, "LED", "NA", "", "NA", "false", "012"),
            (3000000000, "AER", "12", "2024-02-29", "", "NULL", "\\N"),
        ],
        header=("id", "origin", "distance", "day", "departed", "direct", "code"),
    )
    project = table_project(path)
    run = succeeded(run_import(project))
    assert counts(run) == (3, 3, 0, 0, 0, 0)
    assert table_types(project) == {
        "id": "bigint",
        "origin": "text",
        "distance": "numeric",
        "day": "date",
        "departed": "timestamp with time zone",
        "direct": "boolean",
        "code": "text",  # leading zeros: a code, not a number
    }
    rows = {row["id"]: row for row in table_rows(project)}
    assert rows[1]["distance"] == decimal.Decimal("849.0")
    assert rows[2]["distance"] is None and rows[2]["day"] is None
    assert rows[2]["departed"] is None
    assert rows[3000000000]["direct"] is None
    assert rows[3000000000]["code"] is None
    assert rows[1]["direct"] in (True, 1) and rows[1]["code"] == "007"
    assert not Record.objects.filter(project=project).exists()


def test_declared_types_win_and_key_is_primary(table_project, write_csv):
    path = write_csv([(1, "a", "10"), (2, "b", "20")])
    project = table_project(
        path,
        column_types={"amount": "double precision", "name": "text", "id": "bigint"},
    )
    succeeded(run_import(project))
    assert table_types(project)["amount"] == "double precision"
    assert table_types(project)["id"] == "bigint"
    assert table_key(project) == ["id"]


def test_counts_are_exact_with_duplicates_and_changes(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2), (1, "a2", 1), (3, "c", 3)])
    project = table_project(path)
    run = succeeded(run_import(project))
    assert counts(run) == (4, 3, 0, 0, 0, 0) and run.rows_duplicates == 1
    assert {r["id"]: r["name"] for r in table_rows(project)} == {
        1: "a2",
        2: "b",
        3: "c",
    }
    write_csv([(1, "a2", 1), (2, "B", 2), (4, "d", 4)], name=path.name)
    again = succeeded(run_import(project))
    assert counts(again) == (3, 1, 1, 1, 0, 0)
    loaded = {r["id"] for r in table_rows(project)}
    assert loaded == {1, 2, 3, 4}


def test_unchanged_rows_are_not_rewritten(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = table_project(path)
    first = succeeded(run_import(project))
    again = succeeded(run_import(project))
    assert counts(again) == (2, 0, 0, 2, 0, 0)
    target = Target(project)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT _importhub_run_id FROM {target.qualified(target.table)}"
        )
        assert [r[0] for r in cursor.fetchall()] == [first.pk]


def test_replace_deletes_missing_keys(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2), (3, "c", 3)])
    project = table_project(path, mode=Project.Mode.REPLACE, replace_delete_limit=100)
    succeeded(run_import(project))
    write_csv([(1, "a", 1), (3, "c", 3)], name=path.name)
    run = succeeded(run_import(project))
    assert counts(run) == (2, 0, 0, 2, 1, 0)
    assert [r["id"] for r in table_rows(project)] == [1, 3]


def test_replace_without_keys_uses_the_checksum(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = table_project(
        path, key_fields=[], mode=Project.Mode.REPLACE, replace_delete_limit=100
    )
    succeeded(run_import(project))
    write_csv([(1, "a", 1), (2, "B", 2)], name=path.name)
    run = succeeded(run_import(project))
    assert (run.rows_inserted, run.rows_deleted, run.rows_unchanged) == (1, 1, 1)
    assert sorted(r["name"] for r in table_rows(project)) == ["B", "a"]


def test_deletion_limit_guards_the_table(table_project, write_csv):
    path = write_csv([(i, "x", i) for i in range(10)])
    project = table_project(path, mode=Project.Mode.REPLACE, replace_delete_limit=50)
    succeeded(run_import(project))
    write_csv([(1, "x", 1)], name=path.name)
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert "9 of 10" in run.error_message
    assert len(table_rows(project)) == 10


def test_missing_key_is_a_bad_row(table_project, write_csv):
    path = write_csv([(1, "a", 1), ("", "b", 2), ("NA", "c", 3)])
    failing = table_project(path)
    run = run_import(failing)
    assert run.status == ImportRun.Status.FAILED
    assert "Row 2: missing key field(s) id" in run.error_message
    skipping = table_project(path, on_bad_row=Project.OnBadRow.SKIP)
    run = succeeded(run_import(skipping))
    assert counts(run) == (3, 1, 0, 0, 0, 2)


def test_bad_width_rows_fall_back_to_the_row_reader(table_project, write_csv):
    """COPY cannot read a row with too many fields: read row by row instead."""
    path = write_csv([(1, "a", 1), (2, "b", 2, "extra"), (3, "c", 3)])
    project = table_project(path, on_bad_row=Project.OnBadRow.SKIP)
    run = succeeded(run_import(project))
    assert counts(run) == (3, 2, 0, 0, 0, 1)
    assert table_types(project)["amount"] == "integer"
    failing = table_project(path)
    run = run_import(failing)
    assert run.status == ImportRun.Status.FAILED
    assert "Line 3 of the file (data row 2)" in run.error_message


def test_evolve_adds_columns_and_widens(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = table_project(path)
    succeeded(run_import(project))
    write_csv(
        [(1, "a", "1.5", "x"), (2, "b", "3000000000", "y")],
        header=("id", "name", "amount", "colour"),
        name=path.name,
    )
    run = succeeded(run_import(project))
    assert table_types(project)["amount"] == "numeric"
    assert table_types(project)["colour"] == "text"
    event = run.events.get(kind=ImportRunEvent.Kind.SCHEMA_CHANGED)
    assert "column `colour` added (text)" in event.message
    assert "`amount` changed from integer to numeric" in event.message
    project.refresh_from_db()
    assert {"name": "colour", "type": "text"} in project.table_columns
    # Never narrows.
    write_csv([(1, "a", 1)], name=path.name)
    succeeded(run_import(project))
    assert table_types(project)["amount"] == "numeric"


def test_late_values_widen_the_inferred_type(table_project, write_csv):
    """The sample says integer, row 1500 says otherwise: the column widens."""
    rows = [(i, "n", i) for i in range(1, 1501)] + [(1501, "n", "lots")]
    project = table_project(write_csv(rows))
    succeeded(run_import(project))
    assert table_types(project)["amount"] == "text"


def test_freeze_fails_naming_fields_and_leaves_the_table(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = table_project(path, schema_policy=Project.SchemaPolicy.FREEZE)
    succeeded(run_import(project))
    before = table_rows(project)
    write_csv(
        [(1, "z", "1.5", "x")],
        header=("id", "name", "amount", "colour"),
        name=path.name,
    )
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert "new field `colour` (text)" in run.error_message
    assert "`amount` would change from integer to numeric" in run.error_message
    assert table_rows(project) == before
    # A value that does not fit, found only by the full check, is named too.
    rows = [(i, "n", i) for i in range(1, 1501)] + [(1501, "n", "lots")]
    write_csv(rows, name=path.name)
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert "row 1501: 'lots'" in run.error_message
    assert table_rows(project) == before


def test_discard_row_and_discard_value(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    by_row = table_project(path, schema_policy=Project.SchemaPolicy.DISCARD_ROW)
    by_value = table_project(path, schema_policy=Project.SchemaPolicy.DISCARD_VALUE)
    for project in (by_row, by_value):
        succeeded(run_import(project))
    write_csv([(1, "a", "lots"), (2, "b", 5), (3, "c", 6)], name=path.name)
    run = succeeded(run_import(by_row))
    assert counts(run) == (3, 1, 1, 0, 0, 1)
    assert {r["id"]: r["amount"] for r in table_rows(by_row)} == {1: 1, 2: 5, 3: 6}
    event = run.events.filter(kind=ImportRunEvent.Kind.REJECTED_ROWS).last()
    samples = event.data["samples"]
    assert samples[0]["row"] == 1
    run = succeeded(run_import(by_value))
    assert counts(run) == (3, 1, 2, 0, 0, 0)
    assert {r["id"]: r["amount"] for r in table_rows(by_value)} == {1: None, 2: 5, 3: 6}
    assert table_types(by_value)["amount"] == "integer"
    event = run.events.get(kind=ImportRunEvent.Kind.SCHEMA_CHANGED)
    assert event.data["changes"] == [{"change": "discarded_values", "count": 1}]


def test_declared_type_that_does_not_fit_fails(table_project, write_csv):
    path = write_csv([(1, "a", "1.5")])
    project = table_project(path, column_types={"amount": "integer"})
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert "`amount` (integer)" in run.error_message and "row 1" in run.error_message


def test_odd_column_names_are_quoted(table_project, write_csv):
    path = write_csv([(1, "a", 2)], header=("id", 'we"ird; DROP TABLE x', "Имя поля"))
    project = table_project(path)
    succeeded(run_import(project))
    assert list(table_types(project)) == ["id", 'we"ird; DROP TABLE x', "Имя поля"]


def test_reserved_or_repeated_names_fail_clearly(table_project, write_csv):
    path = write_csv([(1, 2)], header=("id", "_importhub_run_id"))
    run = run_import(table_project(path))
    assert run.status == ImportRun.Status.FAILED
    assert "_importhub_run_id" in run.error_message


def test_a_foreign_table_is_not_written(table_project, write_csv):
    path = write_csv([(1, "a", 1)])
    project = table_project(path, table_name="someone_elses")
    target = Target(project)
    target.ensure()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {target.qualified(target.table)}")
        cursor.execute(f"CREATE TABLE {target.qualified(target.table)} (id int)")
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert "was not created by importhub" in run.error_message


def test_an_empty_source_writes_nothing_and_guards_replace(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = table_project(path, mode=Project.Mode.REPLACE)
    succeeded(run_import(project))
    path.write_text("")  # not even a header
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert "gave no rows" in run.error_message
    assert len(table_rows(project)) == 2
    confirmed = succeeded(run_import(project, confirm_deletions=True))
    assert confirmed.rows_deleted == 2 and table_rows(project) == []


def test_changed_key_fields_are_refused_not_merged(table_project, write_csv):
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = table_project(path)
    succeeded(run_import(project))
    project.key_fields = ["name"]
    project.save()
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert "not the table's primary key (id)" in run.error_message
