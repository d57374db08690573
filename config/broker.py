"""The Celery broker's settings, by transport: Redis or RabbitMQ.

No Django imports: ``config/settings.py`` calls these with its own values,
and the tests call them again when they point a process at another broker.

Imports are acknowledged late (``acks_late``): a message leaves the broker
only when its task has returned. Both brokers bound how long a message may
stay unacknowledged, and an import holds its message for its whole runtime
(a retry's message also waits for its countdown on the worker, unacked):

- Redis redelivers a message unacknowledged for ``visibility_timeout``
  seconds, to any worker. It must outlast the longest import, so it is
  derived from the runtime cap (see :func:`visibility_timeout`).
- RabbitMQ closes the channel of a consumer holding a message longer than
  its ``consumer_timeout`` (30 minutes by default) and requeues the message.
  Set it above the same bound (:func:`unacked_bound`) in ``rabbitmq.conf``
  (``consumer_timeout``, in milliseconds; RabbitMQ 3.12+ also takes a
  ``consumer-timeout`` policy on the queues).

Either way a redelivered copy of a running import's message is refused by
the run's claim (the run is no longer startable) and recorded as a stale
message; the running import carries on and ends as it would have.
"""

from urllib.parse import urlsplit

AMQP_SCHEMES = {"amqp", "amqps", "pyamqp", "librabbitmq"}
# An import's hard time limit is its soft limit plus this (imports/tasks.py).
TIME_LIMIT_GRACE_SECONDS = 60
# Added to every derived bound: a worker's clock, a slow ack, a late sweep.
MARGIN_SECONDS = 600


def is_amqp(url: str) -> bool:
    """Whether the broker URL names RabbitMQ (AMQP) rather than Redis."""
    return urlsplit(url).scheme in AMQP_SCHEMES


def unacked_bound(*, max_runtime: float, retry_max: float) -> float:
    """The longest an import's message can stay unacknowledged, in seconds:
    the longest countdown of a retry, the runtime cap and the hard limit's
    grace, plus a margin."""
    return retry_max + max_runtime + TIME_LIMIT_GRACE_SECONDS + MARGIN_SECONDS


def visibility_timeout(*, max_runtime: float, retry_max: float) -> float:
    """The Redis transport's visibility timeout: longer than any import."""
    return unacked_bound(max_runtime=max_runtime, retry_max=retry_max)


def transport_options(
    url: str, *, visibility: float, restore_interval: float | None = None
) -> dict:
    """``broker_transport_options`` for the broker the URL names.

    ``restore_interval`` (Redis): how often a worker looks for messages
    unacknowledged past the visibility timeout (kombu's default: about
    every 100 s).
    """
    if is_amqp(url):
        # Every publish waits for the broker's confirm, so a message the
        # broker did not take fails the dispatch (the guard then frees the
        # project) instead of vanishing.
        return {"confirm_publish": True}
    options = {
        "visibility_timeout": visibility,
        "socket_timeout": 5,
        "socket_connect_timeout": 3,
    }
    if restore_interval:
        options.update(
            unacked_restore_interval=restore_interval, unacked_restore_throttle=1
        )
    return options


def queue_settings(*, url: str, quorum: bool) -> dict:
    """Celery settings (lower-case names) for the queues Celery declares.

    ``quorum`` (RabbitMQ only): every queue Celery declares is a quorum
    queue behind a topic exchange, so a countdown (a retry's backoff) is
    delayed by the broker (Celery's native delayed delivery) rather than
    held unacknowledged by a worker, and workers use per-consumer QoS.
    """
    if not quorum:
        return {}
    if not is_amqp(url):
        raise ValueError("IMPORTHUB_QUORUM_QUEUES=1 needs a RabbitMQ broker (amqp://)")
    return {
        "task_create_missing_queue_type": "quorum",
        "task_create_missing_queue_exchange_type": "topic",
        "task_default_queue_type": "quorum",
        "task_default_exchange_type": "topic",
        "broker_native_delayed_delivery_queue_type": "quorum",
        "worker_detect_quorum_queues": True,
    }
