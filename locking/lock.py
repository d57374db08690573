"""
Redis locks with fencing tokens: one holder per name.

A lock is a Redis key ``<prefix>lock:<name>`` whose value is the holder's
token. It is taken with one atomic script (check and set, with a TTL) and
released or extended only by a script that first compares the token, so a
holder can never free or prolong somebody else's lock.

What each part protects against:

* **TTL** -- a holder that crashes (SIGKILL, lost host) cannot block the
  name forever: the key expires ``ttl`` seconds after the last take or
  extension.
* **Renewal** (``locking.renewal.Renewer``) -- a live holder whose work
  outlasts the TTL keeps the lock by extending it every third of the TTL,
  and learns at once when an extension fails.
* **Fencing** -- a TTL alone cannot stop a *paused* holder. Each successful
  take increments a counter ``<prefix>fence:<name>`` that never expires and
  returns the new value. Whoever writes the protected data records the
  fence and refuses writes carrying a smaller one::

      t=0     worker A takes the lock            fence 41
      t=1     A is paused (GC, SIGSTOP, VM steal) for longer than the TTL
      t=ttl   the key expires
      t=ttl+1 worker B takes the lock            fence 42, B writes (42)
      t=ttl+5 A resumes and tries to write (41): rejected, 41 < 42
              A's renewer fails to extend and reports the loss

  Redis may lose the counter (flush, failover to a lagging replica), so
  ``acquire(fence_floor=n)`` first raises a missing or smaller counter to
  ``n``, the highest fence the durable store has recorded.

A blocking acquire does not poll in a tight loop: a failed attempt leaves a
short-lived waiter marker, and a release that sees the marker pushes a
signal onto ``<prefix>signal:<name>``, which waiters BLPOP. A lock that
simply expires sends no signal, so each wait is also bounded by the
holder's remaining TTL.

Every key of one name is addressed by the scripts together, so the keys
must live on one Redis server (no Redis Cluster slot routing).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time as mod_time
import uuid
import weakref
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
from .exceptions import LockingError, LockingUnavailable, LockNotOwned

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "locking:"

# Locks acquired by this process and not yet released, for
# release_all_current_locks(). Weak references: a Lock object that is
# garbage collected while held simply expires with its TTL.
_held: weakref.WeakSet[Lock] = weakref.WeakSet()
_held_guard = threading.Lock()


def _forget_inherited_locks() -> None:
    # A forked child (a Celery prefork worker, say) inherits the parent's
    # registry but not its locks: releasing them at the child's shutdown
    # would free locks the parent still relies on.
    global _held, _held_guard
    _held = weakref.WeakSet()
    _held_guard = threading.Lock()


os.register_at_fork(after_in_child=_forget_inherited_locks)


def validate_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")


def ttl_to_ms(ttl: Any, what: str = "ttl") -> int:
    """Return ``ttl`` seconds as whole milliseconds, rejecting values that
    are not positive or round down to zero."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float):
        raise ValueError(f"{what} must be a number of seconds, got {ttl!r}")
    if not ttl > 0 or math.isinf(ttl):
        raise ValueError(f"{what} must be > 0 and finite, got {ttl!r}")
    ms = int(round(ttl * 1000))
    if ms < 1:
        raise ValueError(f"{what} must be at least 0.001 seconds, got {ttl!r}")
    return ms


def validate_timeout(blocking: bool, timeout: float | None) -> None:
    if timeout is None:
        return
    if not blocking:
        raise ValueError("timeout only applies to a blocking acquire")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
    if timeout < 0 or math.isnan(timeout):
        raise ValueError(f"timeout must be >= 0, got {timeout!r}")


