"""
Redis semaphores with expiring leases: at most ``limit`` holders per name.

Connector slots are leases, not counters: a counter that a crashed worker
never decrements leaks a slot forever, while a lease whose holder dies
simply expires. The leases live in a sorted set ``<prefix>sem:<name>:leases``
mapping each token to its expiry in milliseconds of the *Redis server's*
clock (``TIME``), so workers on hosts with skewed clocks agree on what has
expired. Every script purges expired leases before it counts.

Waiters are served first come, first served. A blocking acquire that finds
no free slot queues a ticket in ``<prefix>sem:<name>:queue`` (scored by
arrival order), with its own short expiry in ``...:queue:expiry`` so that a
dead waiter leaves the queue by itself. A caller may take a slot only while
fewer queued waiters stand ahead of it than there are free slots; a
non-blocking caller counts every queued waiter as ahead of it. A release
pushes a wake-up onto the list ``...:wake:<token>`` of the first waiter,
which BLPOPs it, and each successful take passes the wake-up on while
slots remain free. Expired leases and a raised limit send no wake-up, so
each wait is also bounded by the earliest lease expiry and a short poll::

      t=0   A and B hold the 2 slots; C queues (ticket 1), D queues (ticket 2)
      t=1   A releases: C (first in the queue) is woken and takes the slot
      t=2   a non-blocking E finds D queued ahead of it: refused
      t=3   B's worker is SIGKILLed; its lease expires at B's TTL and D,
            whose wait was bounded by that expiry, takes the slot

The limit is an argument of each call, so it can change at run time:
holders above a lowered limit keep their leases, and new takes wait until
the count falls below the new limit. Renew a lease with
``locking.renewal.Renewer`` if the work may outlast its TTL.
"""

from __future__ import annotations

import time as mod_time
import uuid
from typing import Any, ClassVar

import redis
from redis.commands.core import Script

from .client import (
    POLL_INTERVAL,
    UNAVAILABLE_ERRORS,
    run_script,
    translate_errors,
    wait_for_signal,
    wait_slice,
)
from .exceptions import LockingUnavailable
from .lock import DEFAULT_PREFIX, decode, ttl_to_ms, validate_name, validate_timeout

# Defines ``now``: the Redis server's clock in milliseconds.
_LUA_NOW = """
    local t = redis.call('time')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# Drops waiter tickets whose waiter stopped refreshing them (it died).
_LUA_PURGE_WAITERS = """
    local dead = redis.call('zrangebyscore', KEYS[3], '-inf', now)
    if #dead > 0 then
        redis.call('zrem', KEYS[2], unpack(dead))
        redis.call('zrem', KEYS[3], unpack(dead))
    end
"""

# Purges expired leases and waiter tickets. Expects ``now``.
_LUA_PURGE = (
    """
    redis.call('zremrangebyscore', KEYS[1], '-inf', now)
"""
    + _LUA_PURGE_WAITERS
)

# Wakes the first queued waiters if slots are free. Expects ``free``.
_LUA_WAKE = """
    if free > 0 then
        local first = redis.call('zrange', KEYS[2], 0, free - 1)
        for _, waiter in ipairs(first) do
            local wake = ARGV[1] .. waiter
            redis.call('lpush', wake, '1')
            redis.call('ltrim', wake, 0, 0)
            redis.call('pexpire', wake, ARGV[2])
        end
    end
"""


class Semaphore:
    """
    A named Redis semaphore of ``limit`` expiring leases of ``ttl`` seconds.

    Each lease is identified by a token (a random hex string unless the
    caller passes one); release and extend take that token.
    """

    # KEYS[1] - leases zset (token -> expiry ms, server clock)
    # KEYS[2] - waiter queue zset (token -> arrival number)
    # KEYS[3] - waiter expiry zset (token -> expiry ms)
    # KEYS[4] - arrival counter
    # ARGV[1] - wake-up list key prefix (the token is appended)
    # ARGV[2] - wake-up and waiter ticket ttl in milliseconds
    # ARGV[3] - token
    # ARGV[4] - limit
    # ARGV[5] - lease ttl in milliseconds
    # ARGV[6] - 1 to queue a waiter ticket if no slot is free, 0 not to
    # return 1 if the lease was taken (or extended), else -1 - the ms until
    #   the earliest lease expires (0 if there is no lease)
    LUA_ACQUIRE_SCRIPT = (
        _LUA_NOW
        + """
    redis.call('zremrangebyscore', KEYS[1], '-inf', now)
    local token = ARGV[3]
    local limit = tonumber(ARGV[4])
    local ttl = tonumber(ARGV[5])
    if redis.call('zscore', KEYS[1], token) then
        redis.call('zadd', KEYS[1], now + ttl, token)
    else
        -- The queue is usually empty: skip its bookkeeping then.
        local waiting = redis.call('zcard', KEYS[3]) > 0
        if waiting then
