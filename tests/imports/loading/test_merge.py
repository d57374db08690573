"""The merge: upsert and replace write only what changed, counted exactly."""

import pytest

from imports.models import ImportRun, Project, Record

from .helpers import counts, records, run_import

pytestmark = pytest.mark.django_db(transaction=True)


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
    first = run_import(project)
    again = run_import(project)
    assert counts(again) == (100, 0, 0, 100, 0, 0)
    assert set(
        Record.objects.filter(project=project).values_list("last_run_id", flat=True)
    ) == {first.pk}


def test_replace_deletes_what_the_source_no_longer_has(make_project, write_csv):
    """Replace mode also deletes records whose keys left the source."""
    path = write_csv([(1, "a", 1), (2, "b", 2), (3, "c", 3)])
    # Two of three is above the default deletion limit (test_safety.py).
    project = make_project(
        source={"path": str(path)},
        mode=Project.Mode.REPLACE,
        replace_delete_limit=100,
    )
    run_import(project)
    write_csv([(2, "b", 2)], name=path.name)
    run = run_import(project)
    assert counts(run) == (1, 0, 0, 1, 2, 0)
    assert set(records(project)) == {"2"}


def test_replace_leaves_other_projects_alone(make_project, write_csv):
    """A replace deletes only its own project's records."""
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    other = make_project(source={"path": str(path)})
    run_import(other)
    project = make_project(source={"path": str(path)}, mode=Project.Mode.REPLACE)
    run_import(project)
    write_csv([(2, "b", 2)], name=path.name)
    assert run_import(project).rows_deleted == 1
    assert set(records(other)) == {"1", "2"}


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
