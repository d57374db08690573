"""The brokers the end-to-end tests run on: Redis and RabbitMQ.

A test marked ``@pytest.mark.brokers`` runs once per broker (the
``broker`` fixture, parametrized per session in ``tests/conftest.py``):
its workers, beats and the test process itself publish and consume there.
Each session's queues have names of their own and are deleted at the end,
so sessions on one broker never see each other's messages.
"""

import os
import uuid
from dataclasses import dataclass, field

import kombu
import pytest
from django.conf import settings

from config import broker as broker_config

AMQP_URL = os.environ.get(
    "IMPORTHUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"
)
# Names a test may give: the broker, and RabbitMQ with quorum queues.
KINDS = ("redis", "rabbitmq", "rabbitmq-quorum")
DEFAULT_KINDS = ("redis", "rabbitmq")
# Celery's defaults of the settings queue_settings() may change.
CELERY_QUEUE_DEFAULTS = {
    "task_create_missing_queue_type": "classic",
    "task_create_missing_queue_exchange_type": None,
    "task_default_queue_type": "classic",
    "task_default_exchange_type": "direct",
    "broker_native_delayed_delivery_queue_type": "quorum",
    "worker_detect_quorum_queues": True,
}


@dataclass
class Broker:
    kind: str
    url: str
    quorum: bool = False
    queues: set[str] = field(default_factory=set)

    @classmethod
    def named(cls, kind: str, *, redis_url: str) -> "Broker":
        if kind not in KINDS:
            raise ValueError(f"unknown broker {kind!r}")
        if kind == "redis":
            return cls(kind, redis_url)
        return cls(kind, AMQP_URL, quorum=kind.endswith("quorum"))

    @property
    def is_amqp(self) -> bool:
        return broker_config.is_amqp(self.url)

    def env(self) -> dict[str, str]:
        """What a worker or beat process needs to use this broker."""
        return {
            "CELERY_BROKER_URL": self.url,
            "IMPORTHUB_QUORUM_QUEUES": "1" if self.quorum else "0",
        }

    def check(self) -> None:
        """Fail (never skip) when the broker does not answer."""
        try:
            with kombu.Connection(self.url, connect_timeout=3) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as exc:
            pytest.fail(
                f"the {self.kind} broker at {self.url} does not answer ({exc}); "
                "`make services` starts RabbitMQ (rabbitmq-server -detached)"
            )

    def queue(self, label: str) -> str:
        """A queue name of the session's own, deleted at its end."""
        name = f"{settings.IMPORTHUB_TASK_QUEUE}-{label}-{uuid.uuid4().hex[:6]}"
        self.queues.add(name)
        return name

    def count(self, queue: str) -> int:
        """Messages ready in ``queue``."""
        from imports.queues import queue_lengths

        return queue_lengths([queue], url=self.url)[queue]

    def delete(self, *queues: str) -> None:
        """Delete queues (and, on RabbitMQ, the exchange Celery made for
        each); a missing one is no error."""
        with kombu.Connection(self.url, connect_timeout=3) as connection:
            if self.is_amqp:
                for name in queues:
                    channel = connection.channel()
                    channel.queue_delete(queue=name)
                    channel.exchange_delete(exchange=name)
                    channel.close()
                return
            channel = connection.default_channel
            keys = [
                channel._q_for_pri(name, priority)
                for name in queues
                for priority in channel.priority_steps
            ]
            keys += [f"_kombu.binding.{name}" for name in queues]
            channel.client.delete(*keys)

    def use(self):
        """Point this process's Celery app at the broker; returns an undo."""
        from config.celery import app

        options = broker_config.transport_options(
            self.url, visibility=settings.CELERY_VISIBILITY_TIMEOUT
        )
        queue_conf = {
            **CELERY_QUEUE_DEFAULTS,
            **broker_config.queue_settings(url=self.url, quorum=self.quorum),
        }
        base = _base_settings()
        values = {
            "CELERY_BROKER_URL": self.url,
            "CELERY_BROKER_TRANSPORT_OPTIONS": options,
            "IMPORTHUB_QUORUM_QUEUES": self.quorum,
        }
        saved = {name: getattr(base, name) for name in values}
        previous = {
            "broker_url": app.conf.broker_url,
            "broker_transport_options": app.conf.broker_transport_options,
            **{name: app.conf[name] for name in queue_conf},
        }
        # Celery reads CELERY_BROKER_URL from the environment before its conf.
        previous_env = os.environ.get("CELERY_BROKER_URL")
        os.environ["CELERY_BROKER_URL"] = self.url
        for name, value in values.items():
            setattr(base, name, value)
        app.conf.update(
            broker_url=self.url, broker_transport_options=options, **queue_conf
        )
        _reset_connections(app)

        def undo():
            if previous_env is None:
                os.environ.pop("CELERY_BROKER_URL", None)
            else:
                os.environ["CELERY_BROKER_URL"] = previous_env
            app.conf.update(**previous)
            _reset_connections(app)
            for name, value in saved.items():
                setattr(base, name, value)

        return undo


def _base_settings():
    """Django's settings under every override_settings layer (a session's
    change must outlive, and not be undone by, the layers of its tests and
    of pytest-django's session fixtures)."""
    from django.conf import UserSettingsHolder

    assert settings.configured and settings.CELERY_BROKER_URL
    wrapped = settings._wrapped
    while isinstance(wrapped, UserSettingsHolder):
        wrapped = wrapped.default_settings
    return wrapped


def _reset_connections(app) -> None:
    """Drop the app's pooled connections and cached queue declarations, as
    Celery does after a fork, so the next publish uses the new broker."""
    app._pool = None
    app.amqp._producer_pool = None
    for cached in ("queues", "router", "default_queue"):
        app.amqp.__dict__.pop(cached, None)