"""
        + _LUA_PURGE_WAITERS
        + """
        end
        local count = redis.call('zcard', KEYS[1])
        local free = limit - count
        local ahead = 0
        local queued = false
        if waiting then
            ahead = redis.call('zrank', KEYS[2], token)
            if ahead then
                queued = true
            else
                ahead = redis.call('zcard', KEYS[2])
            end
        end
        if ahead >= free then
            if ARGV[6] == '1' then
                if not queued then
                    redis.call('zadd', KEYS[2], redis.call('incr', KEYS[4]), token)
                end
                redis.call('zadd', KEYS[3], now + tonumber(ARGV[2]), token)
                redis.call('pexpire', KEYS[2], ARGV[2])
                redis.call('pexpire', KEYS[3], ARGV[2])
            end
            local earliest = redis.call('zrange', KEYS[1], 0, 0, 'withscores')
            if earliest[2] then
                return -1 - (tonumber(earliest[2]) - now)
            end
            return 0
        end
        redis.call('zadd', KEYS[1], now + ttl, token)
        if queued then
            redis.call('zrem', KEYS[2], token)
            redis.call('zrem', KEYS[3], token)
            -- Pass the wake-up on while slots remain free.
            free = free - 1
"""
        + _LUA_WAKE
        + """
        end
    end
    if redis.call('pttl', KEYS[1]) < ttl then
        redis.call('pexpire', KEYS[1], ttl)
    end
    return 1
"""
    )

    # KEYS[1] - leases zset
    # KEYS[2] - waiter queue zset
    # KEYS[3] - waiter expiry zset
    # ARGV[1] - wake-up list key prefix
    # ARGV[2] - wake-up ttl in milliseconds
    # ARGV[3] - token
    # ARGV[4] - limit (to know how many waiters to wake)
    # return 1 if the token held a live lease and it was removed, 0 otherwise
    LUA_RELEASE_SCRIPT = (
        _LUA_NOW
        + """
    local expiry = redis.call('zscore', KEYS[1], ARGV[3])
    if not expiry then
        return 0
    end
    redis.call('zrem', KEYS[1], ARGV[3])
    if tonumber(expiry) <= now then
        return 0
    end
    if redis.call('zcard', KEYS[3]) > 0 then
"""
        + _LUA_PURGE
        + """
        local free = tonumber(ARGV[4]) - redis.call('zcard', KEYS[1])
"""
        + _LUA_WAKE
        + """
    end
    return 1
"""
    )

    # KEYS[1] - leases zset
    # KEYS[2] - waiter queue zset
    # KEYS[3] - waiter expiry zset
    # ARGV[1] - wake-up list key prefix
    # ARGV[2] - wake-up ttl in milliseconds
    # ARGV[3] - token of the waiter giving up
    # ARGV[4] - limit
    # return 1 if a waiter ticket was removed, 0 otherwise
    LUA_CANCEL_SCRIPT = (
        _LUA_NOW
        + _LUA_PURGE
        + """
    if redis.call('zrem', KEYS[2], ARGV[3]) == 0 then
        return 0
    end
    redis.call('zrem', KEYS[3], ARGV[3])
    -- The leaving waiter may have swallowed a wake-up: pass it on.
    local free = tonumber(ARGV[4]) - redis.call('zcard', KEYS[1])
"""
        + _LUA_WAKE
        + """
    return 1
