"""Celery's own state tells the truth about an import, as Flower reads it.

A failed run's task ends in FAILURE with the run's error, a retrying run's
in RETRY, a succeeded run's in SUCCESS: read back through Celery's result
backend (django-celery-results) from a real worker, never from the run.
"""

import pytest
from celery import states
from celery.result import AsyncResult
from django_celery_results.models import TaskResult

from imports.models import ImportRun
from imports.services.guard import import_run_request
from tests.conftest import MISSING_CSV, wait_for
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def finished(run: ImportRun, timeout: float = 60) -> ImportRun:
    return wait_for(
        lambda: ImportRun.objects.finished().filter(pk=run.pk).first(),
        timeout=timeout,
        message=f"run {run.pk} did not finish",
    )


def task_state(task_id: str, expected: str, timeout: float = 30) -> AsyncResult:
    """The task's result once Celery's backend says ``expected``."""

    def reached():
        result = AsyncResult(task_id)
        return result if result.state == expected else None

    return wait_for(
        reached,
        timeout=timeout,
        message=f"task {task_id} is {AsyncResult(task_id).state}, not {expected}",
    )


def worker_log_after(worker, task_id: str) -> str:
    """What the worker logged from the task's arrival on (the log file is
    appended to across sessions)."""
    log = worker.log_path.read_text(errors="replace")
    return log[log.index(task_id) :]


def test_a_failed_import_ends_its_task_in_failure(start_worker, make_project):
    """The task of a run that failed is FAILURE, with the run's error, and
    the worker logs it on one line, without a traceback."""
    worker = start_worker()
    project = make_project(source={"path": MISSING_CSV})
    run = import_run_request(project=project, requested_by="t", trigger="command")
    run = finished(run)
    assert run.status == ImportRun.Status.FAILED
    result = task_state(run.celery_task_id, states.FAILURE)
    assert result.failed()
    assert type(result.result).__name__ == "ImportRunFailed"
    assert run.error_class in str(result.result)
    assert f"run {run.pk}" in str(result.result)
    stored = TaskResult.objects.get(task_id=run.celery_task_id)
    assert stored.status == states.FAILURE
    assert stored.task_name == "imports.import_run_execute"
    assert run.error_class in stored.result
    # The run's own state is untouched by the task's exception.
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert run.retries.count() == 0
    wait_for(
        lambda: "raised expected" in worker_log_after(worker, run.celery_task_id),
        timeout=10,
    )
    log = worker_log_after(worker, run.celery_task_id)
    assert "raised unexpected" not in log
    assert "Traceback" not in log


def test_a_retrying_run_is_retry_then_failure(start_worker, make_project):
    """A transient failure leaves the attempt's task in RETRY; the last
    attempt, out of retries, in FAILURE."""
    server = LocalHttpServer().start()
    try:
        server.route("/data.csv", Reply({"error": "busy"}, status=503))
        start_worker()
        project = make_project(
            source={"url": server.url("/data.csv")},
            max_retries=1,
        )
        run = import_run_request(project=project, requested_by="t", trigger="command")
        first_task = run.celery_task_id
        run = finished(run)
    finally:
        server.stop()
    assert run.status == ImportRun.Status.FAILED
    assert run.attempt == 2
    assert run.celery_task_id != first_task
    retried = task_state(first_task, states.RETRY)
    assert type(retried.result).__name__ == "ImportRunRetrying"
    assert "503" in str(retried.result)
    failed = task_state(run.celery_task_id, states.FAILURE)
    assert "gave up after 2 attempts" in str(failed.result)
    assert TaskResult.objects.get(task_id=first_task).status == states.RETRY


def test_a_succeeded_import_ends_its_task_in_success(
    start_worker, make_project, write_csv
):
    """A succeeded run's task is SUCCESS, its result the run's status."""
    start_worker()
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = make_project(source={"path": str(path)})
    run = finished(
        import_run_request(project=project, requested_by="t", trigger="command")
    )
    assert run.status == ImportRun.Status.SUCCEEDED
    result = task_state(run.celery_task_id, states.SUCCESS)
    assert result.result == ImportRun.Status.SUCCEEDED
