"""The pipeline: staged, merged in one transaction, counted exactly.

These tests call the worker's service in-process (no broker, no worker); the
module is run again on SQLite by ``test_the_same_semantics_hold_on_sqlite``.
"""

import os
import subprocess
import sys

import pytest
from django.db import connection, transaction

from imports.models import ImportRun, ImportRunEvent, Project, Record
from imports.pipeline import (
    STAGE_TABLE,
    FenceRejected,
    LoadResult,
    Stage,
    import_run_load,
)
from imports.services.execution import import_run_execute
from imports.services.runs import import_run_request
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def run_import(project) -> ImportRun:
    run = import_run_request(project=project, requested_by="test", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def counts(run) -> tuple:
    return (
        run.rows_read,
        run.rows_inserted,
        run.rows_updated,
        run.rows_unchanged,
        run.rows_deleted,
        run.rows_rejected,
    )


def records(project) -> dict:
    return {r.key: r.data for r in Record.objects.filter(project=project)}


def test_upsert_inserts_updates_and_keeps_the_rest(make_project, write_csv):
    """Upsert inserts new keys, updates changed ones and keeps missing ones."""
    path = write_csv([(1, "a", 10), (2, "b", 20), (3, "c", 30)])
    project = make_project(source={"path": str(path)})
    first = run_import(project)
    assert first.status == ImportRun.Status.SUCCEEDED, first.error_message
    assert counts(first) == (3, 3, 0, 0, 0, 0)

    write_csv([(1, "a", 10), (2, "B", 20), (4, "d", 40)], name=path.name)
    second = run_import(project)
    assert counts(second) == (3, 1, 1, 1, 0, 0)
    assert records(project) == {
        "1": {"id": "1", "name": "a", "amount": "10"},
        "2": {"id": "2", "name": "B", "amount": "20"},
        "3": {"id": "3", "name": "c", "amount": "30"},
        "4": {"id": "4", "name": "d", "amount": "40"},
    }
    assert Record.objects.get(project=project, key="1").last_run_id == first.pk
    assert Record.objects.get(project=project, key="2").last_run_id == second.pk


def test_unchanged_reimport_writes_nothing(make_project, write_csv):
    """Re-importing the same data counts everything unchanged, 0 written."""
    path = write_csv([(i, f"n{i}", i) for i in range(1, 101)])
    project = make_project(source={"path": str(path)})
    run_import(project)
    again = run_import(project)
    assert counts(again) == (100, 0, 0, 100, 0, 0)


def test_replace_deletes_what_the_source_no_longer_has(make_project, write_csv):
    """Replace mode also deletes records whose keys left the source."""
    path = write_csv([(1, "a", 1), (2, "b", 2), (3, "c", 3)])
    project = make_project(source={"path": str(path)}, mode=Project.Mode.REPLACE)
    run_import(project)
    write_csv([(2, "b", 2)], name=path.name)
    run = run_import(project)
    assert counts(run) == (1, 0, 0, 1, 2, 0)
    assert set(records(project)) == {"2"}


def test_composite_keys_and_keyless_replace(make_project, write_csv):
    """Several key fields form one key; without keys the content is the key."""
    path = write_csv([(1, "x", 5), (1, "y", 5), (1, "x", 6)])
    keyed = make_project(source={"path": str(path)}, key_fields=["id", "name"])
    assert counts(run_import(keyed)) == (3, 2, 0, 0, 0, 0)
    assert set(records(keyed)) == {"1\x1fx", "1\x1fy"}

    keyless = make_project(
        source={"path": str(path)}, key_fields=[], mode=Project.Mode.REPLACE
    )
    assert counts(run_import(keyless)) == (3, 3, 0, 0, 0, 0)


def test_duplicate_keys_last_wins_and_are_counted(make_project, write_csv):
    """With a key twice in one source the last row wins; the repeat is counted."""
    path = write_csv([(1, "first", 1), (2, "b", 2), (1, "last", 1)])
    project = make_project(source={"path": str(path)})
    run = run_import(project)
    assert counts(run) == (3, 2, 0, 0, 0, 0)
    assert records(project)["1"]["name"] == "last"
    assert run.events.get(kind=ImportRunEvent.Kind.SUCCEEDED).data == {"duplicates": 1}


def test_bad_row_fails_the_run_and_names_the_row(make_project, write_csv):
    """By default a ragged row fails the run, naming its line; nothing lands."""
    path = write_csv([(1, "a", 1), (2, "b"), (3, "c", 3)])
    project = make_project(source={"path": str(path)})
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert run.error_class == "BadRowError"
    assert run.error_message == (
        "Row 2: expected 3 fields, found 2 (line 3 of the file)."
    )
    assert Record.objects.filter(project=project).count() == 0


def test_bad_rows_skipped_are_counted_and_sampled(make_project, write_csv):
    """With skip, bad rows are counted and the first are kept in the events."""
    path = write_csv([(1, "a", 1), (2, "b"), ("", "no key", 3), (4, "d", 4)])
    project = make_project(source={"path": str(path)}, on_bad_row=Project.OnBadRow.SKIP)
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED
    assert counts(run) == (4, 2, 0, 0, 0, 2)
    samples = run.events.get(kind=ImportRunEvent.Kind.REJECTED_ROWS).data["samples"]
    assert samples == [
        {"row": 2, "reason": "expected 3 fields, found 2 (line 3 of the file)"},
        {"row": 3, "reason": "missing key field(s) id"},
    ]


def test_failed_import_leaves_the_records_as_they_were(make_project, write_csv):
    """A run that fails after staging leaves the last good import's records."""
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = make_project(source={"path": str(path)}, mode=Project.Mode.REPLACE)
    run_import(project)
    before = records(project)
    write_csv([(1, "changed", 1)] * 3 + [(9, "broken")], name=path.name)
    failed = run_import(project)
    assert failed.status == ImportRun.Status.FAILED
    assert records(project) == before


def test_a_newer_fence_refuses_the_commit(make_project):
    """If a newer run of the project holds a larger fence, nothing is written."""
    project = make_project()
    run = import_run_request(project=project, requested_by="t", trigger="command")
    stage = Stage(run.pk)
    stage.create(parse_json=False)
    try:
        stage.write([(1, "1", '{"id": "1"}', "c0ffee")])
        stage.seal()
        # A newer run was given a larger fence after this one's lease ran out.
        ImportRun.objects.create(
            project=project,
            status=ImportRun.Status.FAILED,
            trigger="command",
            fencing_token=run.fencing_token + 1,
        )
        ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING)
        with pytest.raises(FenceRejected), transaction.atomic():
            import_run_load(run=run, stage=stage, result=LoadResult(rows_read=1))
    finally:
        stage.drop()
    assert not Record.objects.filter(project=project).exists()


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


@pytest.mark.skipif(
    os.environ.get("IMPORTHUB_PIPELINE_ON_SQLITE") == "1",
    reason="this is the SQLite re-run itself",
)
def test_the_same_semantics_hold_on_sqlite(tmp_path, redis_prefix):
    """Every test above passes on SQLite too (the standalone mode)."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IMPORTHUB_PIPELINE_ON_SQLITE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
