"""Tests of locking.semaphore against a real Redis."""

from __future__ import annotations

import time

import pytest

from locking import Semaphore


@pytest.fixture
def make_semaphore(redis_client, prefix):
    def make(name: str = "connector:1", limit: int = 2, ttl: float = 10, **kw):
        return Semaphore(redis_client, name, limit=limit, ttl=ttl, prefix=prefix, **kw)

    return make


def test_limit_holders_at_most(make_semaphore):
    """A semaphore of N grants N leases and refuses the next one."""
    semaphore = make_semaphore(limit=3)
    tokens = [semaphore.acquire() for _ in range(3)]
    assert all(tokens) and len(set(tokens)) == 3
    assert semaphore.acquire() is None
    assert semaphore.count() == 3
    holders = semaphore.holders()
    assert sorted(token for token, _ in holders) == sorted(tokens)
    assert all(9 < left <= 10 for _, left in holders)


def test_keys_carry_the_prefix(redis_client, prefix, make_semaphore):
    """Leases live under <prefix>sem:{<name>}:leases."""
    semaphore = make_semaphore("c")
    token = semaphore.acquire()
    assert redis_client.zscore(f"{prefix}sem:{{c}}:leases", token) is not None


def test_release_by_token(make_semaphore):
    """Only a token holding a lease releases it, once."""
    semaphore = make_semaphore(limit=1)
    token = semaphore.acquire("mine")
    assert token == "mine"
    assert semaphore.release("somebody-else") is False
    assert semaphore.count() == 1
    assert semaphore.release(token) is True
    assert semaphore.release(token) is False
    assert semaphore.count() == 0
    assert semaphore.acquire() is not None


def test_lease_expires_after_its_ttl(make_semaphore):
    """A lease whose holder never comes back frees its slot after the TTL;
    it can then be neither extended nor released."""
    semaphore = make_semaphore(limit=1, ttl=0.2)
    token = semaphore.acquire()
    time.sleep(0.4)
    assert semaphore.count() == 0
    assert semaphore.holders() == []
    assert semaphore.extend(token) is False
    assert semaphore.release(token) is False
    assert semaphore.acquire() is not None


def test_extend_prolongs_a_lease(make_semaphore):
    """Extend resets a live lease's TTL, by token only."""
    semaphore = make_semaphore(limit=1, ttl=0.3)
    token = semaphore.acquire()
    assert semaphore.extend(token, 30) is True
    assert semaphore.extend("nobody", 30) is False
    time.sleep(0.4)
    assert semaphore.holders()[0][0] == token
    assert 29 < semaphore.holders()[0][1] <= 30


def test_reacquire_with_a_held_token_extends(make_semaphore):
    """Acquiring again with a token that holds a lease extends it and takes
    no second slot."""
    semaphore = make_semaphore(limit=2, ttl=1)
    token = semaphore.acquire("t")
    semaphore.extend(token, 0.2)
    assert semaphore.acquire("t") == "t"
    assert semaphore.count() == 1
    assert semaphore.holders()[0][1] > 0.5


def test_limit_changes_at_run_time(make_semaphore):
    """Holders above a lowered limit keep their leases; new takes wait until
    the count falls below the limit. A raised limit admits more at once."""
    semaphore = make_semaphore(limit=3)
    tokens = [semaphore.acquire() for _ in range(3)]
    assert semaphore.acquire(limit=4) is not None
    assert semaphore.acquire(limit=2) is None
    assert semaphore.count() == 4
    semaphore.release(tokens[0])
    semaphore.release(tokens[1])
    assert semaphore.acquire(limit=2) is None  # two still held
    semaphore.release(tokens[2])
    assert semaphore.acquire(limit=2) is not None
    semaphore.limit = 1
    assert semaphore.acquire() is None


def test_freed_slot_is_taken_by_the_next_try(make_semaphore):
    """A take never waits: it is refused while every slot is held, and the
    next try after a release gets the slot."""
    semaphore = make_semaphore(limit=1)
    holder = semaphore.acquire()
    started = time.monotonic()
    assert semaphore.acquire() is None
    assert time.monotonic() - started < 0.5
    semaphore.release(holder)
    assert semaphore.acquire() is not None


def test_expired_lease_frees_its_slot_for_the_next_try(make_semaphore):
    """A lease that expires is purged by the next take, which gets the
    slot."""
    short = make_semaphore(limit=1, ttl=0.2)
    short.acquire()
    other = make_semaphore(limit=1, ttl=10)
    assert other.acquire() is None
    time.sleep(0.3)
    assert other.acquire() is not None


def test_only_the_leases_key_is_written(redis_client, prefix, make_semaphore):
    """The leases sorted set is the semaphore's one key, and it expires
    with its longest lease."""
    semaphore = make_semaphore("c", ttl=5)
    token = semaphore.acquire()
    semaphore.acquire()
    assert semaphore.acquire() is None
    semaphore.release(token)
    assert sorted(redis_client.scan_iter(match=f"{prefix}*")) == [
        f"{prefix}sem:{{c}}:leases".encode()
    ]
    assert 4 < redis_client.pttl(f"{prefix}sem:{{c}}:leases") / 1000 <= 5


def test_holders_on_an_unknown_name(make_semaphore):
    """An unused semaphore has no holders."""
    semaphore = make_semaphore("never-used")
    assert semaphore.holders() == []
    assert semaphore.count() == 0
    assert semaphore.release("x") is False
    assert semaphore.extend("x") is False


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"limit": 0},
        {"limit": -1},
        {"limit": 1.5},
        {"ttl": 0},
        {"ttl": -2},
    ],
)
def test_invalid_arguments(redis_client, kwargs):
    """An empty name, a limit < 1 or a TTL <= 0 is refused at once."""
    arguments = {"name": "c", "limit": 1, "ttl": 1} | kwargs
    name = arguments.pop("name")
    with pytest.raises(ValueError):
        Semaphore(redis_client, name, **arguments)


def test_invalid_acquire_arguments(make_semaphore):
    """Bad per-call arguments are refused before any call."""
    semaphore = make_semaphore()
    with pytest.raises(ValueError):
        semaphore.acquire(limit=0)
    with pytest.raises(ValueError):
        semaphore.acquire("")
    with pytest.raises(TypeError):
        semaphore.acquire(blocking=True)  # a take never waits
    with pytest.raises(ValueError):
        semaphore.extend("t", 0)
    assert semaphore.count() == 0
