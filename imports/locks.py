"""The project locks and connector slots of importhub, built on locking/.

The one module of imports/ that names Redis keys: every other module asks
for a lock, a semaphore or a flag by project, connector or run id.
"""

from collections.abc import Iterator
from functools import lru_cache

import redis
from django.conf import settings

from locking import Lock, Semaphore, make_redis_client
from locking.client import translate_errors

#: Every project lock's name starts so; the project id follows.
PROJECT_LOCK_PREFIX = "project:"


@lru_cache(maxsize=8)
def _client(url: str, socket_timeout: float) -> redis.Redis:
    return make_redis_client(url, socket_timeout=socket_timeout)


def redis_client() -> redis.Redis:
    """The shared Redis client for locks and slots (one pool per process)."""
    return _client(settings.REDIS_URL, settings.IMPORTHUB_REDIS_SOCKET_TIMEOUT)


def project_lock_name(project_id: int) -> str:
    return f"{PROJECT_LOCK_PREFIX}{project_id}"


def project_lock(
    project_id: int, *, token: str | None = None, ttl: float | None = None
) -> Lock:
    """The Redis lock ``project:<id>`` that one import of a project holds."""
    return Lock(
        redis_client(),
        project_lock_name(project_id),
        ttl=ttl or settings.IMPORTHUB_LEASE_SECONDS,
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
        token=token,
    )


def project_lock_owner(project_id: int) -> str | None:
    return Lock.current_owner(
        redis_client(),
        project_lock_name(project_id),
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
    )


def project_lock_held_by(project_id: int, token: str) -> bool:
    """Whether the project's lock is held now with ``token``."""
    return Lock.has_lock_with_value(
        redis_client(),
        project_lock_name(project_id),
        token,
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
    )


def project_lock_force_release(project_id: int) -> bool:
    return Lock.force_release(
        redis_client(),
        project_lock_name(project_id),
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
    )


def project_locks_held() -> Iterator[tuple[int, str, float]]:
    """Yield ``(project id, owner token, seconds left)`` for every project
    lock held now (``math.inf`` seconds for a key set without expiry).

    Redis is scanned in batches (never KEYS), each lock is yielded once, and
    its owner and seconds left are read together. A name under ``project:``
    that does not end in an id (set by hand) is skipped.

    Raises:
        LockingUnavailable: if Redis does not answer, possibly after some
            locks were yielded.
    """
    held = Lock.held(
        redis_client(),
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
        match=f"{PROJECT_LOCK_PREFIX}*",
    )
    for name, owner, left in held:
        project_id = name.removeprefix(PROJECT_LOCK_PREFIX)
        if project_id.isdigit():
            yield int(project_id), owner, left


def connector_slots(connector, *, ttl: float | None = None) -> Semaphore:
    """The Redis semaphore holding a connector's import slots.

    A slot is a lease that expires ``ttl`` seconds (the run lease by
    default) after its holder last renewed it, so a dead holder frees it.
    """
    return Semaphore(
        redis_client(),
        f"connector:{connector.pk}",
        limit=connector.max_concurrent_imports,
        ttl=ttl or settings.IMPORTHUB_LEASE_SECONDS,
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
    )


def connector_slots_for_id(connector_id: int) -> Semaphore:
    """The semaphore of a connector known by id (to release or inspect)."""
    return Semaphore(
        redis_client(),
        f"connector:{int(connector_id)}",
        limit=1,
        ttl=settings.IMPORTHUB_LEASE_SECONDS,
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
    )


def _cancel_key(run_id: int) -> str:
    return f"{settings.IMPORTHUB_REDIS_PREFIX}cancel:{int(run_id)}"


def run_cancel_flag_set(run_id: int) -> None:
    """Tell a running import to stop at its next batch boundary.

    Raises:
        LockingUnavailable: if Redis cannot store the flag.
    """
    with translate_errors(f"flagging run {run_id} cancelled"):
        redis_client().set(
            _cancel_key(run_id), b"1", ex=int(settings.IMPORTHUB_MAX_RUNTIME_SECONDS)
        )


def run_cancel_requested(run_id: int) -> bool:
    """Whether the run's cancel flag is set.

    Raises:
        LockingUnavailable: if Redis cannot answer.
    """
    with translate_errors(f"reading the cancel flag of run {run_id}"):
        return bool(redis_client().exists(_cancel_key(run_id)))


def beat_tick_claim(entry_name: str, window: float) -> bool:
    """Claim one tick of a beat schedule entry for ``window`` seconds;
    False if another beat process claimed it first (two beats, one run).

    Raises:
        LockingUnavailable: if Redis cannot serve the claim.
    """
    key = f"{settings.IMPORTHUB_REDIS_PREFIX}beat-tick:{entry_name}"
    with translate_errors(f"claiming the beat tick of {entry_name!r}"):
        return bool(redis_client().set(key, b"1", nx=True, px=int(window * 1000)))


def stat_incr(name: str, amount: int = 1) -> None:
    """Count an event in Redis (read by the metrics endpoint); never fails."""
    try:
        redis_client().incrby(f"{settings.IMPORTHUB_REDIS_PREFIX}stats:{name}", amount)
    except redis.RedisError:
        pass


def stat_get(name: str) -> int:
    """Read a counter of stat_incr (0 if never counted).

    Raises:
        LockingUnavailable: if Redis cannot answer (the metrics endpoint
            reports Redis as down then, rather than a zero).
    """
    with translate_errors(f"reading the counter {name!r}"):
        value = redis_client().get(f"{settings.IMPORTHUB_REDIS_PREFIX}stats:{name}")
    return int(value or 0)
