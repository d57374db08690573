"""
Where a lock lives in Redis, who holds it, and the operator's force release.

The keys of the lock ``name``, all with the hash tag ``{<name>}``, so that
a Redis Cluster keeps them in one slot and runs the scripts that touch
them together:

* ``<prefix>lock:{<name>}`` -- the holder's token, with the lock's TTL;
* ``<prefix>fence:{<name>}`` -- the fencing counter, which never expires;
* ``<prefix>signal:{<name>}`` -- the wake-up list that blocked takers BLPOP;
* ``<prefix>waiters:{<name>}`` -- a short-lived marker a blocked taker
  leaves, so that a release knows somebody waits for a signal.

``LockInspection`` reads locks (one by name, or all held under a prefix)
and frees one whoever holds it. ``locking.lock.Lock`` inherits it and adds
what needs the owner's token: take, extend, release.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import ClassVar

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script

from .client import (
    DEFAULT_PREFIX,
    decode,
    run_script,
    signal_ttl_ms,
    translate_errors,
)
from .validation import validate_name

#: Lua that wakes a blocked taker, if one left its marker: pushes one
#: signal (never more: the list is trimmed) that outlives the marker.
#: Expects KEYS[2] (signal list), KEYS[3] (waiter marker) and the signal
#: ttl in milliseconds as ``signal_ttl``.
LUA_WAKE_WAITER = """
        if redis.call('exists', KEYS[3]) == 1 then
            redis.call('lpush', KEYS[2], '1')
            redis.call('ltrim', KEYS[2], 0, 0)
            redis.call('pexpire', KEYS[2], signal_ttl)
        end
"""

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """Return ``text`` as a SCAN pattern that matches only itself."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def scan_batches(client: redis.Redis, pattern: str, count: int) -> Iterator[list]:
    """Yield the keys matching ``pattern`` a SCAN batch at a time: on one
    server, or on every primary of a Cluster in turn."""
    if isinstance(client, RedisCluster):
        with translate_errors("listing the Cluster's primaries"):
            nodes = client.get_primaries()
    else:
        nodes = [None]
    for node in nodes:
        cursor = 0
        while True:
            with translate_errors("scanning locks"):
                if node is None:
                    cursor, found = client.scan(cursor, match=pattern, count=count)
                else:
                    cursors, found = client.scan(
                        cursor, match=pattern, count=count, target_nodes=node
                    )
                    cursor = cursors[node.name]
            yield found
            if not cursor:
                break


