"""The extraction: every source row is staged, or rejected by the policy."""

import pytest

from connectors.base import BadRow
from imports.loading import BadRowError, Stage
from imports.loading.extract import _Extraction
from imports.loading.results import REJECTED_SAMPLES
from imports.models import ImportRun, ImportRunEvent, Project, Record

from .helpers import counts, run_import

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def extraction(make_project):
    stage = Stage(990200)
    stage.create()

    def make(**fields):
        return _Extraction(project=make_project(**fields), stage=stage)

    yield make
    stage.drop()


def test_a_bad_row_is_named_by_its_data_row_and_file_line(extraction):
    """Data rows count every record; a file connector's line is added."""
    batch = [{"id": "1"}, BadRow(5, "expected 3 fields, found 2", line=5), {"id": ""}]
    with pytest.raises(BadRowError) as failed:
        extraction().stage_rows(batch, 0)
    assert str(failed.value) == (
        "Line 5 of the file (data row 2): expected 3 fields, found 2."
    )

    skipping = extraction(on_bad_row=Project.OnBadRow.SKIP)
    assert skipping.stage_rows(batch, 10) == 13
    assert skipping.result.rejected_samples == [
        {"row": 12, "line": 5, "reason": "expected 3 fields, found 2"},
        {"row": 13, "reason": "missing key field(s) id"},
    ]


def test_a_bad_row_without_a_line_is_named_by_its_data_row(extraction):
    """A source that is not a file names the data row only."""
    with pytest.raises(BadRowError, match=r"^Row 1: record 1 is a JSON array"):
        extraction().stage_rows([BadRow(1, "record 1 is a JSON array")], 0)


def test_only_the_first_bad_rows_are_sampled(extraction):
    """Every bad row is counted; only the first few are kept."""
    skipping = extraction(on_bad_row=Project.OnBadRow.SKIP)
    skipping.stage_rows([{"id": None}] * (REJECTED_SAMPLES + 5), 0)
    assert skipping.result.rows_rejected == REJECTED_SAMPLES + 5
    assert len(skipping.result.rejected_samples) == REJECTED_SAMPLES


def test_bad_row_fails_the_run_and_names_the_row(make_project, write_csv):
    """By default a ragged row fails the run, naming its row; nothing lands."""
    path = write_csv([(1, "a", 1), (2, "b"), (3, "c", 3)])
    project = make_project(source={"path": str(path)})
    run = run_import(project)
    assert run.status == ImportRun.Status.FAILED
    assert run.error_class == "BadRowError"
    assert (
        run.error_message
        == "Line 3 of the file (data row 2): expected 3 fields, found 2."
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
    # Data rows, counted alike whoever found the row bad.
    assert samples == [
        {"row": 2, "line": 3, "reason": "expected 3 fields, found 2"},
        {"row": 3, "reason": "missing key field(s) id"},
    ]


def test_progress_counts_the_rows_read(make_project, write_csv):
    """The run's rows_read follows the extraction."""
    path = write_csv([(i, "x", i) for i in range(1, 251)])
    run = run_import(make_project(source={"path": str(path)}))
    assert run.status == ImportRun.Status.SUCCEEDED
    assert run.rows_read == 250
