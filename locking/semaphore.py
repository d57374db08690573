"""
Redis semaphores with expiring leases: at most ``limit`` holders per name.

Connector slots are leases, not counters: a counter that a crashed worker
never decrements leaks a slot forever, while a lease whose holder dies
simply expires. The leases live in a sorted set ``<prefix>sem:{<name>}:leases``
mapping each token to its expiry in milliseconds of the *Redis server's*
clock (``TIME``), so workers on hosts with skewed clocks agree on what has
expired. Every script purges expired leases before it counts::

      t=0   A and B hold the 2 slots; C is refused
      t=1   A releases; C takes the slot
      t=2   B's worker is SIGKILLed; its lease stays until B's TTL runs out
      t=32  the lease has expired: the next take purges it and succeeds

A take never waits: a caller that must wait for a slot keeps its own
first-come, first-served queue (importhub keeps its waiting runs in the
database) and tries again when a slot frees.

The limit is an argument of each call, so it can change at run time:
holders above a lowered limit keep their leases, and new takes are refused
until the count falls below the new limit. Renew a lease with
``locking.renewal.Renewer`` if the work may outlast its TTL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import ClassVar

import redis
from redis.commands.core import Script

from .client import (
    DEFAULT_PREFIX,
    UNAVAILABLE_ERRORS,
    decode,
    run_script,
    translate_errors,
    unavailable_message,
)
from .exceptions import LockingUnavailable
from .inspection import glob_escape, scan_batches
from .validation import ttl_to_ms, validate_limit, validate_name, validate_token

#: Lua that defines ``now``: the Redis server's clock in milliseconds.
LUA_NOW = """
    local t = redis.call('time')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""


