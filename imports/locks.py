"""The project locks and connector slots of importhub, built on locking/."""

from collections.abc import Iterator
from functools import lru_cache

import redis
from django.conf import settings

from locking import Lock, LockingUnavailable, Semaphore, make_redis_client


@lru_cache(maxsize=8)
def _client(url: str, socket_timeout: float) -> redis.Redis:
    return make_redis_client(url, socket_timeout=socket_timeout)


def redis_client() -> redis.Redis:
    """The shared Redis client for locks and slots (one pool per process)."""
    return _client(settings.REDIS_URL, settings.IMPORTHUB_REDIS_SOCKET_TIMEOUT)


def project_lock_name(project_id: int) -> str:
    return f"project:{project_id}"


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


def project_lock_force_release(project_id: int) -> bool:
    return Lock.force_release(
        redis_client(),
        project_lock_name(project_id),
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
    )


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
    """Tell a running import to stop at its next batch boundary."""
    redis_client().set(
        _cancel_key(run_id), b"1", ex=int(settings.IMPORTHUB_MAX_RUNTIME_SECONDS)
    )


def run_cancel_requested(run_id: int) -> bool:
    return bool(redis_client().exists(_cancel_key(run_id)))


def stat_incr(name: str, amount: int = 1) -> None:
    """Count an event in Redis (read by the metrics endpoint); never fails."""
    try:
        redis_client().incrby(f"{settings.IMPORTHUB_REDIS_PREFIX}stats:{name}", amount)
    except redis.RedisError:
        pass


def stat_get(name: str) -> int:
    value = redis_client().get(f"{settings.IMPORTHUB_REDIS_PREFIX}stats:{name}")
    return int(value or 0)


def project_lock_held_by(project_id: int, token: str) -> bool:
    """Whether the project's lock is held with ``token`` right now."""
    return Lock.has_lock_with_value(
        redis_client(),
        project_lock_name(project_id),
        token,
        prefix=settings.IMPORTHUB_REDIS_PREFIX,
    )


def beat_tick_claim(name: str, *, window: float) -> bool:
    """Claim one tick of schedule ``name``; False if another beat has it.

    The key lives for the tick's window, so two beat processes running the
    same schedule dispatch each tick once.
    """
    key = f"{settings.IMPORTHUB_REDIS_PREFIX}beat-tick:{name}"
    return bool(redis_client().set(key, b"1", nx=True, px=int(window * 1000)))


def project_locks_held() -> Iterator[tuple[int, str, float | None]]:
    """Every project lock held now: ``(project id, owner, seconds left)``.

    For the sweep, which frees the locks no active run owns. Scans the
    lock keys (SCAN, never KEYS); a lock that ends mid-scan is left out.
    """
    client = redis_client()
    prefix = settings.IMPORTHUB_REDIS_PREFIX
    pattern = f"{prefix}lock:{project_lock_name('*')}"
    try:
        keys = list(client.scan_iter(match=pattern, count=500))
    except redis.RedisError as exc:
        raise LockingUnavailable(f"cannot scan the project locks: {exc}") from exc
    for key in keys:
        name = key.decode().removeprefix(f"{prefix}lock:")
        project_id = int(name.rsplit(":", 1)[1])
        owner = Lock.current_owner(client, name, prefix=prefix)
        if owner is None:
            continue
        left = Lock(client, name, ttl=1, prefix=prefix, token=owner).ttl_remaining()
        yield project_id, owner, left
