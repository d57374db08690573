"""Random sequences of lock and semaphore operations agree with a simple
in-memory model (hypothesis stateful testing, real Redis)."""

from __future__ import annotations

import uuid

import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from locking import Lock, Semaphore

NAMES = st.sampled_from(["a", "b"])
TOKENS = st.sampled_from(["t1", "t2", "t3"])
LEASE_TOKENS = st.sampled_from(["s1", "s2", "s3", "s4"])
# Long TTLs: nothing expires during an example, so the model needs no
# clock. Expiry is covered by test_lock and test_semaphore; here a holder
# vanishes only through force_release.
TTL = 60


def make_machine(client: redis.Redis) -> type[RuleBasedStateMachine]:
    class LockingModel(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.prefix = f"test-locking-model:{uuid.uuid4().hex}:"
            self.locks: dict[tuple[str, str], Lock] = {}
            self.holder: dict[str, str | None] = {"a": None, "b": None}
            self.counter: dict[str, int] = {"a": 0, "b": 0}
            self.semaphore = Semaphore(
                client, "s", limit=2, ttl=TTL, prefix=self.prefix
            )
            self.leases: set[str] = set()

        def lock(self, name: str, token: str) -> Lock:
            key = (name, token)
            if key not in self.locks:
                self.locks[key] = Lock(
                    client, name, ttl=TTL, prefix=self.prefix, token=token
                )
            return self.locks[key]

        def teardown(self) -> None:
            keys = list(client.scan_iter(match=f"{self.prefix}*"))
            if keys:
                client.delete(*keys)

        @rule(name=NAMES, token=TOKENS, floor=st.sampled_from([0, 0, 0, 3, 50]))
        def acquire(self, name: str, token: str, floor: int) -> None:
            fence = self.lock(name, token).acquire(fence_floor=floor)
            if self.holder[name] in (None, token):
                self.counter[name] = max(self.counter[name], floor) + 1
                assert fence == self.counter[name]
                self.holder[name] = token
            else:
                assert fence is None

        @rule(name=NAMES, token=TOKENS)
        def release(self, name: str, token: str) -> None:
            released = self.lock(name, token).release()
            assert released == (self.holder[name] == token)
            if released:
                self.holder[name] = None

        @rule(name=NAMES, token=TOKENS)
        def extend(self, name: str, token: str) -> None:
            assert self.lock(name, token).extend() == (self.holder[name] == token)

        @rule(name=NAMES)
        def force_release(self, name: str) -> None:
            freed = Lock.force_release(client, name, prefix=self.prefix)
            assert freed == (self.holder[name] is not None)
            self.holder[name] = None

        @rule(name=NAMES)
        def redis_loses_the_fence_counter(self, name: str) -> None:
            client.delete(Lock.keys(name, self.prefix)[1])
            self.counter[name] = 0

        @rule(token=LEASE_TOKENS, limit=st.sampled_from([None, 1, 2, 3]))
        def semaphore_acquire(self, token: str, limit: int | None) -> None:
            effective = self.semaphore.limit if limit is None else limit
            taken = self.semaphore.acquire(token, limit=limit)
            if token in self.leases or len(self.leases) < effective:
                assert taken == token
                self.leases.add(token)
            else:
                assert taken is None

        @rule(token=LEASE_TOKENS)
        def semaphore_release(self, token: str) -> None:
            assert self.semaphore.release(token) == (token in self.leases)
            self.leases.discard(token)

        @rule(token=LEASE_TOKENS)
        def semaphore_extend(self, token: str) -> None:
            assert self.semaphore.extend(token) == (token in self.leases)

        @invariant()
        def locks_agree(self) -> None:
            for name in ("a", "b"):
                holder = self.holder[name]
                assert Lock.current_owner(client, name, prefix=self.prefix) == holder
                probe = self.lock(name, "t1")
                assert probe.locked() == (holder is not None)
                assert probe.owned() == (holder == "t1")
                if holder is not None:
                    assert Lock.has_lock_with_value(
                        client, name, holder, prefix=self.prefix
                    )
                    assert 0 < probe.ttl_remaining() <= TTL

        @invariant()
        def leases_agree(self) -> None:
            holders = self.semaphore.holders()
            assert {token for token, _ in holders} == self.leases
            assert self.semaphore.count() == len(self.leases)

    return LockingModel


def test_operations_agree_with_the_model(redis_client):
    """Any sequence of takes, releases, extensions, force releases, lost
    fence counters and semaphore leases behaves like the in-memory model:
    one holder per lock, owner-only release/extend, exact fences, at most
    ``limit`` leases."""
    run_state_machine_as_test(
        make_machine(redis_client),
        settings=settings(
            max_examples=60,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture],
            database=None,
        ),
    )
