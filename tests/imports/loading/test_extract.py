"""The extraction: every source row is staged, or rejected by the policy."""

import pytest

from imports.models import ImportRun, ImportRunEvent, Project, Record

from .helpers import counts, run_import

pytestmark = pytest.mark.django_db(transaction=True)


def test_bad_row_fails_the_run_and_names_the_row(make_project, write_csv):
    """By default a ragged row fails the run, naming its line; nothing lands."""
    path = write_csv([(1, "a", 1), (2, "b"), (3, "c", 3)])
    project = make_project(source={"path": str(path)})
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert run.error_class == "BadRowError"
    assert run.error_message == "Row 3: expected 3 fields, found 2."
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
        {"row": 3, "reason": "expected 3 fields, found 2"},
        {"row": 3, "reason": "missing key field(s) id"},
    ]


def test_progress_counts_the_rows_read(make_project, write_csv):
    """The run's rows_read follows the extraction."""
    path = write_csv([(i, "x", i) for i in range(1, 251)])
    run = run_import(make_project(source={"path": str(path)}))
    assert run.status == ImportRun.Status.SUCCEEDED
    assert run.rows_read == 250