"""
    )

    # KEYS[1] - leases zset
    # KEYS[2] - waiter queue zset
    # KEYS[3] - waiter expiry zset
    # ARGV[1] - token
    # ARGV[2] - new lease ttl in milliseconds
    # return 1 if the live lease was extended, 0 if the token holds none
    LUA_EXTEND_SCRIPT = (
        _LUA_NOW
        + _LUA_PURGE
        + """
    if not redis.call('zscore', KEYS[1], ARGV[1]) then
        return 0
    end
    local ttl = tonumber(ARGV[2])
    redis.call('zadd', KEYS[1], 'xx', now + ttl, ARGV[1])
    if redis.call('pttl', KEYS[1]) < ttl then
        redis.call('pexpire', KEYS[1], ttl)
    end
    return 1
"""
    )

    # KEYS[1] - leases zset
    # return a flat list token1, ms left 1, token2, ms left 2, ... of the
    #   live leases, soonest to expire first
    LUA_HOLDERS_SCRIPT = """
        local t = redis.call('time')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local live = redis.call('zrangebyscore', KEYS[1], '(' .. now, '+inf',
                                'withscores')
        local result = {}
        for i = 1, #live, 2 do
            result[#result + 1] = live[i]
            result[#result + 1] = tonumber(live[i + 1]) - now
        end
        return result
    """

    lua_acquire: ClassVar[Script | None] = None
    lua_release: ClassVar[Script | None] = None
    lua_cancel: ClassVar[Script | None] = None
    lua_extend: ClassVar[Script | None] = None
    lua_holders: ClassVar[Script | None] = None

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        *,
        limit: int,
        ttl: float,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        validate_name(name)
        self.limit = self.validate_limit(limit)
        self.ttl_ms = ttl_to_ms(ttl)
        self.client = client
        self.name = name
        self.ttl = float(ttl)
        self.prefix = prefix
        base = f"{prefix}sem:{name}"
        self.key = f"{base}:leases"
        self._keys = (self.key, f"{base}:queue", f"{base}:queue:expiry")
        self._acquire_keys = (*self._keys, f"{base}:seq")
        self._wake_prefix = f"{base}:wake:"
        self._slice = wait_slice(client)
        # A waiter refreshes its ticket after every wait slice; the ticket
        # (and an unread wake-up) lives a generous margin longer.
        self._ticket_ms = int(((self._slice or POLL_INTERVAL) * 2 + 1.0) * 1000)
        self.register_scripts(client)

    @staticmethod
    def validate_limit(limit: Any) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be an int >= 1, got {limit!r}")
        return limit

    @classmethod
    def register_scripts(cls, client: redis.Redis) -> None:
        """Register the Lua scripts once per class (see Lock)."""
        if cls.lua_acquire is None:
            cls.lua_release = client.register_script(cls.LUA_RELEASE_SCRIPT)
            cls.lua_cancel = client.register_script(cls.LUA_CANCEL_SCRIPT)
            cls.lua_extend = client.register_script(cls.LUA_EXTEND_SCRIPT)
            cls.lua_holders = client.register_script(cls.LUA_HOLDERS_SCRIPT)
            cls.lua_acquire = client.register_script(cls.LUA_ACQUIRE_SCRIPT)

    def __repr__(self) -> str:
        return f"<Semaphore {self.name!r} limit={self.limit} ttl={self.ttl}>"

    def acquire(
        self,
        token: str | None = None,
        *,
        blocking: bool = False,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> str | None:
        """
        Take a lease and return its token, or None if no slot is free.

        ``token`` defaults to a fresh random one; a token that already holds
        a live lease just has it extended. ``limit`` overrides ``self.limit``
        for this call. With ``blocking=True`` the caller queues and waits up
        to ``timeout`` seconds (None: forever), served first come, first
        served; a non-blocking call never jumps ahead of queued waiters.

        Raises:
            ValueError: on an empty token, a limit < 1 or a bad timeout.
            LockingUnavailable: if Redis does not answer.
        """
        validate_timeout(blocking, timeout)
        limit = self.limit if limit is None else self.validate_limit(limit)
        if token is None:
            token = uuid.uuid4().hex
        elif not isinstance(token, str) or not token:
            raise ValueError(f"token must be a non-empty string, got {token!r}")
        if not blocking:
            return self._acquired(self.do_acquire(token, limit), token)
        return self._acquire_blocking(token, limit, timeout)

    def do_acquire(self, token: str, limit: int, queue: bool = False) -> int:
        """Run the acquire script once: return 1 if the lease was taken, or
        ``-1 - ms until the earliest lease expires`` (<= 0) if not."""
        try:
            return run_script(
                self.client,
                self.lua_acquire,
                4,
                *self._acquire_keys,
                self._wake_prefix,
                self._ticket_ms,
                token,
                limit,
                self.ttl_ms,
                1 if queue else 0,
            )
        except UNAVAILABLE_ERRORS as exc:
            raise LockingUnavailable(
                f"Redis unavailable while acquiring semaphore {self.name!r}: {exc}"
            ) from exc

    @staticmethod
    def _acquired(result: int, token: str) -> str | None:
        if result == 1:
            return token
        elif result <= 0:
            return None
        else:
            raise RuntimeError(f"Unsupported error code {result}")

    def _acquire_blocking(
        self, token: str, limit: int, timeout: float | None
    ) -> str | None:
        deadline = None if timeout is None else mod_time.monotonic() + timeout
        wake_key = self._wake_prefix + token
        try:
            while True:
                result = self.do_acquire(token, limit, queue=True)
                if self._acquired(result, token) is not None:
                    return token
                earliest_ms = -1 - result
                wait = self._slice or POLL_INTERVAL
                if earliest_ms >= 0:
                    # A lease that expires sends no wake-up.
                    wait = min(wait, earliest_ms / 1000 + 0.001)
                if deadline is not None:
                    remaining = deadline - mod_time.monotonic()
                    if remaining <= 0:
                        self._cancel(token, limit)
                        return None
                    wait = min(wait, remaining)
                wait_for_signal(
                    self.client,
                    wake_key,
                    wait,
                    self._slice,
                    f"waiting for semaphore {self.name!r}",
                )
        except LockingUnavailable:
            # No point in a second call that would wait out another socket
            # timeout: the ticket expires by itself.
            raise
        except BaseException:
            # Interrupted (KeyboardInterrupt, a Celery soft time limit): leave
            # the queue so later waiters are not held back by this ticket.
            try:
                self._cancel(token, limit)
            except LockingUnavailable:
                pass  # The ticket expires by itself.
            raise

    def _cancel(self, token: str, limit: int) -> bool:
        with translate_errors(f"leaving the queue of semaphore {self.name!r}"):
            return bool(
                self.lua_cancel(
                    keys=self._keys,
                    args=(self._wake_prefix, self._ticket_ms, token, limit),
                    client=self.client,
                )
            )

    def release(self, token: str) -> bool:
        """Give the lease ``token`` back; return False if it held none (it
        expired or was never taken)."""
        try:
            code = run_script(
                self.client,
                self.lua_release,
                3,
                *self._keys,
                self._wake_prefix,
                self._ticket_ms,
                token,
                self.limit,
            )
        except UNAVAILABLE_ERRORS as exc:
            raise LockingUnavailable(
                f"Redis unavailable while releasing semaphore {self.name!r}: {exc}"
            ) from exc
        if code == 1:
            return True
        elif code == 0:
            return False
        else:
            raise RuntimeError(f"Unsupported error code {code}")

    def extend(self, token: str, ttl: float | None = None) -> bool:
        """Reset the lease's TTL to ``ttl`` seconds (default: ``self.ttl``);
        return False if ``token`` holds no live lease (it was lost)."""
        ttl_ms = self.ttl_ms if ttl is None else ttl_to_ms(ttl)
        with translate_errors(f"extending semaphore {self.name!r}"):
            code = self.lua_extend(
                keys=self._keys, args=(token, ttl_ms), client=self.client
            )
        if code == 1:
            return True
        elif code == 0:
            return False
        else:
            raise RuntimeError(f"Unsupported error code {code}")

    def holders(self) -> list[tuple[str, float]]:
        """Return ``(token, seconds left)`` for every live lease, soonest to
        expire first."""
        with translate_errors(f"inspecting semaphore {self.name!r}"):
            flat = self.lua_holders(keys=(self.key,), client=self.client)
        return [(decode(flat[i]), flat[i + 1] / 1000) for i in range(0, len(flat), 2)]

    def count(self) -> int:
        """Return the number of live leases."""
        return len(self.holders())
