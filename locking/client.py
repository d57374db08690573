"""Redis client construction and translation of Redis errors."""

from __future__ import annotations

import time as mod_time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.exceptions import NoScriptError
from redis.retry import Retry

from .exceptions import LockingUnavailable

#: The key prefix of every lock and semaphore unless the caller names one.
DEFAULT_PREFIX = "locking:"

#: Every error of the Redis client means "Redis cannot serve this now" to
#: a caller of locking/, and none leaves the package raw: connection refused
#: or reset (``ConnectionError``), no answer within the socket timeout
#: (``TimeoutError``), ``LOADING`` while a restarted server reads its data
#: back (``BusyLoadingError``), ``READONLY`` from a server that a failover
#: turned into a replica, ``MASTERDOWN``, ``OOM``. The outcome of the command
#: may be unknown; the caller treats the resource as busy and tries later.
UNAVAILABLE_ERRORS = (redis.RedisError,)

#: Upper bound, in seconds, of one blocking wait (BLPOP) when the client has
#: no socket timeout configured.
DEFAULT_WAIT_SLICE = 1.0

#: How late Redis may end a blocking command: it checks blocking timeouts
#: on its own timer tick (100 ms at the default ``hz 10``), so a BLPOP of
#: 0.1 s can return after 0.2 s.
BLPOP_LATENESS = 0.15

#: Sleep between attempts when the socket timeout is too short for BLPOP.
POLL_INTERVAL = 0.01


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
    """Turn any Redis error raised inside the block into
    ``LockingUnavailable``, naming the operation that failed."""
    try:
        yield
    except UNAVAILABLE_ERRORS as exc:
        raise LockingUnavailable(unavailable_message(what, exc)) from exc


def unavailable_message(what: str, exc: Exception) -> str:
    """The message of the ``LockingUnavailable`` raised from ``exc``."""
    return f"Redis unavailable during {what}: {type(exc).__name__}: {exc}"


def wait_slice(client: redis.Redis) -> float | None:
    """
    Return the longest single blocking wait that is safe on ``client``, or
    None if blocking commands are not safe at all.

    A BLPOP must return before the socket timeout fires, otherwise redis-py
    reports a timeout although Redis is healthy. Redis may end a blocking
    command up to a timer tick late, so waits are cut to half of what is
    left of the socket timeout after that lateness, and to at most one
    second so that the polling fallbacks stay responsive. Below 50 ms the
    caller polls with short sleeps instead.
    """
    try:
        timeout = client.connection_pool.connection_kwargs.get("socket_timeout")
    except AttributeError:
        timeout = None
    if not timeout:
        return DEFAULT_WAIT_SLICE
    usable = (timeout - BLPOP_LATENESS) / 2
    if usable < 0.05:
        return None
    return min(DEFAULT_WAIT_SLICE, usable)


def signal_ttl_ms(client: redis.Redis) -> int:
    """
    Return how long, in milliseconds, a waiter's marker (and an unread
    wake-up) lives on ``client``: one wait slice and a margin of a second,
    so that a release during the wait always finds the marker.
    """
    return int(((wait_slice(client) or POLL_INTERVAL) + 1.0) * 1000)


def wait_for_signal(
    client: redis.Redis, key: str, seconds: float, slice_: float | None, what: str
) -> None:
    """
    Wait up to ``seconds`` for a wake-up pushed onto the list ``key``
    (consuming it), or just sleep briefly if BLPOP is unsafe on ``client``
    (see ``wait_slice``). The caller retries its take either way.
    """
    if slice_ is None:
        mod_time.sleep(min(max(seconds, 0.0), POLL_INTERVAL))
        return
    # BLPOP treats a timeout of 0 as "forever" and has millisecond
    # resolution, so never pass less than a couple of milliseconds.
    seconds = round(max(min(seconds, slice_), 0.002), 3)
    with translate_errors(what):
        client.blpop([key], timeout=seconds)


def run_script(
    client: redis.Redis, script: Script, numkeys: int, *keys_and_args: Any
) -> Any:
    """
    Run a registered script with one EVALSHA, loading it first if the
    server lacks it (a restart, another server).

    This is ``Script.__call__`` without its per-call bookkeeping, for the
    hot paths (take and release) whose cost is benchmarked against a plain
    ``SET NX``.
    """
    try:
        return client.evalsha(script.sha, numkeys, *keys_and_args)
    except NoScriptError:
        script.sha = client.script_load(script.script)
        return client.evalsha(script.sha, numkeys, *keys_and_args)


def decode(value: bytes | str | None) -> str | None:
    """Return a reply as text, whether or not the client decodes replies."""
    if isinstance(value, bytes):
        return value.decode()
    return value
