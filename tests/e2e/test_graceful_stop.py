"""A worker's warm shutdown finishes its run; a redelivery never runs twice."""

import signal
import uuid

import pytest

from imports.models import ImportRun, ImportRunEvent, Record
from imports.services.runs import import_run_request
from tests.conftest import ARTIFACTS, WorkerProcess, wait_for
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.fixture
def own_queue(settings):
    settings.IMPORTHUB_TASK_QUEUE = f"stop-{uuid.uuid4().hex[:8]}"
    return settings.IMPORTHUB_TASK_QUEUE


def test_warm_shutdown_finishes_the_current_run(
    worker_env, own_queue, make_project, write_csv
):
    """SIGTERM while importing: the worker finishes the run, then exits."""
    path = write_csv([(i, "x", i) for i in range(150_000)])
    project = make_project(source={"path": str(path)})
    worker = WorkerProcess(
        env={**worker_env, "IMPORTHUB_TASK_QUEUE": own_queue},
        log_path=ARTIFACTS / "logs" / "warm-shutdown.log",
        concurrency=1,
    ).start()
    try:
        run = import_run_request(project=project, requested_by="t", trigger="command")
        wait_for(
            lambda: ImportRun.objects.get(pk=run.pk).rows_read > 0,
            timeout=60,
            interval=0.02,
        )
        worker.process.send_signal(signal.SIGTERM)
        worker.process.wait(timeout=120)
    finally:
        worker.stop()
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert Record.objects.filter(project=project).count() == 150_000


def test_visibility_timeout_outlasts_any_import(settings):
    """The broker never redelivers a running import's message: its
    visibility timeout is longer than the cap on an import's runtime."""
    from config.celery import app

    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > settings.IMPORTHUB_MAX_RUNTIME_SECONDS


def test_duplicate_message_of_a_running_import_is_ignored(
    worker_env, own_queue, make_project
):
    """A second delivery of a running import's message (a redelivery, a
    replayed queue) reaches another worker, which finds the run running and
    does nothing."""
    from imports.services.runs import _publishing
    from imports.tasks import import_run_execute_task

    rows = "".join(f"{i},x,{i}\n" for i in range(1000))
    server = LocalHttpServer().start()
    server.route("/slow.csv", Reply(body="id,name,amount\n" + rows, delay=4))
    project = make_project(source={"url": server.url("/slow.csv")})
    workers = [
        WorkerProcess(
            env={**worker_env, "IMPORTHUB_TASK_QUEUE": own_queue},
            log_path=ARTIFACTS / "logs" / f"duplicate-{n}.log",
            concurrency=1,
        ).start()
        for n in range(2)
    ]
    try:
        run = import_run_request(project=project, requested_by="t", trigger="command")
        wait_for(
            lambda: ImportRun.objects.get(pk=run.pk).status == ImportRun.Status.RUNNING,
            timeout=30,
            interval=0.02,
        )
        with _publishing(run.pk):
            import_run_execute_task.apply_async(
                kwargs={"run_id": run.pk}, task_id=run.celery_task_id
            )
        run = wait_for(
            lambda: ImportRun.objects.finished().filter(pk=run.pk).first(),
            timeout=60,
        )
    finally:
        for worker in workers:
            worker.stop()
        server.stop()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    kinds = list(run.events.values_list("kind", flat=True))
    assert ImportRunEvent.Kind.STALE_MESSAGE in kinds
    assert kinds.count(ImportRunEvent.Kind.STARTED) == 1
    assert Record.objects.filter(project=project).count() == 1000
