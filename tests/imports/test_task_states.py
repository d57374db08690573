"""How the execute task ends in Celery's terms, from the run's state."""

import pytest
from celery.exceptions import Retry

from imports.exceptions import ImportRunFailed, ImportRunRetrying
from imports.models import ImportRun
from imports.tasks import import_run_execute_task, task_outcome


def run(status, **fields) -> ImportRun:
    return ImportRun(pk=7, project_id=1, status=status, **fields)


def test_a_failed_run_raises_its_error():
    with pytest.raises(ImportRunFailed) as excinfo:
        task_outcome(
            run(
                ImportRun.Status.FAILED,
                error_class="PermanentSourceError",
                error_message="CSV file not found: x.csv",
            )
        )
    assert excinfo.value.args == (
        "run 7: PermanentSourceError: CSV file not found: x.csv",
    )


def test_a_retrying_run_records_retry_without_publishing():
    """``Retry`` only marks the state: the next attempt is already queued."""
    with pytest.raises(Retry) as excinfo:
        task_outcome(run(ImportRun.Status.RETRYING, error_class="TransientSourceError"))
    assert isinstance(excinfo.value.exc, ImportRunRetrying)
    assert excinfo.value.sig is None


@pytest.mark.parametrize(
    "status", [ImportRun.Status.SUCCEEDED, ImportRun.Status.CANCELLED]
)
def test_other_ends_are_a_success_with_the_status(status):
    assert task_outcome(run(status)) == status
    assert task_outcome(None) is None


def test_the_failure_is_expected_and_never_retried_by_celery():
    """Listed in ``throws`` (one log line, no traceback); no autoretry."""
    assert ImportRunFailed in import_run_execute_task.throws
    assert not getattr(import_run_execute_task, "autoretry_for", ())
