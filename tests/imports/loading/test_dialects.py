"""The dialect hooks: the portable SQL and PostgreSQL's own agree.

The portable ``Dialect`` is run here against the test database too, so on
PostgreSQL each of its overrides is checked against the SQL it replaces;
``test_sqlite.py`` runs this module again on SQLite.
"""

import pytest
from django.db import connection

from imports.loading import Stage
from imports.loading.dialects import (
    Dialect,
    PostgresDialect,
    SqliteDialect,
    dialect_for,
)
from imports.loading.merge import Merge
from imports.models import Record

pytestmark = pytest.mark.django_db(transaction=True)

VENDOR = dialect_for(connection.vendor)


class PortableSql(type(VENDOR)):
    """The database's dialect with the portable statements put back."""

    stage_writer = Dialect.stage_writer
    delete_duplicates_sql = Dialect.delete_duplicates_sql
    upsert_changed = Dialect.upsert_changed


DIALECTS = [
    pytest.param(PortableSql(), id="portable"),
    pytest.param(VENDOR, id=connection.vendor),
]


@pytest.fixture
def stage():
    stage = Stage(990100)
    stage.create()
    yield stage
    stage.drop()


def test_the_dialect_is_chosen_from_the_vendor():
    """PostgreSQL and SQLite each have a dialect; others are refused."""
    assert isinstance(dialect_for("postgresql"), PostgresDialect)
    assert isinstance(dialect_for("sqlite"), SqliteDialect)
    assert Stage(1).dialect is VENDOR
    with pytest.raises(ValueError, match="not 'mysql'"):
        dialect_for("mysql")


def test_what_postgresql_overrides():
    """PostgreSQL relays lines, stages unlogged, casts to jsonb, analyzes."""
    postgres, portable = PostgresDialect(), SqliteDialect()
    assert (postgres.relays_lines, portable.relays_lines) == (True, False)
    assert postgres.create_stage_sql("t", parse_json=False).startswith(
        "CREATE UNLOGGED TABLE t ("
    )
    assert portable.create_stage_sql("t", parse_json=False).startswith(
        "CREATE TABLE t ("
    )
    assert postgres.stage_data_type(parse_json=True) == "jsonb"
    assert postgres.stage_data_type(parse_json=False) == "text"
    assert portable.stage_data_type(parse_json=True) == "text"
    assert (postgres.as_json("data"), portable.as_json("data")) == (
        "data::jsonb",
        "data",
    )
    assert (postgres.analyze_sql("t"), portable.analyze_sql("t")) == ("ANALYZE t", None)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
def test_a_postgresql_stage_is_unlogged_and_can_hold_jsonb():
    """On PostgreSQL a stage skips the WAL; a relayed one parses JSON."""
    stage = Stage(990101)
    stage.create(parse_json=True)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT relpersistence FROM pg_class WHERE relname = %s", [stage.table]
            )
            assert cursor.fetchone() == ("u",)
            cursor.execute(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = %s AND column_name = 'data'",
                [stage.table],
            )
            assert cursor.fetchone() == ("jsonb",)
    finally:
        stage.drop()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_duplicates_are_deleted_keeping_the_last(dialect, stage):
    """Of each repeated key only the row with the highest seq stays."""
    stage.write(
        [(1, "a", "{}", "c1"), (2, "b", "{}", "c2"), (3, "a", "{}", "c3")]
        + [(4, "a", "{}", "c4")]
    )
    stage.flush()
    with connection.cursor() as cursor:
        cursor.execute(dialect.delete_duplicates_sql(stage.table))
        assert cursor.rowcount == 2
        cursor.execute(f"SELECT seq, key FROM {stage.table} ORDER BY seq")
        assert cursor.fetchall() == [(2, "b"), (4, "a")]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_the_upsert_counts_what_it_writes(dialect, stage, make_project):
    """New rows are inserted, changed ones updated, unchanged ones untouched."""
    project = make_project()
    Record.objects.bulk_create(
        [
            Record(project=project, key="same", data={"v": 1}, checksum="c1"),
            Record(project=project, key="changed", data={"v": 2}, checksum="c2"),
        ]
    )
    stage.write(
        [
            (1, "same", '{"v": 1}', "c1"),
            (2, "changed", '{"v": 20}', "c20"),
            (3, "new", '{"v": 3}', "c3"),
        ]
    )
    stage.seal()
    merge = Merge(stage=stage, project_id=project.pk, run_id=4242)
    with connection.cursor() as cursor:
        assert dialect.upsert_changed(cursor, merge) == (1, 1)
    rows = {
        r.key: (r.data, r.checksum, r.last_run_id)
        for r in Record.objects.filter(project=project)
    }
    assert rows == {
        "same": ({"v": 1}, "c1", None),
        "changed": ({"v": 20}, "c20", 4242),
        "new": ({"v": 3}, "c3", 4242),
    }


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_stage_writer_takes_rows_and_lines(dialect, stage):
    """Each dialect's writer stages tuples and lines alike."""
    from connectors.lineformat import encode_line

    writer = dialect.stage_writer(stage.table)
    writer.write_rows([(1, "a", "{}", "c1")])
    writer.write_lines([encode_line(2, "b\tc", '{"x": "y\\\\z"}', "c2")])
    writer.close()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT seq, key, data FROM {stage.table} ORDER BY seq")
        assert cursor.fetchall() == [(1, "a", "{}"), (2, "b\tc", '{"x": "y\\\\z"}')]
