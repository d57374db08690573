"""
Admission: a lock and a lease of a semaphore, taken together in one script.

A caller that needs both a lock (one holder per name) and a slot of a shared
semaphore (at most ``limit`` holders) would pay two round trips and a
window between them. ``admit()`` takes both in one atomic script per name,
and pipelines the scripts of many names into one round trip::

    admit(client, [Admission(lock_a, slots, limit=2), Admission(lock_b, ...)])
      -> [Admitted(fence=42, slot=True), Held(holder="r17-...", ttl=5.1)]

One script decides, for one name, and returns one of:

* ``Admitted(fence, slot)`` -- the lock is taken (a fence issued, as by
  ``Lock.acquire``); ``slot`` says whether a lease was taken too. With
  ``reject_when_full`` there is no admission without a slot.
* ``Held(holder, ttl)`` -- another token holds the lock: nothing was taken,
  and the holder's token comes back in the same reply, so the caller can
  say who holds it without a second question.
* ``Full()`` -- the lock is free but every slot is taken and the caller
  asked to be refused then: nothing was taken.

A refusal may count itself: ``busy_counter`` and ``full_counter`` are keys
the script increments when it answers ``Held`` or ``Full``, in the same
call.

Redis Cluster: the lock's keys share the hash tag of its name, and a
semaphore's keys the tag of its own name, so one script touching both is a
CROSSSLOT error on a Cluster. On a ``RedisCluster`` client each admission
therefore runs as two scripts, each on its own slot (the lock, then the
lease, releasing the lock if the lease is refused and the caller rejects
when full), and the counters are incremented by a command of their own.
Both paths give the same answers; a single server gets the one round trip.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from .client import UNAVAILABLE_ERRORS, decode, unavailable_message
from .exceptions import LockingUnavailable
from .lock import Lock
from .semaphore import LUA_NOW, Semaphore
from .validation import ttl_to_ms, validate_fence_floor, validate_limit


@dataclass(frozen=True, slots=True)
class Admitted:
    fence: int
    slot: bool


@dataclass(frozen=True, slots=True)
class Held:
    holder: str
    #: Seconds the holder's lock has left (``math.inf``: no expiry).
    ttl: float


@dataclass(frozen=True, slots=True)
class Full:
    pass


Outcome = Admitted | Held | Full


LUA_ADMIT = (
    """
    -- KEYS[1] - lock key              KEYS[2] - fence counter (never expires)
    -- KEYS[3] - leases zset, if ARGV[4] > 0
    -- KEYS[ARGV[7]] - counter of Held answers (ARGV[7] = 0: none)
    -- KEYS[ARGV[8]] - counter of Full answers (ARGV[8] = 0: none)
    -- ARGV[1] - token   ARGV[2] - lock ttl ms   ARGV[3] - fence floor
    -- ARGV[4] - slot limit (0: no semaphore)    ARGV[5] - lease ttl ms
    -- ARGV[6] - 1: refuse (Full) when no slot is free, 0: admit without one
    -- return {1, fence, slot 0/1} | {0, holder, holder pttl} | {2}
    local holder = redis.call('get', KEYS[1])
    if holder and holder ~= ARGV[1] then
        local busy = tonumber(ARGV[7])
        if busy > 0 then
            redis.call('incr', KEYS[busy])
        end
        return {0, holder, redis.call('pttl', KEYS[1])}
    end
    local slot = 0
    local limit = tonumber(ARGV[4])
    if limit > 0 then
"""
    + LUA_NOW
    + """
        redis.call('zremrangebyscore', KEYS[3], '-inf', now)
        if redis.call('zscore', KEYS[3], ARGV[1])
                or redis.call('zcard', KEYS[3]) < limit then
            local lease_ttl = tonumber(ARGV[5])
            redis.call('zadd', KEYS[3], now + lease_ttl, ARGV[1])
            if redis.call('pttl', KEYS[3]) < lease_ttl then
                redis.call('pexpire', KEYS[3], lease_ttl)
            end
            slot = 1
        elseif ARGV[6] == '1' then
            local full = tonumber(ARGV[8])
            if full > 0 then
                redis.call('incr', KEYS[full])
            end
            return {2}
        end
    end
    redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
    local floor = tonumber(ARGV[3])
    if floor > 0 and tonumber(redis.call('get', KEYS[2]) or '0') < floor then
        redis.call('set', KEYS[2], ARGV[3])
    end
    return {1, redis.call('incr', KEYS[2]), slot}
