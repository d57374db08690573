"""importhub's locks, slots and flags in Redis (imports/locks.py)."""

import math
import time

import pytest
import redis
from django.test import override_settings

from connectors.models import Connector
from imports.locks import (
    beat_ticks_claim,
    connector_slots,
    connector_slots_for_id,
    project_lock,
    project_lock_force_release,
    project_lock_held_by,
    project_lock_name,
    project_lock_owner,
    project_locks_held,
    redis_client,
    run_cancel_flag_set,
    run_cancel_requested,
    stat_get,
    stat_incr,
)
from locking import LockingUnavailable
from tests.locking.conftest import free_port


def test_redis_client_is_shared(settings):
    """One client (one connection pool) per URL and timeout."""
    assert redis_client() is redis_client()
    assert redis_client().connection_pool.connection_kwargs["socket_timeout"] == (
        settings.IMPORTHUB_REDIS_SOCKET_TIMEOUT
    )


def test_project_lock(settings, redis_prefix):
    """A project's lock is ``project:<id>`` under the prefix, with the run
    lease as TTL unless told otherwise."""
    lock = project_lock(7)
    assert lock.name == project_lock_name(7) == "project:7"
    assert lock.key == f"{redis_prefix}lock:{{project:7}}"
    assert lock.ttl == settings.IMPORTHUB_LEASE_SECONDS
    assert project_lock(7, ttl=2.5, token="t").ttl == 2.5
    assert project_lock(7, token="t").token == "t"


def test_project_lock_owner_held_by_and_force_release():
    """The owner is read by project id; force release frees the lock
    whoever holds it."""
    assert project_lock_owner(3) is None
    assert not project_lock_held_by(3, "run-a")
    assert project_lock(3, token="run-a").acquire() is not None
    assert project_lock(3, token="run-b").acquire() is None
    assert project_lock_owner(3) == "run-a"
    assert project_lock_held_by(3, "run-a")
    assert not project_lock_held_by(3, "run-b")
    assert project_lock_force_release(3) is True
    assert project_lock_owner(3) is None
    assert project_lock_force_release(3) is False


def test_project_locks_held(settings, redis_prefix):
    """Every project lock held now, with its owner and seconds left; not
    freed locks, not other locks or keys, not another prefix's locks."""
    project_lock(1, token="a", ttl=30).acquire()
    project_lock(2, token="b", ttl=5).acquire()
    project_lock(3, token="c").acquire()
    project_lock(3, token="c").release()
    connector_slots_for_id(1).acquire("lease")
    run_cancel_flag_set(1)
    redis = redis_client()
    redis.set(f"{redis_prefix}lock:{{project:not-an-id}}", "x", px=10_000)
    redis.set(f"{redis_prefix}lock:{{project:9}}", "by-hand")  # no expiry
    settings.IMPORTHUB_REDIS_PREFIX = f"{redis_prefix}other:"
    try:
        project_lock(4, token="elsewhere").acquire()
    finally:
        settings.IMPORTHUB_REDIS_PREFIX = redis_prefix
    held = {
        project_id: (owner, left) for project_id, owner, left in project_locks_held()
    }
    assert sorted(held) == [1, 2, 9]
    assert held[1][0] == "a" and 29 < held[1][1] <= 30
    assert held[2][0] == "b" and 4 < held[2][1] <= 5
    assert held[9] == ("by-hand", math.inf)


def test_project_locks_held_when_none():
    """No project lock, nothing yielded."""
    assert list(project_locks_held()) == []


@pytest.mark.django_db
def test_connector_slots(settings, make_connector):
    """A connector's slots are a semaphore of its limit, the same one by
    connector or by id."""
    connector = make_connector(max_concurrent_imports=2)
    slots = connector_slots(connector)
    assert slots.limit == 2
    assert slots.ttl == settings.IMPORTHUB_LEASE_SECONDS
    assert connector_slots(connector, ttl=3).ttl == 3
    assert slots.acquire("a") and slots.acquire("b")
    assert slots.acquire("c") is None
    by_id = connector_slots_for_id(connector.pk)
    assert {token for token, _ in by_id.holders()} == {"a", "b"}
    assert by_id.release("a")
    assert slots.count() == 1


def test_connector_slots_for_an_unsaved_connector():
    """Only the id and the limit matter."""
    slots = connector_slots(Connector(pk=41, max_concurrent_imports=3))
    assert slots.limit == 3
    assert slots.key == connector_slots_for_id(41).key


def test_run_cancel_flag(settings):
    """A cancel flag is per run and expires after the longest run."""
    assert not run_cancel_requested(5)
    run_cancel_flag_set(5)
    assert run_cancel_requested(5)
    assert not run_cancel_requested(6)
    ttl = redis_client().ttl(f"{settings.IMPORTHUB_REDIS_PREFIX}cancel:5")
    assert 0 < ttl <= settings.IMPORTHUB_MAX_RUNTIME_SECONDS


def test_beat_tick_claim():
    """The first beat to claim a tick gets it; the claim expires with its
    window. Many ticks are claimed in one call, each on its own."""
    assert beat_ticks_claim([("entry", 0.2)]) == [True]
    assert beat_ticks_claim([("entry", 0.2), ("another", 0.2)]) == [False, True]
    assert beat_ticks_claim([]) == []
    time.sleep(0.3)
    assert beat_ticks_claim([("entry", 0.2), ("another", 5)]) == [True, True]


def test_stats():
    """Counters start at zero and add up."""
    assert stat_get("rejected_busy") == 0
    stat_incr("rejected_busy")
    stat_incr("rejected_busy", 2)
    assert stat_get("rejected_busy") == 3
    assert stat_get("something_else") == 0


def test_unreachable_redis_raises_locking_unavailable():
    """With Redis gone, the flags, the stats reader and the lock scan raise
    LockingUnavailable (never a raw redis error); counting a stat does not
    fail at all."""
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        for operation in (
            lambda: run_cancel_flag_set(1),
            lambda: run_cancel_requested(1),
            lambda: stat_get("rejected_busy"),
            lambda: list(project_locks_held()),
            lambda: project_lock_owner(1),
            lambda: project_lock_held_by(1, "t"),
            lambda: beat_ticks_claim([("entry", 1)]),
        ):
            with pytest.raises(LockingUnavailable) as info:
                operation()
            assert isinstance(info.value.__cause__, redis.ConnectionError)
        stat_incr("rejected_busy")
