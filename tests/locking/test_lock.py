"""Tests of locking.lock against a real Redis."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
import redis

import locking.lock
from locking import Lock, LockingError, LockNotOwned, make_redis_client


def test_acquire_returns_a_fence_and_excludes_others(make_lock):
    """A free lock is taken with a fencing token; a second owner is refused."""
    first, second = make_lock(), make_lock()
    fence = first.acquire()
    assert isinstance(fence, int) and fence >= 1
    assert first.fence == fence
    assert second.acquire() is None
    assert second.fence is None
    assert first.locked() and second.locked()
    assert first.owned() and not second.owned()
    assert first.owner() == first.token == second.owner()


def test_key_names_carry_the_prefix(redis_client, prefix, make_lock):
    """The lock lives at <prefix>lock:{<name>} and its fence counter at
    <prefix>fence:{<name>}, which never expires."""
    lock = make_lock("project:7")
    assert lock.key == f"{prefix}lock:{{project:7}}"
    lock.acquire()
    assert redis_client.get(lock.key) == lock.token.encode()
    assert redis_client.pttl(f"{prefix}fence:{{project:7}}") == -1
    assert 9 < redis_client.pttl(lock.key) / 1000 <= 10


def test_default_prefix_and_tokens():
    """The prefix defaults to "locking:" and each Lock gets its own random
    token."""
    client = redis.Redis()  # not connected: construction makes no call
    first, second = Lock(client, "x", ttl=1), Lock(client, "x", ttl=1)
    assert first.key == "locking:lock:{x}"
    assert first.token != second.token and len(first.token) == 32
    assert Lock(client, "x", ttl=1, token="mine").token == "mine"


def test_release_only_by_the_owner(make_lock):
    """Release is a compare-and-delete: another token cannot free the lock,
    and releasing twice reports that nothing was held."""
    owner, other = make_lock(), make_lock()
    owner.acquire()
    assert other.release() is False
    assert owner.locked()
    assert owner.release() is True
    assert not owner.locked()
    assert owner.release() is False


def test_extend_only_by_the_owner(make_lock):
    """Extend is a compare-and-pexpire: only the owner resets the TTL."""
    owner, other = make_lock(ttl=1), make_lock(ttl=1)
    owner.acquire()
    assert other.extend(30) is False
    assert owner.ttl_remaining() <= 1
    assert owner.extend(30) is True
    assert 29 < owner.ttl_remaining() <= 30
    assert owner.extend() is True
    assert 0.5 < owner.ttl_remaining() <= 1


def test_lock_expires_after_its_ttl(make_lock):
    """A holder that never releases loses the lock after the TTL; its
    extend and release then fail, and the next holder's fence is larger."""
    old, new = make_lock(ttl=0.2), make_lock(ttl=5)
    old_fence = old.acquire()
    assert 0 < old.ttl_remaining() <= 0.2
    time.sleep(0.4)
    assert not old.locked()
    assert old.ttl_remaining() is None
    new_fence = new.acquire()
    assert new_fence > old_fence
    assert old.extend() is False
    assert old.release() is False
    assert new.owned()


def test_fences_increase_strictly_across_holders(make_lock):
    """Every take of a name returns a larger fence than the one before,
    whoever takes it."""
    locks = [make_lock() for _ in range(3)]
    fences = []
    for _ in range(4):
        for lock in locks:
            fences.append(lock.acquire())
            assert lock.release()
    assert fences == sorted(set(fences))
    assert fences == list(range(fences[0], fences[0] + 12))


def test_fences_are_per_name(make_lock):
    """Each name has its own fence counter."""
    assert make_lock("a").acquire() == 1
    assert make_lock("b").acquire() == 1


def test_same_owner_retakes_a_held_lock(make_lock):
    """The same token re-takes its own lock: TTL restarts, new larger fence."""
    lock = make_lock(ttl=1)
    first = lock.acquire()
    lock.extend(0.3)
    again = make_lock(ttl=1, token=lock.token)
    second = again.acquire()
    assert second > first
    assert again.ttl_remaining() > 0.5
    assert lock.owned() and again.owned()


def test_same_owner_retakes_a_vanished_lock_unless_taken(redis_client, make_lock):
    """If the key vanished the owner re-takes it, but not once somebody
    else holds it."""
    lock = make_lock()
    first = lock.acquire()
    redis_client.delete(lock.key)
    assert lock.acquire() > first
    redis_client.delete(lock.key)
    intruder = make_lock()
    assert intruder.acquire() is not None
    assert lock.acquire() is None


def test_fence_floor_raises_a_lost_counter(redis_client, prefix, make_lock):
    """If Redis lost the fence counter, acquire(fence_floor=n) continues
    from n; a floor below the counter changes nothing."""
    lock = make_lock()
    assert lock.acquire() == 1
    lock.release()
    redis_client.delete(f"{prefix}fence:project:1")  # e.g. a failover
    assert lock.acquire(fence_floor=41) == 42
    lock.release()
    assert lock.acquire(fence_floor=5) == 43
    lock.release()
    assert lock.acquire(fence_floor=10**15) == 10**15 + 1


