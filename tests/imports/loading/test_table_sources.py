"""Typed tables from an SQL source, from rows, in another database, fenced."""

import json
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from imports.loading import (
    FenceRejected,
    LoadResult,
    TableStage,
    Target,
    import_run_load,
)
from imports.locks import project_lock
from imports.models import Destination, ImportRun, ImportRunEvent, Project
from imports.services.guard import import_run_request
from imports.services.orphans import stages_drop_orphaned
from imports.services.sweep import runs_reap_lost

from .helpers import counts, run_import
from .table_helpers import table_rows, table_types

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sql_table_project(make_connector, make_project, sql_source_url, sql_execute):
    sql_execute("DROP TABLE IF EXISTS items")
    sql_execute(
        "CREATE TABLE items (region text, num int, big bigint, name text, "
        "amount numeric, ratio float8, made date, at timestamptz, ok boolean, "
        "extra jsonb)"
    )

    def make(**fields):
        connector = make_connector(kind="sql", config={"url": sql_source_url})
        fields.setdefault("source", {"query": "SELECT * FROM items"})
        fields.setdefault("key_fields", ["region", "num"])
        fields.setdefault("layout", Project.Layout.TABLE)
        return make_project(connector=connector, **fields)

    return make


def test_sql_source_types_come_from_the_source(sql_table_project, sql_execute):
    sql_execute(
        "INSERT INTO items VALUES ('north', 1, 9000000000, E'tab\\there', 1.50, "
        "0.25, '2024-02-29', '2024-01-01 10:00+03', true, '{\"a\": [1, null]}'), "
        "('south', 2, NULL, 'NA', NULL, NULL, NULL, NULL, NULL, NULL)"
    )
    project = sql_table_project()
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert counts(run) == (2, 2, 0, 0, 0, 0)
    assert table_types(project) == {
        "region": "text",
        "num": "integer",
        "big": "bigint",
        "name": "text",
        "amount": "numeric",
        "ratio": "double precision",
        "made": "date",
        "at": "timestamp with time zone",
        "ok": "boolean",
        "extra": "jsonb",
    }
    north, south = table_rows(project, order_by="num")
    assert north["name"] == "tab\there"
    assert json.loads(north["extra"]) == {"a": [1, None]}
    assert north["at"].isoformat() == "2024-01-01T07:00:00+00:00"
    assert south["name"] is None  # "NA" is a null marker
    sql_execute("UPDATE items SET name = 'changed' WHERE num = 2")
    again = run_import(project)
    assert counts(again) == (2, 0, 1, 1, 0, 0)


def test_rows_from_an_api_like_source_keep_json_types(make_project, write_csv):
    """Sources read row by row (here a CSV on the fallback path) stage text."""
    path = write_csv([("1", "x")], header=("id", "name"))
    project = make_project(source={"path": str(path)}, layout=Project.Layout.TABLE)
    # One column more than the header on a second file: the row reader path.
    path.write_text("id,name\n1,x\n\n2,y\n")
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert counts(run) == (2, 2, 0, 0, 0, 0)
    assert table_types(project) == {"id": "integer", "name": "text"}


@pytest.fixture
def destination_url():
    db = settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    user = db["USER"] or "postgres"
    name = f"importhub_dest_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://{user}@{host}:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://{user}@{host}:{port}/{name}"
    for destination in Destination.objects.all():
        connections[f"importhub_destination_{destination.pk}"].close()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_second_database_as_destination(make_project, write_csv, destination_url):
    destination = Destination.objects.create(
        name="warehouse", url=destination_url, schema="landing"
    )
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = make_project(
        source={"path": str(path)}, layout=Project.Layout.TABLE, destination=destination
    )
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    with psycopg.connect(destination_url) as connection:
        rows = connection.execute(
            f"SELECT id, name FROM landing.{project.table_name} ORDER BY id"
        ).fetchall()
        state = connection.execute(
            "SELECT fence, run_id FROM landing._importhub_state WHERE project_id = %s",
            [project.pk],
        ).fetchone()
    assert rows == [(1, "a"), (2, "b")]
    assert state == (run.fencing_token, run.pk)
    # Nothing landed in the app's database.
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = %s",
            [project.table_name],
        )
        assert cursor.fetchone()[0] == 0


def test_a_stale_fence_cannot_commit_into_the_destination(make_project, write_csv):
    """The state row refuses a token not above the one that committed."""
    path = write_csv([(1, "a", 1)])
    project = make_project(source={"path": str(path)}, layout=Project.Layout.TABLE)
    first = run_import(project)
    assert first.status == ImportRun.Status.SUCCEEDED, first.error_message
    run = import_run_request(project=project, requested_by="t", trigger="command")
    target = Target(project)
    stage = TableStage(target, run.pk)
    stage.create(3)
    try:
        stage.write_rows([(1, "1", "stale", "1")])
        stage.flush()
        # The destination saw a newer token commit (a worker whose lease
        # outlived this one's), though the app's runs do not show it.
        with target.atomic(), target.cursor() as cursor:
            cursor.execute(
                f"UPDATE {target.qualified('_importhub_state')} SET fence = %s "
                f"WHERE project_id = %s",
                [run.fencing_token + 5, project.pk],
            )
        ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING)
        run.refresh_from_db()
        result = LoadResult(
            rows_read=1,
            columns=["id", "name", "amount"],
            types=["integer", "text", "integer"],
        )
        with pytest.raises(FenceRejected), transaction.atomic():
            import_run_load(run=run, stage=stage, result=result)
    finally:
        stage.drop()
    assert [r["name"] for r in table_rows(project)] == ["a"]


