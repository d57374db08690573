"""RabbitMQ quorum queues (IMPORTHUB_QUORUM_QUEUES=1): an import retried
after a backoff, the backoff kept by the broker (native delayed delivery)."""

import kombu
import pytest
from amqp.exceptions import PreconditionFailed
from django.db import connection

from imports.models import ImportRun, ImportRunEvent, Record
from imports.queues import queue_lengths
from imports.services.guard import import_run_request
from tests.conftest import wait_for
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.brokers("rabbitmq-quorum"),
]

# Celery's native delayed delivery: one queue per bit of the delay.
DELAY_QUEUES = [f"celery_delayed_{level}" for level in range(28)]


def test_retry_is_delayed_by_the_broker(broker, start_worker, own_queue, make_project):
    """A 429 with Retry-After: the retry's message waits in the broker's
    delay queues (not unacknowledged on a worker), then the second attempt
    imports; the import queue is a quorum queue."""
    assert broker.quorum
    server = LocalHttpServer().start()
    runs = []

    def source(request):
        retried = ImportRunEvent.objects.filter(
            run__in=runs, kind=ImportRunEvent.Kind.RETRY_SCHEDULED
        ).exists()
        connection.close()  # the server thread's own connection
        if not retried:
            return Reply(status=429, headers={"Retry-After": "2"})
        return Reply(body="id,name,amount\n1,a,1\n2,b,2\n")

    server.route("/data.csv", source)
    project = make_project(source={"url": server.url("/data.csv")}, max_retries=2)
    start_worker()
    try:
        run = import_run_request(project=project, requested_by="t", trigger="command")
        runs.append(run.pk)
        wait_for(
            lambda: sum(queue_lengths(DELAY_QUEUES).values()) > 0,
            timeout=30,
            interval=0.05,
            message="the retry's message never waited in a delay queue",
        )
        run = wait_for(
            lambda: ImportRun.objects.finished().filter(pk=run.pk).first(),
            timeout=60,
        )
    finally:
        server.stop()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert run.attempt == 2
    scheduled = run.events.get(kind=ImportRunEvent.Kind.RETRY_SCHEDULED)
    assert scheduled.data["delay"] >= 2
    second = run.events.filter(kind=ImportRunEvent.Kind.STARTED).order_by("pk").last()
    assert (second.at - scheduled.at).total_seconds() >= 1.9
    assert Record.objects.filter(project=project).count() == 2

    # The queue is a quorum queue: declaring it classic is refused.
    with kombu.Connection(broker.url) as amqp:
        channel = amqp.channel()
        with pytest.raises(PreconditionFailed, match="x-queue-type"):
            channel.queue_declare(queue=own_queue, durable=True, auto_delete=False)
