"""Redis client construction and translation of Redis errors."""

from __future__ import annotations

import time as mod_time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisClusterException
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from .exceptions import LockingUnavailable
from .urls import RedisTarget, parse_redis_url

#: The key prefix of every lock and semaphore unless the caller names one.
DEFAULT_PREFIX = "locking:"

#: Every error of the Redis client means "Redis cannot serve this now" to
#: a caller of locking/, and none leaves the package raw: connection refused
#: or reset (``ConnectionError``), no answer within the socket timeout
#: (``TimeoutError``), ``LOADING`` while a restarted server reads its data
#: back (``BusyLoadingError``), ``READONLY`` from a server that a failover
#: turned into a replica, ``MASTERDOWN``, ``OOM``. The outcome of the command
#: may be unknown; the caller treats the resource as busy and tries later.
#: A Cluster client's "no node reachable" is not a ``RedisError``.
UNAVAILABLE_ERRORS = (redis.RedisError, RedisClusterException)

#: Upper bound, in seconds, of one blocking wait (BLPOP) when the client has
#: no socket timeout configured.
DEFAULT_WAIT_SLICE = 1.0

#: How late Redis may end a blocking command: it checks blocking timeouts
#: on its own timer tick (100 ms at the default ``hz 10``), so a BLPOP of
#: 0.1 s can return after 0.2 s.
BLPOP_LATENESS = 0.15

#: Sleep between attempts when the socket timeout is too short for BLPOP.
POLL_INTERVAL = 0.01


#: How often a Sentinel or Cluster client tries a command again after its
#: connection failed (the master died, or answered READONLY: a failover
#: demoted it), each time asking anew where the master is; the waits grow
#: from 50 ms to 0.5 s. A failover lasts longer than these tries (the
#: sentinels' ``down-after-milliseconds`` first): the caller then gets
#: ``LockingUnavailable``, and the renewer keeps trying until the lease
#: would end (see ``locking.renewal``). A repeated command is harmless:
#: every script is keyed by its holder's token (a take by the holder
#: re-takes, an extend extends again), only a statistics counter may count
#: twice.
FAILOVER_RETRIES = 3


def _failover_retry() -> Retry:
    return Retry(
        ExponentialBackoff(cap=0.5, base=0.05),
        FAILOVER_RETRIES,
        supported_errors=(redis.ConnectionError,),
    )


def make_redis_client(url: str, *, socket_timeout: float = 5.0) -> redis.Redis:
    """
    Return a Redis client for ``url`` that fails fast instead of hanging.

    ``url`` names one server (``redis://``, ``rediss://``, ``unix://``),
    the sentinels of a master (``sentinel://h1:p1,h2:p2/<master>/<db>``:
    the client follows the master through failovers) or a Redis Cluster
    (``redis+cluster://h1:p1,h2:p2``: a ``RedisCluster``), see
    ``locking.urls``.

    Both the connect and the read timeout are ``socket_timeout`` seconds.
    A client of one server never retries on its own: redis-py's default
    retry policy can back off for many seconds, and a caller holding a lock
    must learn quickly that Redis is gone (see ``LockingUnavailable``). A
    Sentinel or Cluster client retries a failed connection a few times
    (``FAILOVER_RETRIES``), since a new connection may find a new master.
    """
    if socket_timeout <= 0:
        raise ValueError(f"socket_timeout must be > 0, got {socket_timeout!r}")
    target = parse_redis_url(url)
    timeouts = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "health_check_interval": 0,
    }
    if target.kind == "sentinel":
        return _sentinel_master(target, timeouts)
    if target.kind == "cluster":
        # RedisCluster reads the slot map when built: a Cluster that cannot
        # be reached is reported like any other unavailable Redis.
        with translate_errors("connecting to the Redis Cluster"):
            return RedisCluster(
                startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
                username=target.username,
                password=target.password,
                retry=_failover_retry(),
                **timeouts,
            )
    return redis.Redis.from_url(
        url, retry=Retry(NoBackoff(), 0), retry_on_error=[], **timeouts
    )


#: How often, in seconds, a Sentinel client asks the sentinels again where
#: the master is, even though its connections still work.
MASTER_CHECK_SECONDS = 0.5


class CheckedMasterPool(SentinelConnectionPool):
    """
    A Sentinel pool that asks where the master is every
    ``MASTER_CHECK_SECONDS``, not only when a connection breaks.

    ``SENTINEL FAILOVER`` (or a network split) promotes the replica while
    the old master keeps running, and keeps accepting writes as a master
    until the sentinels reconfigure it, which they do only after their next
    ``INFO`` of it (up to ten seconds later). A client whose connections to
    the old master still work would go on writing there::

        t=0     A holds the lock, its renewer writes to master M1
        t=1     failover: M2 promoted; A's renewer reconnects to M2
        t=1..   B's pooled connection still reaches M1, still a master
        t=7     the lock expires on M1 (its renewals go to M2)
        t=7     B takes the lock on M1: two holders
        t=11    the sentinels turn M1 into a replica of M2

    Checked twice a second, every client leaves the old master within
    about a second of the sentinels' answer changing, far inside any lock's
    TTL; the idle connections to the old master are dropped.
    """

    _checked_at = float("-inf")

    def get_connection(self, *args: Any, **kwargs: Any):
        now = mod_time.monotonic()
        if now - self._checked_at >= MASTER_CHECK_SECONDS:
            self._checked_at = now
            self.get_master_address()
        return super().get_connection(*args, **kwargs)


def _sentinel_master(target: RedisTarget, timeouts: dict) -> redis.Redis:
    sentinel_kwargs = dict(timeouts)
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)
    return sentinel.master_for(
        target.master,
        connection_pool_class=CheckedMasterPool,
        db=target.db,
        username=target.username,
        password=target.password,
        retry=_failover_retry(),
        **timeouts,
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
    if isinstance(client, RedisCluster):
        kwargs = client.get_connection_kwargs()
    else:
        kwargs = getattr(client.connection_pool, "connection_kwargs", {})
    timeout = kwargs.get("socket_timeout")
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
