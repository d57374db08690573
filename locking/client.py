"""Redis client construction and translation of Redis errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .exceptions import LockingUnavailable

#: Errors meaning "Redis did not answer": the outcome of the command is
#: unknown. Everything else (a ResponseError from a script, say) is a bug and
#: propagates unchanged.
UNAVAILABLE_ERRORS = (redis.ConnectionError, redis.TimeoutError)

#: Upper bound, in seconds, of one blocking wait (BLPOP) when the client has
#: no socket timeout configured.
DEFAULT_WAIT_SLICE = 1.0


def make_redis_client(url: str, *, socket_timeout: float = 5.0) -> redis.Redis:
    """
    Return a Redis client for ``url`` that fails fast instead of hanging.

    Both the connect and the read timeout are ``socket_timeout`` seconds and
    the client never retries on its own: redis-py's default retry policy can
    back off for many seconds, and a caller holding a lock must learn quickly
    that Redis is gone (see ``LockingUnavailable``).
    """
    if socket_timeout <= 0:
        raise ValueError(f"socket_timeout must be > 0, got {socket_timeout!r}")
    return redis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=Retry(NoBackoff(), 0),
        retry_on_error=[],
        health_check_interval=0,
    )


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn Redis connection errors raised inside the block into
    ``LockingUnavailable``, naming the operation that failed."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise LockingUnavailable(f"Redis unavailable during {what}: {exc}") from exc


def wait_slice(client: redis.Redis) -> float:
    """
    Return the longest single blocking wait that is safe on ``client``.

    A blocking command (BLPOP) must return before the socket timeout fires,
    otherwise redis-py reports a timeout although Redis is healthy. Waits
    are therefore cut to half the socket timeout, and at most one second so
    that polling fallbacks stay responsive.
    """
    try:
        timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    except AttributeError:
        timeout = None
    if not timeout:
        return DEFAULT_WAIT_SLICE
    return max(0.01, min(DEFAULT_WAIT_SLICE, timeout / 2))
