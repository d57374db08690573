"""Tests of locking.inspection against a real Redis."""

from __future__ import annotations

import math
import threading
import time

import pytest
import redis

from locking import Lock
from locking.inspection import glob_escape


def test_key_layout(prefix):
    """Each name has its lock, fence, signal and waiter marker keys under
    the prefix, all with the name as their hash tag (one Cluster slot)."""
    assert Lock.keys("project:7", prefix) == (
        f"{prefix}lock:{{project:7}}",
        f"{prefix}fence:{{project:7}}",
        f"{prefix}signal:{{project:7}}",
        f"{prefix}waiters:{{project:7}}",
    )
    assert Lock.keys("x")[0] == "locking:lock:{x}"


@pytest.mark.parametrize("name", ["a{b", "a}b", "{x}"])
def test_a_name_with_braces_is_refused(name):
    with pytest.raises(ValueError, match="braces"):
        Lock.keys(name)
    with pytest.raises(ValueError, match="braces"):
        Lock(redis.Redis(), name, ttl=1)


def test_inspection_classmethods(redis_client, prefix, make_lock):
    """current_owner and has_lock_with_value read who holds a name."""
    lock = make_lock("p")
    assert Lock.current_owner(redis_client, "p", prefix=prefix) is None
    assert not Lock.has_lock_with_value(redis_client, "p", lock.token, prefix=prefix)
    lock.acquire()
    assert Lock.current_owner(redis_client, "p", prefix=prefix) == lock.token
    assert Lock.has_lock_with_value(redis_client, "p", lock.token, prefix=prefix)
    assert not Lock.has_lock_with_value(redis_client, "p", "other", prefix=prefix)
    assert Lock.current_owner(redis_client, "p") is None  # default prefix


def test_instance_inspection(make_lock):
    """locked, owned, owner and ttl_remaining describe the lock of a Lock
    object, for its holder and for anybody else."""
    holder, other = make_lock(ttl=5), make_lock(ttl=5)
    assert not holder.locked() and holder.owner() is None
    assert holder.ttl_remaining() is None
    holder.acquire()
    assert holder.locked() and other.locked()
    assert holder.owned() and not other.owned()
    assert other.owner() == holder.token
    assert 4 < other.ttl_remaining() <= 5


def test_force_release(redis_client, prefix, make_lock):
    """An operator frees a lock whoever holds it; the holder's extend and
    release then fail; freeing a free name reports False."""
    lock = make_lock()
    fence = lock.acquire()
    assert Lock.force_release(redis_client, "project:1", prefix=prefix) is True
    assert not lock.locked()
    assert lock.extend() is False
    assert lock.release() is False
    assert Lock.force_release(redis_client, "project:1", prefix=prefix) is False
    assert make_lock().acquire() > fence


def test_blocking_acquire_is_woken_by_force_release(redis_client, prefix, make_lock):
    """force_release wakes a waiter too."""
    make_lock(ttl=30).acquire()
    waiter = make_lock()
    timer = threading.Timer(
        0.1, Lock.force_release, (redis_client, "project:1"), {"prefix": prefix}
    )
    started = time.monotonic()
    timer.start()
    assert waiter.acquire(blocking=True, timeout=5) is not None
    assert time.monotonic() - started < 0.6
    timer.join()


def test_held_lists_the_held_locks(redis_client, prefix, make_lock):
    """held() yields name, owner and seconds left of every held lock under
    the prefix that matches, and nothing else: not freed or expired locks,
    not fence counters, not another prefix's locks."""
    one, two = make_lock("project:1", ttl=30), make_lock("project:2", ttl=5)
    one.acquire()
    two.acquire()
    make_lock("other:9").acquire()
    freed = make_lock("project:3")
    freed.acquire()
    freed.release()
    make_lock("project:4", ttl=0.05).acquire()
    Lock(redis_client, "project:1", ttl=30, prefix=f"{prefix}x:").acquire()
    time.sleep(0.1)
    held = {
        name: (owner, left)
        for name, owner, left in Lock.held(
            redis_client, prefix=prefix, match="project:*"
        )
    }
    assert set(held) == {"project:1", "project:2"}
    assert held["project:1"][0] == one.token
    assert held["project:2"][0] == two.token
    assert 29 < held["project:1"][1] <= 30
    assert 4 < held["project:2"][1] <= 5
    names = {name for name, _, _ in Lock.held(redis_client, prefix=prefix)}
    assert names == {"project:1", "project:2", "other:9"}


def test_held_walks_many_batches(redis_client, prefix, make_lock):
    """A scan of many small batches still reports each lock exactly once;
    a key set without expiry reports math.inf."""
    tokens = {}
    for i in range(60):
        lock = make_lock(f"project:{i}")
        lock.acquire()
        tokens[f"project:{i}"] = lock.token
    redis_client.set(f"{prefix}lock:{{project:forever}}", "by-hand")
    found = list(Lock.held(redis_client, prefix=prefix, count=7))
    assert len(found) == 61
    assert {name: owner for name, owner, _ in found} == tokens | {
        "project:forever": "by-hand"
    }
    assert dict((name, left) for name, _, left in found)["project:forever"] == (
        math.inf
    )


def test_held_takes_the_prefix_literally(redis_client, prefix):
    """Glob characters in the prefix match only themselves."""
    literal = f"{prefix}[ab]*?:"
    Lock(redis_client, "n", ttl=5, prefix=literal).acquire()
    Lock(redis_client, "n", ttl=5, prefix=f"{prefix}a-and-more?:").acquire()
    assert [name for name, _, _ in Lock.held(redis_client, prefix=literal)] == ["n"]
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


def test_held_with_a_decoding_client(redis_url, prefix):
    """A client with decode_responses=True gives the same answers."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    lock = Lock(client, "d", ttl=5, prefix=prefix)
    lock.acquire()
    assert [(n, o) for n, o, _ in Lock.held(client, prefix=prefix)] == [
        ("d", lock.token)
    ]
    client.close()


@pytest.mark.parametrize("name", ["", None, 5])
def test_invalid_name(redis_client, name):
    """An empty or non-string name is refused before any call."""
    with pytest.raises(ValueError):
        Lock.force_release(redis_client, name)
    with pytest.raises(ValueError):
        Lock.current_owner(redis_client, name)