def test_the_sweep_reconciles_a_run_whose_data_committed(
    make_project, write_csv, destination_url
):
    """Data committed in the destination, the worker died before the app's
    commit: the sweep finds the state row and the run succeeds, not retries."""
    destination = Destination.objects.create(name="dwh", url=destination_url)
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = make_project(
        source={"path": str(path)}, layout=Project.Layout.TABLE, destination=destination
    )
    run = import_run_request(project=project, requested_by="t", trigger="command")
    stale = timezone.now() - timedelta(seconds=settings.IMPORTHUB_LEASE_SECONDS * 3)
    ImportRun.objects.filter(pk=run.pk).update(
        status=ImportRun.Status.RUNNING, heartbeat_at=stale, fencing_token=41
    )
    project_lock(project.pk, token=run.lock_token).release()
    target = Target(project)
    target.ensure()
    counts_committed = {"rows_read": 2, "rows_inserted": 2}
    with target.atomic():
        target.state_claim(fence=41, run_id=run.pk)
        target.state_finish(columns=[], counts=counts_committed, committed_at="now")
    assert runs_reap_lost() == 1
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED
    assert (run.rows_read, run.rows_inserted) == (2, 2)
    assert run.events.filter(kind=ImportRunEvent.Kind.RECONCILED).exists()


def test_the_sweep_drops_stages_left_in_a_destination(
    make_project, write_csv, destination_url
):
    destination = Destination.objects.create(name="dwh2", url=destination_url)
    project = make_project(
        source={"path": str(write_csv([(1, "a", 1)]))},
        layout=Project.Layout.TABLE,
        destination=destination,
    )
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    left = TableStage(Target(project), run.pk, 99)  # a killed attempt's table
    left.create(2)
    assert left.exists()
    assert stages_drop_orphaned() >= 1
    assert not left.exists()


def test_an_api_source_lands_typed_with_new_fields_mid_stream(
    make_connector, make_project
):
    """JSON values keep their types: numbers, booleans, nested objects (jsonb);
    a field first seen on a later page becomes a column; a missing one NULL."""
    from tests.connectors.servers import LocalHttpServer, Reply

    server = LocalHttpServer().start()
    try:
        items = [
            {"id": 1, "price": 1.5, "ok": True, "tags": {"a": [1]}, "code": "007"},
            {"id": 2, "price": 2, "ok": False, "tags": None, "code": "12"},
            {"id": 3, "price": 3.25, "ok": None, "late": "x"},
        ]
        server.route("/items", Reply(items))
        connector = make_connector(
            kind="http_json", config={"url": server.url("/"), "timeout_read": 5}
        )
        project = make_project(
            connector=connector, source={"path": "/items"}, layout=Project.Layout.TABLE
        )
        run = run_import(project)
    finally:
        server.stop()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert counts(run) == (3, 3, 0, 0, 0, 0)
    assert table_types(project) == {
        "id": "integer",
        "price": "double precision",
        "ok": "boolean",
        "tags": "jsonb",
        "code": "text",  # a JSON string is text, whatever it spells
        "late": "text",
    }
    rows = table_rows(project, order_by="id")
    assert json.loads(rows[0]["tags"]) == {"a": [1]} and rows[0]["code"] == "007"
    assert rows[2]["late"] == "x" and rows[0]["late"] is None


def test_a_destination_role_that_cannot_create_fails_clearly(
    make_project, write_csv, destination_url
):
    """A role without the right to create the schema: a clear error."""
    role = f"importhub_weak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(destination_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(
            "REVOKE CREATE ON DATABASE "
            + destination_url.rsplit("/", 1)[1]
            + " FROM PUBLIC"
        )
    weak = destination_url.replace("postgresql://postgres@", f"postgresql://{role}@")
    try:
        destination = Destination.objects.create(name="weak", url=weak)
        project = make_project(
            source={"path": str(write_csv([(1, "a", 1)]))},
            layout=Project.Layout.TABLE,
            destination=destination,
        )
        run = run_import(project)
        assert run.status == ImportRun.Status.FAILED
        assert "Cannot prepare importhub_data in the destination" in run.error_message
    finally:
        connections[f"importhub_destination_{destination.pk}"].close()
        with psycopg.connect(destination_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = %s",
                [role],
            )
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')
