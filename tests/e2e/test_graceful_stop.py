"""A worker's warm shutdown finishes its run; a redelivery never runs twice."""

import signal

import pytest

from imports.models import ImportRun, ImportRunEvent, Record
from imports.services.guard import import_run_request
from tests.conftest import LOGS, WorkerProcess, wait_for
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.brokers,
]


@pytest.fixture
def own_queue(settings, broker):
    settings.IMPORTHUB_TASK_QUEUE = broker.queue("stop")
    yield settings.IMPORTHUB_TASK_QUEUE
    broker.delete(settings.IMPORTHUB_TASK_QUEUE)


def test_warm_shutdown_finishes_the_current_run(
    worker_env, own_queue, make_project, write_csv
):
    """SIGTERM while importing: the worker finishes the run, then exits."""
    path = write_csv([(i, "x", i) for i in range(150_000)])
    project = make_project(source={"path": str(path)})
    worker = WorkerProcess(
        env={**worker_env, "IMPORTHUB_TASK_QUEUE": own_queue},
        log_path=LOGS / "warm-shutdown.log",
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
    visibility timeout is longer than the cap on an import's runtime plus
    the longest retry countdown (held unacked on the worker)."""
    from config.celery import app

    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility > (
        settings.IMPORTHUB_MAX_RUNTIME_SECONDS
        + 60  # the hard time limit's grace
        + settings.IMPORTHUB_RETRY_MAX_SECONDS
    )


def test_duplicate_message_of_a_running_import_is_ignored(
    worker_env, own_queue, make_project
):
    """A second delivery of a running import's message (a redelivery, a
    replayed queue) reaches another worker, which finds the run running and
    does nothing."""
    from imports.tasks import import_run_execute_task

    rows = "".join(f"{i},x,{i}\n" for i in range(1000))
    server = LocalHttpServer().start()
    server.route("/slow.csv", Reply(body="id,name,amount\n" + rows, delay=4))
    project = make_project(source={"url": server.url("/slow.csv")})
    workers = [
        WorkerProcess(
            env={**worker_env, "IMPORTHUB_TASK_QUEUE": own_queue},
            log_path=LOGS / f"duplicate-{n}.log",
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
        import_run_execute_task.publish(run_id=run.pk, task_id=run.celery_task_id)
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


def test_cancelled_run_that_does_not_stop_is_revoked(
    worker_env, own_queue, make_project, settings
):
    """A run cancelled while stuck in a slow read is revoked after the grace:
    its worker process is terminated and the project is free again."""
    from imports.locks import project_lock_owner
    from imports.services.operations import import_run_cancel
    from imports.services.sweep import runs_sweep

    server = LocalHttpServer().start()
    server.route("/stuck.csv", Reply(body="id\n1\n", delay=60))
    project = make_project(source={"url": server.url("/stuck.csv")})
    worker = WorkerProcess(
        env={**worker_env, "IMPORTHUB_TASK_QUEUE": own_queue},
        log_path=LOGS / "revoke.log",
        concurrency=1,
    ).start()
    try:
        run = import_run_request(project=project, requested_by="t", trigger="command")
        wait_for(
            lambda: ImportRun.objects.get(pk=run.pk).status == ImportRun.Status.RUNNING,
            timeout=30,
            interval=0.02,
        )
        import_run_cancel(run=run, cancelled_by="op", reason="stuck")
        assert project_lock_owner(project.pk) == run.lock_token  # still running

        def revoked():
            runs_sweep()
            return run.events.filter(kind=ImportRunEvent.Kind.REVOKED).exists()

        wait_for(
            revoked, timeout=settings.IMPORTHUB_CANCEL_GRACE_SECONDS + 20, interval=0.5
        )
        assert project_lock_owner(project.pk) is None
        wait_for(lambda: b"Terminating" in worker.log_path.read_bytes(), timeout=20)
    finally:
        worker.stop()
        server.stop()
    run.refresh_from_db()
    assert run.status == ImportRun.Status.CANCELLED
    assert not Record.objects.filter(project=project).exists()
