"""What the broker holds: messages per queue and the workers consuming them.

Read at scrape time by ``imports.metrics`` (what an autoscaler reads), and
by the tests to count the messages a request published. Both transports:

- Redis: a queue is a list per priority step (kombu's ``queue``,
  ``queue\\x06\\x163``...); its length is the sum of their LLENs, read in
  one pipelined round trip.
- RabbitMQ: a passive ``queue.declare`` answers the queue's ready messages
  (``message_count``); a queue that does not exist yet holds none.

Messages a worker has taken but not acknowledged (running imports, retries
waiting for their countdown on a worker) are not counted by either. Runs
waiting for a connector slot hold no message at all (the sweep publishes
theirs when a slot frees), so the length counts work a new worker could
start now.
"""

from collections.abc import Iterable

from amqp.exceptions import NotFound
from django.conf import settings


def _app():
    from config.celery import app

    return app


def import_queues() -> list[str]:
    """The queues importhub's tasks go to: imports, then the control queue."""
    return [settings.IMPORTHUB_TASK_QUEUE, settings.IMPORTHUB_CONTROL_QUEUE]


def queue_lengths(queues: Iterable[str], *, url: str | None = None) -> dict[str, int]:
    """Ready messages in each queue, by name."""
    app = _app()
    names = list(dict.fromkeys(queues))
    with app.connection_for_read(url=url) as connection:
        connection.ensure_connection(max_retries=1)
        if connection.transport.driver_type == "amqp":
            return {name: _amqp_length(connection, name) for name in names}
        channel = connection.default_channel
        pipe = channel.client.pipeline()
        steps = list(channel.priority_steps)
        for name in names:
            for priority in steps:
                pipe.llen(channel._q_for_pri(name, priority))
        counts = pipe.execute()
    return {
        name: sum(counts[i * len(steps) : (i + 1) * len(steps)])
        for i, name in enumerate(names)
    }


def _amqp_length(connection, name: str) -> int:
    # A passive declare of a missing queue closes its channel: one each.
    channel = connection.channel()
    try:
        return channel.queue_declare(queue=name, passive=True).message_count
    except NotFound:
        return 0
    finally:
        try:
            channel.close()
        except Exception:  # noqa: S110 - closed by the broker already
            pass


def workers_by_queue(queues: Iterable[str], *, timeout: float) -> dict[str, int]:
    """How many workers answer a control broadcast within ``timeout``
    seconds, per queue they consume (only the given queues: other
    applications' workers on the same broker are not counted)."""
    names = list(dict.fromkeys(queues))
    found = {name: 0 for name in names}
    replies = _app().control.inspect(timeout=timeout).active_queues() or {}
    for consumed in replies.values():
        for name in {queue["name"] for queue in consumed or []} & set(names):
            found[name] += 1
    return found
