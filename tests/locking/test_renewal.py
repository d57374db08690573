"""Tests of locking.renewal against a real Redis."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from locking import Lock, Renewer, Semaphore


@pytest.fixture
def make_lock(redis_client, prefix):
    def make(name: str = "p", ttl: float = 0.3) -> Lock:
        return Lock(redis_client, name, ttl=ttl, prefix=prefix)

    return make


def test_renewer_keeps_a_lock_past_its_ttl(make_lock):
    """A renewed lock outlives its TTL several times over; once renewal
    stops it expires."""
    lock = make_lock(ttl=0.3)
    lock.acquire()
    renewals: list[float] = []
    renewer = Renewer(lock=lock, on_renewed=lambda: renewals.append(1))
    assert renewer.interval == pytest.approx(0.1)
    with renewer:
        time.sleep(1.0)
        assert lock.owned()
    assert not renewer.lost.is_set()
    assert len(renewals) >= 4
    time.sleep(0.5)
    assert not lock.locked()


def test_renewer_keeps_a_lease_past_its_ttl(redis_client, prefix):
    """A renewed semaphore lease outlives its TTL."""
    semaphore = Semaphore(redis_client, "c", limit=1, ttl=0.3, prefix=prefix)
    token = semaphore.acquire()
    with Renewer(lease=(semaphore, token)) as renewer:
        time.sleep(1.0)
        assert [t for t, _ in semaphore.holders()] == [token]
    assert not renewer.lost.is_set()


def test_renewer_keeps_both(redis_client, prefix, make_lock):
    """A lock and a lease renewed together, at a third of the shorter TTL."""
    lock = make_lock(ttl=0.6)
    lock.acquire()
    semaphore = Semaphore(redis_client, "c", limit=1, ttl=0.3, prefix=prefix)
    token = semaphore.acquire()
    with Renewer(lock=lock, lease=(semaphore, token)) as renewer:
        assert renewer.interval == pytest.approx(0.1)
        time.sleep(1.0)
        assert lock.owned() and semaphore.count() == 1
    assert not renewer.lost.is_set()


def test_renewer_reports_a_lost_lock_once(redis_client, prefix, make_lock):
    """When the lock is taken away the renewer sets ``lost``, records the
    reason and calls on_lost exactly once, within about one interval."""
    lock = make_lock(ttl=0.6)
    lock.acquire()
    calls: list[str] = []
    renewer = Renewer(lock=lock, on_lost=calls.append).start()
    Lock.force_release(redis_client, "p", prefix=prefix)
    started = time.monotonic()
    assert renewer.lost.wait(3)
    assert time.monotonic() - started < 1.0
    time.sleep(0.3)
    assert calls == [renewer.lost_reason]
    assert "lock 'p' lost" in renewer.lost_reason
    renewer.stop(timeout=2)
    assert not renewer._thread.is_alive()


def test_renewer_reports_a_lost_lease(redis_client, prefix):
    """A lease released (or expired) behind the holder's back is lost."""
    semaphore = Semaphore(redis_client, "c", limit=1, ttl=0.6, prefix=prefix)
    token = semaphore.acquire()
    with Renewer(lease=(semaphore, token)) as renewer:
        semaphore.release(token)
        assert renewer.lost.wait(3)
        assert "lease" in renewer.lost_reason


def test_renewer_can_be_stopped_from_on_lost(redis_client, prefix, make_lock):
    """Calling stop() from the on_lost callback (the renewer thread) is
    safe."""
    lock = make_lock(ttl=0.3)
    lock.acquire()
    done = threading.Event()
    renewer = Renewer(lock=lock)
    renewer.on_lost = lambda reason: (renewer.stop(), done.set())
    renewer.start()
    Lock.force_release(redis_client, "p", prefix=prefix)
    assert done.wait(3)


def test_failing_callbacks_do_not_stop_renewal(make_lock):
    """An exception in on_renewed is logged; renewal goes on."""
    lock = make_lock(ttl=0.3)
    lock.acquire()

    def broken() -> None:
        raise RuntimeError("callback bug")

    with Renewer(lock=lock, on_renewed=broken) as renewer:
        time.sleep(0.7)
        assert lock.owned()
    assert not renewer.lost.is_set()


def test_renewer_stops_when_the_lock_is_garbage_collected(make_lock):
    """The renewer only holds a weak reference: dropping the Lock ends the
    thread instead of keeping an abandoned lock alive forever."""
    lock = make_lock(ttl=0.3)
    lock.acquire()
    renewer = Renewer(lock=lock).start()
    del lock
    gc.collect()
    renewer._thread.join(2)
    assert not renewer._thread.is_alive()
    assert not renewer.lost.is_set()


def test_invalid_arguments(make_lock):
    """A renewer needs a target and a positive interval, and starts once."""
    with pytest.raises(ValueError):
        Renewer()
    with pytest.raises(ValueError):
        Renewer(lock=make_lock(), interval=0)
    renewer = Renewer(lock=make_lock(ttl=30)).start()
    with pytest.raises(RuntimeError):
        renewer.start()
    renewer.stop()