class Semaphore:
    """
    A named Redis semaphore of ``limit`` expiring leases of ``ttl`` seconds.

    Each lease is identified by a token (a random hex string unless the
    caller passes one); release and extend take that token.
    """

    LUA_ACQUIRE_SCRIPT = (
        """
    -- KEYS[1] - leases zset (token -> expiry ms, server clock)
    -- ARGV[1] - token
    -- ARGV[2] - limit
    -- ARGV[3] - lease ttl in milliseconds
    -- return 1 if the lease was taken (or extended), 0 if no slot is free
"""
        + LUA_NOW
        + """
    redis.call('zremrangebyscore', KEYS[1], '-inf', now)
    local ttl = tonumber(ARGV[3])
    if not redis.call('zscore', KEYS[1], ARGV[1])
            and redis.call('zcard', KEYS[1]) >= tonumber(ARGV[2]) then
        return 0
    end
    redis.call('zadd', KEYS[1], now + ttl, ARGV[1])
    if redis.call('pttl', KEYS[1]) < ttl then
        redis.call('pexpire', KEYS[1], ttl)
    end
    return 1
"""
    )

    LUA_RELEASE_SCRIPT = (
        """
    -- KEYS[1] - leases zset
    -- ARGV[1] - token
    -- return 1 if the token held a live lease and it was removed, 0 otherwise
"""
        + LUA_NOW
        + """
    local expiry = redis.call('zscore', KEYS[1], ARGV[1])
    if not expiry then
        return 0
    end
    redis.call('zrem', KEYS[1], ARGV[1])
    if tonumber(expiry) <= now then
        return 0
    end
    return 1
"""
    )

    LUA_EXTEND_SCRIPT = (
        """
    -- KEYS[1] - leases zset
    -- ARGV[1] - token
    -- ARGV[2] - new lease ttl in milliseconds
    -- return 1 if the live lease was extended, 0 if the token holds none
"""
        + LUA_NOW
        + """
    redis.call('zremrangebyscore', KEYS[1], '-inf', now)
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

    LUA_HOLDERS_SCRIPT = (
        """
    -- KEYS[1] - leases zset
    -- return a flat list token1, ms left 1, token2, ms left 2, ... of the
    --   live leases, soonest to expire first
"""
        + LUA_NOW
        + """
    local live = redis.call('zrangebyscore', KEYS[1], '(' .. now, '+inf',
                            'withscores')
    local result = {}
    for i = 1, #live, 2 do
        result[#result + 1] = live[i]
        result[#result + 1] = tonumber(live[i + 1]) - now
    end
    return result
"""
    )

    lua_acquire: ClassVar[Script | None] = None
    lua_release: ClassVar[Script | None] = None
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
        self.limit = validate_limit(limit)
        self.ttl_ms = ttl_to_ms(ttl)
        self.client = client
        self.name = name
        self.ttl = float(ttl)
        self.prefix = prefix
        self.key = f"{prefix}sem:{{{name}}}:leases"
        self.register_scripts(client)

    @classmethod
    def register_scripts(cls, client: redis.Redis) -> None:
        """Register the Lua scripts once per class (see Lock)."""
        if cls.lua_acquire is None:
            cls.lua_release = client.register_script(cls.LUA_RELEASE_SCRIPT)
            cls.lua_extend = client.register_script(cls.LUA_EXTEND_SCRIPT)
            cls.lua_holders = client.register_script(cls.LUA_HOLDERS_SCRIPT)
            cls.lua_acquire = client.register_script(cls.LUA_ACQUIRE_SCRIPT)

    def __repr__(self) -> str:
        return f"<Semaphore {self.name!r} limit={self.limit} ttl={self.ttl}>"

    def acquire(
        self, token: str | None = None, *, limit: int | None = None
    ) -> str | None:
        """
        Take a lease and return its token, or None if no slot is free.

        ``token`` defaults to a fresh random one; a token that already holds
        a live lease just has it extended. ``limit`` overrides ``self.limit``
        for this call.

        Raises:
            ValueError: on an empty token or a limit < 1.
            LockingUnavailable: if Redis does not answer.
        """
        limit = self.limit if limit is None else validate_limit(limit)
        token = uuid.uuid4().hex if token is None else validate_token(token)
        result = self.do_acquire(token, limit)
        if result == 1:
            return token
        elif result == 0:
            return None
        else:
            raise RuntimeError(f"Unsupported error code {result}")

    def do_acquire(self, token: str, limit: int, *, ttl_ms: int | None = None) -> int:
        """Run the acquire script once: return 1 if the lease was taken, 0
        if every slot is held. ``ttl_ms`` overrides the lease's TTL."""
        ttl_ms = self.ttl_ms if ttl_ms is None else ttl_ms
        try:
            return run_script(
                self.client, self.lua_acquire, 1, self.key, token, limit, ttl_ms
            )
        except UNAVAILABLE_ERRORS as exc:
            raise LockingUnavailable(
                unavailable_message(f"acquiring semaphore {self.name!r}", exc)
            ) from exc

    def release(self, token: str) -> bool:
        """Give the lease ``token`` back; return False if it held none (it
        expired or was never taken)."""
        try:
            code = run_script(self.client, self.lua_release, 1, self.key, token)
        except UNAVAILABLE_ERRORS as exc:
            raise LockingUnavailable(
                unavailable_message(f"releasing semaphore {self.name!r}", exc)
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
            code = run_script(self.client, self.lua_extend, 1, self.key, token, ttl_ms)
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
            flat = run_script(self.client, self.lua_holders, 1, self.key)
        return [(decode(flat[i]), flat[i + 1] / 1000) for i in range(0, len(flat), 2)]

    def count(self) -> int:
        """Return the number of live leases."""
        return len(self.holders())

    @classmethod
    def held(
        cls,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        match: str = "*",
        count: int = 500,
    ) -> Iterator[tuple[str, str, float]]:
        """
        Yield ``(name, token, seconds left)`` for every live lease of every
        semaphore under ``prefix`` whose name matches the glob ``match``.

        SCAN (never KEYS) finds the semaphores (on every primary of a
        Cluster), and each one's live leases are read by the holders script,
        on the server's clock; a lease taken or given back during the walk
        may or may not be seen.
        """
        sem_prefix = f"{prefix}sem:{{"
        suffix = "}:leases"
        pattern = glob_escape(sem_prefix) + match + glob_escape(suffix)
        seen: set[str] = set()
        for found in scan_batches(client, pattern, count):
            for key in map(decode, found):
                if key in seen or not key.endswith(suffix):
                    continue
                seen.add(key)
                name = key[len(sem_prefix) : -len(suffix)]
                semaphore = cls(client, name, limit=1, ttl=1, prefix=prefix)
                for token, left in semaphore.holders():
                    yield name, token, left
