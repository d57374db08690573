"""The broker settings chosen by transport (config/broker.py)."""

import pytest

from config import broker


def test_redis_visibility_timeout_outlasts_the_longest_unacked_time():
    options = broker.transport_options(
        "redis://127.0.0.1:6379/0",
        visibility=broker.visibility_timeout(max_runtime=3600, retry_max=900),
    )
    assert options["visibility_timeout"] > 3600 + 60 + 900
    assert "confirm_publish" not in options


def test_rabbitmq_confirms_publishes_and_has_no_redis_options():
    options = broker.transport_options("amqp://guest:guest@127.0.0.1//", visibility=9)
    assert options == {"confirm_publish": True}


def test_quorum_queues_need_rabbitmq():
    conf = broker.queue_settings(url="amqp://h//", quorum=True)
    assert conf["task_create_missing_queue_type"] == "quorum"
    assert conf["task_create_missing_queue_exchange_type"] == "topic"
    assert broker.queue_settings(url="redis://h/0", quorum=False) == {}
    with pytest.raises(ValueError, match="RabbitMQ"):
        broker.queue_settings(url="redis://h/0", quorum=True)