"""
)


class Admission:
    """
    What to take for one name: ``lock`` and, if ``slots`` is given, a lease
    of it under the lock's token.

    ``limit`` overrides the semaphore's own limit for this take; the lease
    lives ``lease_ttl`` seconds (default: the semaphore's TTL).
    ``fence_floor`` is the durable store's highest fence (see
    ``Lock.acquire``). A token that already holds the lock re-takes it (a
    new fence, the TTL restarted), as ``Lock.acquire`` does.
    """

    script: ClassVar[Script | None] = None

    __slots__ = (
        "lock",
        "slots",
        "limit",
        "lease_ttl_ms",
        "reject_when_full",
        "fence_floor",
        "busy_counter",
        "full_counter",
    )

    def __init__(
        self,
        lock: Lock,
        slots: Semaphore | None = None,
        *,
        limit: int | None = None,
        lease_ttl: float | None = None,
        reject_when_full: bool = False,
        fence_floor: int = 0,
        busy_counter: str | None = None,
        full_counter: str | None = None,
    ) -> None:
        self.lock = lock
        self.slots = slots
        self.limit = 0
        self.lease_ttl_ms = 0
        if slots is not None:
            self.limit = validate_limit(slots.limit if limit is None else limit)
            self.lease_ttl_ms = (
                slots.ttl_ms if lease_ttl is None else ttl_to_ms(lease_ttl)
            )
        self.reject_when_full = reject_when_full
        self.fence_floor = validate_fence_floor(fence_floor)
        self.busy_counter = busy_counter
        self.full_counter = full_counter

    def keys_and_args(self) -> tuple[int, list]:
        """The script's ``numkeys`` and its keys and arguments, for one
        server (every key in one call)."""
        keys = [self.lock.key, self.lock.fence_key]
        if self.slots is not None:
            keys.append(self.slots.key)
        busy = full = 0
        if self.busy_counter:
            keys.append(self.busy_counter)
            busy = len(keys)
        if self.full_counter:
            keys.append(self.full_counter)
            full = len(keys)
        args = [
            self.lock.token,
            self.lock.ttl_ms,
            self.fence_floor,
            self.limit,
            self.lease_ttl_ms,
            1 if self.reject_when_full else 0,
            busy,
            full,
        ]
        return len(keys), keys + args


def _script(client: redis.Redis) -> Script:
    if Admission.script is None:
        Admission.script = client.register_script(LUA_ADMIT)
    return Admission.script


def _outcome(admission: Admission, reply: list) -> Outcome:
    code = int(reply[0])
    if code == 1:
        admission.lock.fence = int(reply[1])
        return Admitted(fence=int(reply[1]), slot=bool(int(reply[2])))
    if code == 0:
        pttl = int(reply[2])
        return Held(holder=decode(reply[1]), ttl=math.inf if pttl < 0 else pttl / 1000)
    if code == 2:
        return Full()
    raise RuntimeError(f"Unsupported admission reply {reply!r}")


def admit(client: redis.Redis, admissions: Sequence[Admission]) -> list[Outcome]:
    """
    Decide every admission, in order, and return one outcome each.

    On a single server all scripts go in one pipelined round trip (each
    script is atomic; the batch is not a transaction: every name is
    decided on its own). On a ``RedisCluster`` each is decided on its own
    slots (see the module's docstring).

    Raises:
        LockingUnavailable: if Redis does not answer. On a single server
            the outcome of the batch is then unknown; the locks taken, if
            any, expire with their TTL.
    """
    if not admissions:
        return []
    try:
        if isinstance(client, RedisCluster):
            return [_admit_on_cluster(client, a) for a in admissions]
        return _admit_pipelined(client, admissions)
    except UNAVAILABLE_ERRORS as exc:
        raise LockingUnavailable(unavailable_message("admitting", exc)) from exc


def _admit_pipelined(client: redis.Redis, admissions: Sequence[Admission]) -> list:
    script = _script(client)
    calls = [a.keys_and_args() for a in admissions]
    if len(calls) == 1:
        numkeys, keys_and_args = calls[0]
        try:
            reply = client.evalsha(script.sha, numkeys, *keys_and_args)
        except NoScriptError:
            script.sha = client.script_load(script.script)
            reply = client.evalsha(script.sha, numkeys, *keys_and_args)
        return [_outcome(admissions[0], reply)]
    replies = _pipeline(client, script, calls)
    if any(isinstance(reply, NoScriptError) for reply in replies):
        # A server that lost its scripts ran none of them: load and redo
        # exactly those (nothing was taken for them).
        script.sha = client.script_load(script.script)
        missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        for i, reply in zip(
            missing,
            _pipeline(client, script, [calls[i] for i in missing]),
            strict=True,
        ):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return [_outcome(a, reply) for a, reply in zip(admissions, replies, strict=True)]


def _pipeline(client: redis.Redis, script: Script, calls: list) -> list:
    pipe = client.pipeline(transaction=False)
    for numkeys, keys_and_args in calls:
        pipe.evalsha(script.sha, numkeys, *keys_and_args)
    return pipe.execute(raise_on_error=False)


def _count(client: redis.Redis, key: str | None) -> None:
    if key:
        client.incr(key)


def _admit_on_cluster(client: RedisCluster, admission: Admission) -> Outcome:
    script = _script(client)
    lock = admission.lock
    # The lock alone: its two keys share the name's hash tag.
    lock_only = Admission(lock, fence_floor=admission.fence_floor)
    numkeys, keys_and_args = lock_only.keys_and_args()
    # On this client: the script object was registered on whichever client
    # came first, and would run there.
    reply = script(
        keys=keys_and_args[:numkeys], args=keys_and_args[numkeys:], client=client
    )
    outcome = _outcome(lock_only, reply)
    if isinstance(outcome, Held):
        _count(client, admission.busy_counter)
        return outcome
    if admission.slots is None:
        return outcome
    taken = admission.slots.do_acquire(
        lock.token, admission.limit, ttl_ms=admission.lease_ttl_ms
    )
    if taken == 1:
        return Admitted(fence=outcome.fence, slot=True)
    if admission.reject_when_full:
        lock.release()
        _count(client, admission.full_counter)
        return Full()
    return Admitted(fence=outcome.fence, slot=False)
