"""The replace mode's deletion limit: a truncated source changes nothing."""

import pytest

from imports.loading import DeletionLimitExceeded
from imports.loading.safety import DeletionLimit
from imports.models import ImportRun, Project

from .helpers import counts, records, run_import

pytestmark = pytest.mark.django_db(transaction=True)

TEN = [(i, f"n{i}", i) for i in range(1, 11)]


@pytest.fixture
def loaded(make_project, write_csv):
    """A project whose first import landed ten rows, and its file's path."""

    def make(**fields):
        path = write_csv(TEN)
        fields.setdefault("mode", Project.Mode.REPLACE)
        project = make_project(source={"path": str(path)}, **fields)
        assert run_import(project).rows_inserted == 10
        return project, path

    return make


@pytest.mark.parametrize("content", ["", "id,name,amount\n"], ids=["empty", "header"])
def test_a_truncated_file_fails_and_changes_nothing(loaded, content):
    """A replace from an empty or header-only file fails; the rows stay."""
    project, path = loaded()
    before = records(project)
    path.write_text(content)
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert run.error_class == "DeletionLimitExceeded"
    assert run.error_message == (
        "The source gave no rows and would delete all 10 of the project's "
        "rows; nothing was changed. Confirm the run to allow it."
    )
    assert records(project) == before


def test_a_limit_of_100_still_refuses_an_empty_source(loaded):
    """Even with any deletion allowed, an empty source needs a confirmation."""
    project, path = loaded(replace_delete_limit=100)
    path.write_text("")
    assert run_import(project).error_class == "DeletionLimitExceeded"
    assert len(records(project)) == 10


def test_deleting_above_the_limit_fails_before_any_write(loaded, write_csv):
    """Above the limit neither the deletes nor the updates happen."""
    project, path = loaded()
    before = records(project)
    write_csv([(1, "changed", 1), (2, "n2", 2)], name=path.name)
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert run.error_message == (
        "The source would delete 8 of 10 rows (80%), above the project's "
        "limit of 50%; nothing was changed. Confirm the run to allow it."
    )
    assert records(project) == before


def test_deleting_up_to_the_limit_is_allowed(loaded, write_csv):
    """Exactly the limit's share may go without a confirmation."""
    project, path = loaded()
    write_csv(TEN[:5], name=path.name)
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert counts(run) == (5, 0, 0, 5, 5, 0)


def test_a_limit_of_0_refuses_any_deletion(loaded, write_csv):
    """With a limit of 0 a single deleted row needs a confirmation."""
    project, path = loaded(replace_delete_limit=0)
    write_csv(TEN[:9], name=path.name)
    run = run_import(project)
    assert run.error_message.startswith("The source would delete 1 of 10 rows (10%)")


def test_a_limit_of_100_allows_a_large_deletion(loaded, write_csv):
    """With a limit of 100 a source that has rows may delete any share."""
    project, path = loaded(replace_delete_limit=100)
    write_csv(TEN[:1], name=path.name)
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert run.rows_deleted == 9


@pytest.mark.parametrize("content", ["", None], ids=["empty", "two-rows"])
def test_a_confirmed_run_deletes(loaded, write_csv, content):
    """A run an operator confirmed deletes what the source no longer has."""
    project, path = loaded()
    if content is None:
        write_csv(TEN[:2], name=path.name)
    else:
        path.write_text(content)
    run = run_import(project, confirm_deletions=True)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert run.rows_deleted == 10 - run.rows_read
    assert len(records(project)) == run.rows_read


def test_upsert_is_never_limited(loaded):
    """An upsert deletes nothing, so an empty source succeeds and keeps all."""
    project, path = loaded(mode=Project.Mode.UPSERT)
    path.write_text("")
    run = run_import(project)
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert counts(run) == (0, 0, 0, 0, 0, 0)
    assert len(records(project)) == 10


def test_a_first_import_from_an_empty_source_succeeds(make_project, write_csv):
    """With no rows yet there is nothing to protect."""
    project = make_project(
        source={"path": str(write_csv([]))}, mode=Project.Mode.REPLACE
    )
    assert run_import(project).status == ImportRun.Status.SUCCEEDED


def test_the_rule_and_its_message():
    """The share shown is precise enough to be above the limit."""
    limit = DeletionLimit(percent=50)
    limit.check(deleting=500, current=1000, staged_empty=False)
    with pytest.raises(DeletionLimitExceeded, match=r"504 of 1,000 rows \(50\.4%\)"):
        limit.check(deleting=504, current=1000, staged_empty=False)
    with pytest.raises(DeletionLimitExceeded, match=r"980 of 1,000 rows \(98%\)"):
        limit.check(deleting=980, current=1000, staged_empty=False)
    DeletionLimit(percent=50, confirmed=True).check(
        deleting=1000, current=1000, staged_empty=True
    )
    assert not DeletionLimit(percent=100).needs_counts(staged_empty=False)
    assert DeletionLimit(percent=100).needs_counts(staged_empty=True)
    assert not DeletionLimit(percent=0, confirmed=True).needs_counts(staged_empty=True)
