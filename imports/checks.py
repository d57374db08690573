"""System checks: a command run beside the standalone demo finds its Redis."""

import redis
from django.conf import settings
from django.core.checks import Warning
from django.utils.translation import gettext as _

from locking.urls import redacted


def standalone_redis_check(app_configs=None, **kwargs) -> list:
    """In standalone mode (no DATABASE_URL, no REDIS_URL), warn when the
    demo's Redis does not answer: a run accepted now would wait for a worker
    that is not there. Every management command that runs the checks says
    so before it starts."""
    if not getattr(settings, "IMPORTHUB_STANDALONE", False):
        return []
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
    )
    try:
        client.ping()
    except redis.RedisError:
        return [
            Warning(
                _(
                    "The demo is not running: nothing answers at %(url)s, the "
                    "Redis that `make run` starts. Start the demo with `make "
                    "run`, or set DATABASE_URL and REDIS_URL to your services."
                )
                % {"url": redacted(settings.REDIS_URL)},
                id="importhub.W001",
            )
        ]
    finally:
        client.close()
    return []