def decode(value: bytes | str | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return value


class Lock:
    """
    A named Redis lock with a TTL, owner-only release and fencing tokens.

    ``token`` identifies the owner; two Lock objects built with the same
    token are the same owner (that is how a process re-takes its own lock
    after a restart), and so are threads sharing one Lock object: give each
    would-be owner its own Lock. ``ttl`` is in seconds, with millisecond
    precision.
    """

    # KEYS[1] - lock key
    # KEYS[2] - fence counter key (never expires)
    # KEYS[3] - waiter marker key (asks release to signal)
    # ARGV[1] - token
    # ARGV[2] - ttl in milliseconds
    # ARGV[3] - fence floor (0 = none)
    # ARGV[4] - waiter marker ttl in milliseconds (0 = the caller won't wait)
    # return the new fence (>= 1) if taken, else -1 - the holder's pttl
    #   (<= 0; 0 for a holder without expiry). One integer, not a table:
    #   it is cheaper to parse on the hot path.
    LUA_ACQUIRE_SCRIPT = """
        if not redis.call('set', KEYS[1], ARGV[1], 'nx', 'px', ARGV[2]) then
            if redis.call('get', KEYS[1]) ~= ARGV[1] then
                if tonumber(ARGV[4]) > 0 then
                    redis.call('set', KEYS[3], '1', 'px', ARGV[4])
                end
                return -1 - redis.call('pttl', KEYS[1])
            end
            -- The same owner re-takes its lock: restart the TTL.
            redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2])
        end
        local floor = tonumber(ARGV[3])
        if floor > 0 and tonumber(redis.call('get', KEYS[2]) or '0') < floor then
            redis.call('set', KEYS[2], ARGV[3])
        end
        return redis.call('incr', KEYS[2])
    """

    # KEYS[1] - lock key
    # KEYS[2] - signal list, BLPOP'ed by waiters
    # KEYS[3] - waiter marker key
    # ARGV[1] - token
    # ARGV[2] - signal ttl in milliseconds
    # return 1 if the token held the lock and it was deleted, 0 otherwise
    LUA_RELEASE_SCRIPT = """
        if redis.call('get', KEYS[1]) ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        if redis.call('exists', KEYS[3]) == 1 then
            redis.call('lpush', KEYS[2], '1')
            redis.call('ltrim', KEYS[2], 0, 0)
            redis.call('pexpire', KEYS[2], ARGV[2])
        end
        return 1
    """

    # KEYS[1] - lock key
    # KEYS[2] - signal list, BLPOP'ed by waiters
    # KEYS[3] - waiter marker key
    # ARGV[1] - signal ttl in milliseconds
    # return 1 if a lock was deleted, 0 if the name was free
    LUA_FORCE_RELEASE_SCRIPT = """
        if redis.call('del', KEYS[1]) == 0 then
            return 0
        end
        if redis.call('exists', KEYS[3]) == 1 then
            redis.call('lpush', KEYS[2], '1')
            redis.call('ltrim', KEYS[2], 0, 0)
            redis.call('pexpire', KEYS[2], ARGV[1])
        end
        return 1
    """

    # KEYS[1] - lock key
    # ARGV[1] - token
    # ARGV[2] - new ttl in milliseconds
    # return 1 if extended, 0 if the token does not hold the lock
    LUA_EXTEND_SCRIPT = """
        if redis.call('get', KEYS[1]) ~= ARGV[1] then
            return 0
        end
        redis.call('pexpire', KEYS[1], ARGV[2])
        return 1
    """

    lua_acquire: ClassVar[Script | None] = None
    lua_release: ClassVar[Script | None] = None
    lua_force_release: ClassVar[Script | None] = None
    lua_extend: ClassVar[Script | None] = None

    def __init__(
        self,
        client: redis.Redis,
        name: str,
        *,
        ttl: float,
        prefix: str = DEFAULT_PREFIX,
        token: str | None = None,
    ) -> None:
        validate_name(name)
        self.ttl_ms = ttl_to_ms(ttl)
        if token is None:
            token = uuid.uuid4().hex
        elif not isinstance(token, str) or not token:
            raise ValueError(f"token must be a non-empty string, got {token!r}")
        self.client = client
        self.name = name
        self.ttl = float(ttl)
        self.prefix = prefix
        self.token = token
        self.fence: int | None = None
        self.key, self._fence_key, self._signal_key, self._waiters_key = self.keys(
            name, prefix
        )
        self._keys = (self.key, self._fence_key, self._waiters_key)
        self._release_keys = (self.key, self._signal_key, self._waiters_key)
        self._slice = wait_slice(client)
        # The marker outlives one wait slice by a margin, so a release
        # during the wait always finds it.
        self._marker_ms = int(((self._slice or POLL_INTERVAL) + 1.0) * 1000)
        self.register_scripts(client)

    @staticmethod
    def keys(name: str, prefix: str = DEFAULT_PREFIX) -> tuple[str, str, str, str]:
        """Return the (lock, fence, signal, waiter marker) keys of ``name``."""
        return (
            f"{prefix}lock:{name}",
            f"{prefix}fence:{name}",
            f"{prefix}signal:{name}",
            f"{prefix}waiters:{name}",
        )

    @classmethod
    def register_scripts(cls, client: redis.Redis) -> None:
        """Register the Lua scripts once per class. A script object computes
        its SHA locally and reloads itself on any server that lacks it, so
        one registration serves every client."""
        if cls.lua_acquire is None:
            cls.lua_release = client.register_script(cls.LUA_RELEASE_SCRIPT)
            cls.lua_force_release = client.register_script(cls.LUA_FORCE_RELEASE_SCRIPT)
            cls.lua_extend = client.register_script(cls.LUA_EXTEND_SCRIPT)
            cls.lua_acquire = client.register_script(cls.LUA_ACQUIRE_SCRIPT)

    def __repr__(self) -> str:
        return f"<Lock {self.name!r} token={self.token} fence={self.fence}>"

    # -- taking --------------------------------------------------------------

    def acquire(
        self,
        *,
        blocking: bool = False,
        timeout: float | None = None,
        fence_floor: int = 0,
    ) -> int | None:
        """
        Take the lock and return its fencing token, or None if it is held.

        The lock is taken if the name is free or already held with this
        token (the same owner re-taking it: the TTL restarts and a new,
        larger fence is issued). With ``blocking=True`` the call waits up to
        ``timeout`` seconds (None: forever) for the holder to release or
        expire. ``fence_floor`` is the highest fence the caller's durable
        store has recorded; the counter is raised to it first, so fences
        stay monotonic even if Redis lost the counter.

        Raises:
            ValueError: on a negative timeout or fence floor, or a timeout
                given without ``blocking``.
            LockingUnavailable: if Redis does not answer.
        """
        validate_timeout(blocking, timeout)
        if (
            isinstance(fence_floor, bool)
            or not isinstance(fence_floor, int)
            or fence_floor < 0
        ):
            raise ValueError(f"fence_floor must be an int >= 0, got {fence_floor!r}")
        if not blocking:
            return self._acquired(self.do_acquire(fence_floor))
        return self._acquire_blocking(timeout, fence_floor)

    def do_acquire(self, fence_floor: int = 0, marker_ms: int = 0) -> int:
        """Run the acquire script once: return the new fence (>= 1) if the
        lock was taken, or ``-1 - pttl`` of the current holder (<= 0)."""
        try:
            return run_script(
                self.client,
                self.lua_acquire,
                3,
                *self._keys,
                self.token,
                self.ttl_ms,
                fence_floor,
                marker_ms,
            )
        except UNAVAILABLE_ERRORS as exc:
            raise LockingUnavailable(
                f"Redis unavailable while acquiring lock {self.name!r}: {exc}"
            ) from exc

    def _acquired(self, result: int) -> int | None:
        if result >= 1:
            self.fence = result
            with _held_guard:
                _held.add(self)
            return result
        return None

    def _acquire_blocking(self, timeout: float | None, fence_floor: int) -> int | None:
        deadline = None if timeout is None else mod_time.monotonic() + timeout
        while True:
            result = self.do_acquire(fence_floor, self._marker_ms)
            fence = self._acquired(result)
            if fence is not None:
                return fence
            wait = self._slice or POLL_INTERVAL
            holder_pttl = -1 - result
            if holder_pttl >= 0:
                # The holder's remaining TTL: an expiry sends no signal.
                wait = min(wait, holder_pttl / 1000)
            if deadline is not None:
                remaining = deadline - mod_time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(wait, remaining)
            self._wait_for_signal(wait)

    def _wait_for_signal(self, seconds: float) -> None:
        wait_for_signal(
            self.client,
            self._signal_key,
            seconds,
            self._slice,
            f"waiting for lock {self.name!r}",
        )

    # -- giving up -----------------------------------------------------------

    def release(self) -> bool:
        """
        Release the lock if this token holds it.

        Return True if it was released, False if it was not held by this
        token (it expired, was force-released, or passed to someone else).
        """
        try:
            code = run_script(
                self.client,
                self.lua_release,
                3,
                *self._release_keys,
                self.token,
                self._marker_ms,
            )
        except UNAVAILABLE_ERRORS as exc:
            raise LockingUnavailable(
                f"Redis unavailable while releasing lock {self.name!r}: {exc}"
            ) from exc
        with _held_guard:
            _held.discard(self)
        if code == 1:
            return True
        elif code == 0:
            return False
        else:
            raise RuntimeError(f"Unsupported error code {code}")

    def extend(self, ttl: float | None = None) -> bool:
        """
        Reset the lock's TTL to ``ttl`` seconds (default: ``self.ttl``) if
        this token holds it. Return False if it does not: the owner has lost
        the lock and must stop writing.
        """
        ttl_ms = self.ttl_ms if ttl is None else ttl_to_ms(ttl)
        with translate_errors(f"extending lock {self.name!r}"):
            code = self.lua_extend(
                keys=(self.key,), args=(self.token, ttl_ms), client=self.client
            )
        if code == 1:
            return True
        elif code == 0:
            return False
        else:
            raise RuntimeError(f"Unsupported error code {code}")

    # -- inspecting ----------------------------------------------------------

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

    # -- operator tools ------------------------------------------------------

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
        cls.register_scripts(client)
        key, _, signal_key, waiters_key = cls.keys(name, prefix)
        marker_ms = int(((wait_slice(client) or POLL_INTERVAL) + 1.0) * 1000)
        with translate_errors(f"force-releasing lock {name!r}"):
            code = cls.lua_force_release(
                keys=(key, signal_key, waiters_key), args=(marker_ms,), client=client
            )
        if code == 1:
            return True
        elif code == 0:
            return False
        else:
            raise RuntimeError(f"Unsupported error code {code}")

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

    # -- context manager -----------------------------------------------------

    def __enter__(self) -> Lock:
        if self.acquire(blocking=True, timeout=None) is None:
            raise LockingError(f"Could not acquire lock {self.name!r}")
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        released = self.release()
        if not released and exc_type is None:
            raise LockNotOwned(
                f"Lock {self.name!r} was lost before release (fence {self.fence})"
            )


def release_all_current_locks() -> int:
    """
    Release every Lock this process acquired and still holds; return how
    many were released. Meant for worker shutdown. Locks that cannot be
    released because Redis is unreachable are logged and left to expire.
    """
    with _held_guard:
        locks = list(_held)
    released = 0
    for lock in locks:
        try:
            if lock.release():
                released += 1
        except LockingUnavailable:
            logger.warning("Could not release %r: Redis unavailable", lock)
    return released