class LockInspection:
    """
    The read-only side of a lock, and force release.

    The class methods address a lock by name and need no Lock object (an
    operator's tool, the sweep); the instance methods read the lock of a
    ``Lock`` object.
    """

    LUA_FORCE_RELEASE_SCRIPT = (
        """
        -- KEYS[1] - lock key
        -- KEYS[2] - signal list, BLPOP'ed by waiters
        -- KEYS[3] - waiter marker key
        -- ARGV[1] - signal ttl in milliseconds
        -- return 1 if a lock was deleted, 0 if the name was free
        if redis.call('del', KEYS[1]) == 0 then
            return 0
        end
        local signal_ttl = ARGV[1]
"""
        + LUA_WAKE_WAITER
        + """
        return 1
"""
    )

    lua_force_release: ClassVar[Script | None] = None

    # Set by Lock.__init__.
    client: redis.Redis
    name: str
    key: str
    token: str

    @staticmethod
    def keys(name: str, prefix: str = DEFAULT_PREFIX) -> tuple[str, str, str, str]:
        """Return the (lock, fence, signal, waiter marker) keys of ``name``."""
        validate_name(name)
        tag = f"{{{name}}}"
        return (
            f"{prefix}lock:{tag}",
            f"{prefix}fence:{tag}",
            f"{prefix}signal:{tag}",
            f"{prefix}waiters:{tag}",
        )

    # -- one lock, by name ---------------------------------------------------

    @classmethod
    def current_owner(
        cls, client: redis.Redis, name: str, *, prefix: str = DEFAULT_PREFIX
    ) -> str | None:
        """Return the token holding ``name``, or None if it is free."""
        validate_name(name)
        with translate_errors(f"inspecting lock {name!r}"):
            return decode(client.get(cls.keys(name, prefix)[0]))

    @classmethod
    def has_lock_with_value(
        cls,
        client: redis.Redis,
        name: str,
        value: str,
        *,
        prefix: str = DEFAULT_PREFIX,
    ) -> bool:
        """Return True if ``name`` is held with the token ``value``."""
        return cls.current_owner(client, name, prefix=prefix) == value

    @classmethod
    def force_release(
        cls, client: redis.Redis, name: str, *, prefix: str = DEFAULT_PREFIX
    ) -> bool:
        """
        Delete the lock whoever holds it (an operator's tool) and wake any
        waiter. Return True if a lock was freed. The former holder's next
        extend or release fails, and its fence is smaller than any later one.
        """
        validate_name(name)
        if cls.lua_force_release is None:
            cls.lua_force_release = client.register_script(cls.LUA_FORCE_RELEASE_SCRIPT)
        key, _, signal_key, waiters_key = cls.keys(name, prefix)
        with translate_errors(f"force-releasing lock {name!r}"):
            code = run_script(
                client,
                cls.lua_force_release,
                3,
                key,
                signal_key,
                waiters_key,
                signal_ttl_ms(client),
            )
        if code == 1:
            return True
        elif code == 0:
            return False
        else:
            raise RuntimeError(f"Unsupported error code {code}")

    # -- every lock under a prefix -------------------------------------------

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
        Yield ``(name, owner token, seconds left)`` for every lock held
        under ``prefix`` whose name matches the glob ``match``; the seconds
        left are ``math.inf`` for a key somebody set without expiry.

        SCAN (never KEYS) walks the keys ``count`` at a time, so Redis is
        not blocked; a lock taken or freed during the walk may or may not be
        seen, and each is yielded once. The owner and TTL of each batch are
        read in one MULTI, so they belong to the same holder.
        """
        lock_prefix = f"{prefix}lock:{{"
        pattern = glob_escape(lock_prefix) + match + glob_escape("}")
        # On a Cluster the locks are spread over the primaries, each
        # scanned to its end; a MULTI cannot span their slots, so owner and
        # TTL are read per key there (a lock freed in between has no TTL
        # and is skipped, as on one server).
        on_cluster = isinstance(client, RedisCluster)
        seen: set[str] = set()
        for found in scan_batches(client, pattern, count):
            keys = [key for key in map(decode, found) if key not in seen]
            seen.update(keys)
            if not keys:
                continue
            pipe = client.pipeline(transaction=not on_cluster)
            for key in keys:
                pipe.get(key)
                pipe.pttl(key)
            with translate_errors("inspecting locks"):
                replies = pipe.execute()
            for key, owner, pttl in zip(keys, replies[::2], replies[1::2], strict=True):
                if owner is None or pttl == -2:
                    continue  # freed since the scan saw it
                left = math.inf if pttl == -1 else pttl / 1000
                yield key[len(lock_prefix) : -1], decode(owner), left

    # -- this lock -----------------------------------------------------------

    def locked(self) -> bool:
        """Return True if anybody holds the lock."""
        with translate_errors(f"inspecting lock {self.name!r}"):
            return bool(self.client.exists(self.key))

    def owned(self) -> bool:
        """Return True if the lock is held with this object's token."""
        return self.owner() == self.token

    def owner(self) -> str | None:
        """Return the current holder's token, or None if the lock is free."""
        with translate_errors(f"inspecting lock {self.name!r}"):
            return decode(self.client.get(self.key))

    def ttl_remaining(self) -> float | None:
        """Return the seconds left before the lock expires, None if it is
        free (``math.inf`` for a key somebody set without expiry)."""
        with translate_errors(f"inspecting lock {self.name!r}"):
            pttl = self.client.pttl(self.key)
        if pttl == -2:
            return None
        if pttl == -1:
            return math.inf
        return pttl / 1000