def test_context_manager(make_lock):
    """The with-block holds the lock and releases it on the way out, also
    when the block raises."""
    lock = make_lock()
    with lock as entered:
        assert entered is lock
        assert lock.owned()
        assert lock.fence >= 1
    assert not lock.locked()
    with pytest.raises(KeyError):
        with lock:
            raise KeyError("boom")
    assert not lock.locked()


def test_context_manager_reports_a_lost_lock(redis_client, prefix, make_lock):
    """Leaving the block after the lock was lost raises LockNotOwned."""
    lock = make_lock()
    with pytest.raises(LockNotOwned):
        with lock:
            Lock.force_release(redis_client, "project:1", prefix=prefix)
    assert issubclass(LockNotOwned, LockingError)


def test_blocking_acquire_times_out(make_lock):
    """A blocking acquire gives up after its timeout and returns None."""
    make_lock().acquire()
    waiter = make_lock()
    started = time.monotonic()
    assert waiter.acquire(blocking=True, timeout=0.3) is None
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 1.5
    assert waiter.acquire(blocking=True, timeout=0) is None


def test_blocking_acquire_is_woken_by_release(make_lock):
    """A waiter is woken by the release (not a poll), and gets the lock
    soon after it is released; median handover stays well under 50 ms."""
    holder, waiter = make_lock(ttl=30), make_lock(ttl=30)
    latencies = []
    for _ in range(15):
        assert holder.acquire() is not None
        acquired_at: list[float] = []

        def wait(acquired_at=acquired_at):
            assert waiter.acquire(blocking=True, timeout=10) is not None
            acquired_at.append(time.monotonic())

        thread = threading.Thread(target=wait)
        thread.start()
        time.sleep(0.02)  # let the waiter block
        released_at = time.monotonic()
        holder.release()
        thread.join(10)
        assert acquired_at
        latencies.append(acquired_at[0] - released_at)
        assert waiter.release()
    assert statistics.median(latencies) < 0.05


def test_blocking_acquire_takes_an_expired_lock(make_lock):
    """A lock that expires sends no signal; the waiter still takes it soon
    after the TTL, because its wait is bounded by the holder's TTL."""
    make_lock(ttl=0.3).acquire()
    waiter = make_lock()
    started = time.monotonic()
    assert waiter.acquire(blocking=True, timeout=5) is not None
    assert 0.2 < time.monotonic() - started < 1.5


class FakeLockTime:
    """A clock that jumps forward by ``step`` seconds at every read."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def monotonic(self) -> float:
        self.now += self.step
        return self.now


def test_blocking_timeout_follows_the_module_clock(monkeypatch, make_lock):
    """The blocking deadline is read from locking.lock.mod_time, so a fake
    clock controls it: a clock that jumps past the timeout ends the wait
    after one attempt."""
    make_lock().acquire()
    monkeypatch.setattr(locking.lock, "mod_time", FakeLockTime(step=100))
    started = time.monotonic()
    assert make_lock().acquire(blocking=True, timeout=50) is None
    assert time.monotonic() - started < 0.5


def test_decoded_client_works(redis_url, prefix):
    """A client with decode_responses=True gives the same answers."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    lock = Lock(client, "d", ttl=5, prefix=prefix)
    assert lock.acquire() >= 1
    assert lock.owner() == lock.token and lock.owned()
    assert lock.release()
    client.close()


@pytest.mark.parametrize("name", ["", None, 5])
def test_invalid_name(redis_client, name):
    """An empty or non-string name is refused at once."""
    with pytest.raises(ValueError):
        Lock(redis_client, name, ttl=1)


@pytest.mark.parametrize("ttl", [0, -1, 0.0001, float("nan"), float("inf"), "5"])
def test_invalid_ttl(redis_client, ttl):
    """A TTL that is not a positive number of milliseconds is refused."""
    with pytest.raises(ValueError):
        Lock(redis_client, "x", ttl=ttl)


def test_invalid_arguments(make_lock):
    """Contradictory or negative arguments are refused before any call."""
    lock = make_lock()
    with pytest.raises(ValueError):
        lock.acquire(timeout=1)  # a timeout needs blocking=True
    with pytest.raises(ValueError):
        lock.acquire(blocking=True, timeout=-1)
    with pytest.raises(ValueError):
        lock.acquire(fence_floor=-1)
    with pytest.raises(ValueError):
        lock.extend(0)
    with pytest.raises(ValueError):
        make_lock(token="")
    assert not lock.locked()


def test_make_redis_client_sets_timeouts(redis_url):
    """make_redis_client sets both socket timeouts and no retries."""
    client = make_redis_client(redis_url, socket_timeout=1.5)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 1.5
    assert kwargs["socket_connect_timeout"] == 1.5
    assert client.ping()
    client.close()
    with pytest.raises(ValueError):
        make_redis_client(redis_url, socket_timeout=0)
