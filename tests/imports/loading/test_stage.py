"""The staging table: named per attempt, filled, sealed once, dropped."""

import pytest
from django.db import connection

from connectors.lineformat import encode_line
from imports.loading import STAGE_TABLE, Stage
from imports.models import ImportRunEvent

from .helpers import counts, records, run_import

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_name_is_the_run_and_the_attempt():
    """A stage is named by run and fence; any other name is refused."""
    assert Stage(7).table == "import_stage_7"
    assert Stage(7, 3).table == "import_stage_7_3"
    assert STAGE_TABLE.match("import_stage_7_3").groups() == ("7", "3")
    with pytest.raises(ValueError, match="not a staging table name"):
        Stage(7, table="records; DROP TABLE x")


def test_rows_and_lines_are_staged_and_sealed():
    """Rows and lines land alike; sealing keeps the last row of each key."""
    stage = Stage(990001)
    stage.create()
    try:
        stage.write([(1, "a", '{"v": 1}', "c1"), (2, "b", '{"v": 2}', "c2")])
        stage.write_lines([encode_line(3, "a", '{"v": "3\\t"}', "c3")])
        stage.write([])
        stage.flush()
        assert stage.exists() and stage.count() == 3
        assert stage.seal() == (2, 1)
        assert stage.seal() == (2, 0)  # idempotent
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT seq, key, data FROM {stage.table} ORDER BY seq")
            assert cursor.fetchall() == [
                (2, "b", '{"v": 2}'),
                (3, "a", '{"v": "3\\t"}'),
            ]
    finally:
        stage.drop()
    assert not stage.exists()


def test_a_stage_dropped_mid_write_is_gone():
    """Dropping a stage mid-write aborts the writing and removes the table."""
    stage = Stage(990002)
    stage.create()
    stage.write([(1, "a", "{}", "c1")])
    stage.drop()
    assert not stage.exists()


def test_duplicate_keys_last_wins_and_are_counted(make_project, write_csv):
    """With a key twice in one source the last row wins; the repeat is counted."""
    path = write_csv([(1, "first", 1), (2, "b", 2), (1, "last", 1)])
    project = make_project(source={"path": str(path)})
    run = run_import(project)
    assert counts(run) == (3, 2, 0, 0, 0, 0)
    assert run.rows_duplicates == 1
    assert records(project)["1"]["name"] == "last"
    assert run.events.get(kind=ImportRunEvent.Kind.SUCCEEDED).data == {"duplicates": 1}


def test_staging_table_is_dropped(make_project, write_csv):
    """After a run, successful or not, its staging table is gone."""
    project = make_project(source={"path": str(write_csv([(1, "a", 1)]))})
    run = run_import(project)
    left = [
        name
        for name in connection.introspection.table_names()
        if (match := STAGE_TABLE.match(name)) and int(match.group(1)) == run.pk
    ]
    assert left == []
