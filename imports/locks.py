"""The project locks and connector slots of importhub, built on locking/.

The one module of imports/ that names Redis keys: every other module asks
for a lock, a semaphore or a flag by project, connector or run id.
"""

import uuid
from collections.abc import Iterator, Sequence
from functools import lru_cache

import redis
from django.conf import settings

from locking import Lock, LockingUnavailable, Semaphore, make_redis_client
from locking.admission import Admission, Outcome, admit
from locking.client import UNAVAILABLE_ERRORS, translate_errors

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


def run_lock_token(run_id: int | None) -> str:
    """A new owner token for a run's project lock.

    It names the run (``r<id>-<random>``) when the id is known before the
    lock is taken, so that the lock's value alone tells a refused request
    which run holds the project.
    """
    random = uuid.uuid4().hex
    return random if run_id is None else f"r{int(run_id)}-{random}"


def lock_token_run_id(token: str | None) -> int | None:
    """The run a lock token names (see ``run_lock_token``), or None."""
    if not token or not token.startswith("r"):
        return None
    head, dash, _rest = token[1:].partition("-")
    return int(head) if dash and head.isdigit() else None


def project_admission(
    project_id: int,
    *,
    token: str,
    ttl: float,
    connector=None,
    reject_when_full: bool = False,
    fence_floor: int = 0,
) -> Admission:
    """What the guard takes for one request: the project's lock and, with a
    ``connector``, one of its slots under the same token and TTL. Refusals
    are counted (``rejected_busy``, ``rejected_connector_busy``) by the same
    script that refuses."""
    lock = project_lock(project_id, token=token, ttl=ttl)
    slots = limit = None
    if connector is not None:
        limit = connector.max_concurrent_imports
        # A semaphore holds no state of a request: one per connector's
        # settings serves every request (the hot path builds none).
        slots = _slots(
            settings.REDIS_URL,
            settings.IMPORTHUB_REDIS_PREFIX,
            connector.pk,
            limit,
            ttl,
        )
    return Admission(
        lock,
        slots,
        limit=limit,
        reject_when_full=reject_when_full,
        fence_floor=fence_floor,
        busy_counter=_stat_key("rejected_busy"),
        full_counter=_stat_key("rejected_connector_busy"),
    )


def admissions_decide(admissions: Sequence[Admission]) -> list[Outcome]:
    """Decide every admission in one round trip (see ``locking.admission``).

    Raises:
        LockingUnavailable: if Redis does not answer.
    """
    return admit(redis_client(), admissions)


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


@lru_cache(maxsize=4096)
def _slots(url: str, prefix: str, connector_id: int, limit: int, ttl: float):
    return Semaphore(
        redis_client(), f"connector:{connector_id}", limit=limit, ttl=ttl, prefix=prefix
    )


def connector_slot_leases() -> Iterator[tuple[int, str, float]]:
    """Yield ``(connector id, holder token, seconds left)`` for every live
    slot lease of every connector (SCAN, never KEYS).

    Raises:
        LockingUnavailable: if Redis does not answer, possibly after some
            leases were yielded.
    """
    held = Semaphore.held(
        redis_client(), prefix=settings.IMPORTHUB_REDIS_PREFIX, match="connector:*"
    )
    for name, token, left in held:
        connector_id = name.removeprefix("connector:")
        if connector_id.isdigit():
            yield int(connector_id), token, left


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


def beat_ticks_claim(ticks: Sequence[tuple[str, float]]) -> list[bool]:
    """Claim ticks of beat schedule entries, ``(entry name, window seconds)``
    each, in one round trip; False for a tick another beat process claimed
    first (two beats, one run).

    Raises:
        LockingUnavailable: if Redis cannot serve the claims.
    """
    if not ticks:
        return []
    prefix = f"{settings.IMPORTHUB_REDIS_PREFIX}beat-tick:"
    with translate_errors(f"claiming {len(ticks)} beat ticks"):
        pipe = redis_client().pipeline(transaction=False)
        for name, window in ticks:
            pipe.set(f"{prefix}{name}", b"1", nx=True, px=int(window * 1000))
        return [bool(claimed) for claimed in pipe.execute()]


def _stat_key(name: str) -> str:
    return _prefixed_stat_key(settings.IMPORTHUB_REDIS_PREFIX, name)


@lru_cache(maxsize=64)
def _prefixed_stat_key(prefix: str, name: str) -> str:
    # Cached: the guard names two counters on every request.
    return f"{prefix}stats:{name}"


def stat_incr(name: str, amount: int = 1) -> None:
    """Count an event in Redis (read by the metrics endpoint); never fails."""
    try:
        redis_client().incrby(_stat_key(name), amount)
    except (*UNAVAILABLE_ERRORS, LockingUnavailable):
        pass


def stat_get(name: str) -> int:
    """Read a counter of stat_incr (0 if never counted).

    Raises:
        LockingUnavailable: if Redis cannot answer (the metrics endpoint
            reports Redis as down then, rather than a zero).
    """
    with translate_errors(f"reading the counter {name!r}"):
        value = redis_client().get(_stat_key(name))
    return int(value or 0)
