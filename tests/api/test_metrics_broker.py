"""GET /metrics: queue lengths and workers alive, on each real broker."""

import pytest

from imports.models import ImportRun
from imports.services.guard import import_run_request
from tests.api.test_metrics import scrape
from tests.conftest import LOGS, WorkerProcess, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.brokers]


def test_queue_length_and_workers_alive(
    live_server, make_project, make_connector, worker_env, task_queue, settings, broker
):
    """Each accepted run is one message in the queue until a worker takes
    it; a run waiting for a connector slot is none; the worker consuming
    the queue answers the ping, and other queues' workers do not count."""
    connector = make_connector(max_concurrent_imports=2)
    runs = [
        import_run_request(
            project=make_project(connector=connector), requested_by="t", trigger="api"
        )
        for _ in range(3)
    ]
    assert [run.status for run in runs].count(ImportRun.Status.WAITING) == 1
    length = ("importhub_queue_length", (("queue", task_queue),))
    alive = ("importhub_workers_alive", (("queue", task_queue),))
    control = ("importhub_queue_length", (("queue", settings.IMPORTHUB_CONTROL_QUEUE),))

    samples = wait_for(
        lambda: (s := scrape(live_server.url))[length] == 2 and s,
        timeout=10,
        message="the two queued runs' messages are not counted",
    )
    assert samples[("importhub_broker_up", ())] == 1
    assert samples[alive] == 0
    assert control in samples

    elsewhere = WorkerProcess(
        env={**worker_env, "IMPORTHUB_TASK_QUEUE": broker.queue("other")},
        log_path=LOGS / "metrics-other-worker.log",
        concurrency=1,
        pool="solo",
    ).start()
    try:
        assert scrape(live_server.url)[alive] == 0
        worker = WorkerProcess(
            env={**worker_env, "IMPORTHUB_TASK_QUEUE": task_queue},
            log_path=LOGS / "metrics-worker.log",
            concurrency=1,
            pool="solo",
        ).start()
        try:
            # The worker takes the messages (the runs fail: no such file).
            samples = wait_for(
                lambda: (s := scrape(live_server.url))[length] == 0 and s,
                timeout=30,
                message="the worker's messages are still counted",
            )
            assert samples[alive] == 1
        finally:
            worker.stop()
        assert scrape(live_server.url)[alive] == 0
    finally:
        elsewhere.stop()


def test_broker_down_is_reported_not_raised(live_server, settings, broker):
    """A broker that does not answer: importhub_broker_up 0, the rest of the
    scrape still served."""
    from config.celery import app

    dead = (
        "amqp://guest:guest@127.0.0.1:1//"
        if broker.is_amqp
        else ("redis://127.0.0.1:1/0")
    )
    previous = app.conf.broker_url
    app.conf.broker_read_url = dead
    try:
        samples = scrape(live_server.url)
    finally:
        app.conf.broker_read_url = None
        assert app.conf.broker_url == previous
    assert samples[("importhub_broker_up", ())] == 0
    assert ("importhub_runs", (("status", "queued"),)) in samples
