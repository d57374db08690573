"""
Redis locks with fencing tokens: one holder per name.

A lock is a Redis key ``<prefix>lock:{<name>}`` whose value is the holder's
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
  take increments a counter ``<prefix>fence:{<name>}`` that never expires and
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

Every key of one name carries the name as its Redis Cluster hash tag
(``{<name>}``), so each script touches one slot and runs on a Cluster.
"""

from __future__ import annotations

import functools
import time as mod_time
import uuid
from typing import Any, ClassVar

import redis
from redis.commands.core import Script

from .client import (
    DEFAULT_PREFIX,
    POLL_INTERVAL,
    UNAVAILABLE_ERRORS,
    run_script,
    signal_ttl_ms,
    translate_errors,
    unavailable_message,
    wait_for_signal,
    wait_slice,
)
from .exceptions import LockingError, LockingUnavailable, LockNotOwned
from .inspection import LUA_WAKE_WAITER, LockInspection
from .validation import (
    ttl_to_ms,
    validate_fence_floor,
    validate_name,
    validate_timeout,
    validate_token,
)


class Lock(LockInspection):
    """
    A named Redis lock with a TTL, owner-only release and fencing tokens.

    ``token`` identifies the owner; two Lock objects built with the same
    token are the same owner (that is how a process re-takes its own lock
    after a restart), and so are threads sharing one Lock object: give each
    would-be owner its own Lock. ``ttl`` is in seconds, with millisecond
    precision. Reading a lock and force release come from
    ``LockInspection``.
    """

    LUA_ACQUIRE_SCRIPT = """
        -- KEYS[1] - lock key
        -- KEYS[2] - fence counter key (never expires)
        -- KEYS[3] - waiter marker key (asks release to signal)
        -- ARGV[1] - token
        -- ARGV[2] - ttl in milliseconds
        -- ARGV[3] - fence floor (0 = none)
        -- ARGV[4] - waiter marker ttl in milliseconds (0 = the caller
        --           won't wait)
        -- return the new fence (>= 1) if taken, else -1 - the holder's pttl
        --   (<= 0; 0 for a holder without expiry). One integer, not a
        --   table: it is cheaper to parse on the hot path.
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

    LUA_RELEASE_SCRIPT = (
        """
        -- KEYS[1] - lock key
        -- KEYS[2] - signal list, BLPOP'ed by waiters
        -- KEYS[3] - waiter marker key
        -- ARGV[1] - token
        -- ARGV[2] - signal ttl in milliseconds
        -- return 1 if the token held the lock and it was deleted, 0 otherwise
        if redis.call('get', KEYS[1]) ~= ARGV[1] then
            return 0
        end
        redis.call('del', KEYS[1])
        local signal_ttl = ARGV[2]
"""
        + LUA_WAKE_WAITER
        + """
        return 1
"""
    )

    LUA_EXTEND_SCRIPT = """
        -- KEYS[1] - lock key
        -- ARGV[1] - token
        -- ARGV[2] - new ttl in milliseconds
        -- return 1 if extended, 0 if the token does not hold the lock
        if redis.call('get', KEYS[1]) ~= ARGV[1] then
            return 0
        end
        redis.call('pexpire', KEYS[1], ARGV[2])
        return 1
    """

    lua_acquire: ClassVar[Script | None] = None
    lua_release: ClassVar[Script | None] = None
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
        self.client = client
        self.name = name
        self.ttl = float(ttl)
        self.prefix = prefix
        self.token = uuid.uuid4().hex if token is None else validate_token(token)
        self.fence: int | None = None
        self.key, self._fence_key, self._signal_key, self._waiters_key = self.keys(
            name, prefix
        )
        self._keys = (self.key, self._fence_key, self._waiters_key)
        self._release_keys = (self.key, self._signal_key, self._waiters_key)
        self.register_scripts(client)

    # A lock built only to be admitted (``locking.admission``) never waits:
    # what a wait needs is worked out when one does.
    @functools.cached_property
    def _slice(self) -> float | None:
        return wait_slice(self.client)

    @functools.cached_property
    def _marker_ms(self) -> int:
        return signal_ttl_ms(self.client)

    @classmethod
    def register_scripts(cls, client: redis.Redis) -> None:
        """Register the Lua scripts once per class. A script object computes
        its SHA locally and reloads itself on any server that lacks it, so
        one registration serves every client."""
        if cls.lua_acquire is None:
            cls.lua_release = client.register_script(cls.LUA_RELEASE_SCRIPT)
            cls.lua_extend = client.register_script(cls.LUA_EXTEND_SCRIPT)
            cls.lua_acquire = client.register_script(cls.LUA_ACQUIRE_SCRIPT)

    @property
    def fence_key(self) -> str:
        """The key of the name's fence counter."""
        return self._fence_key

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
        validate_fence_floor(fence_floor)
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
                unavailable_message(f"acquiring lock {self.name!r}", exc)
            ) from exc

    def _acquired(self, result: int) -> int | None:
        if result >= 1:
            self.fence = result
            return result
        return None

    def _acquire_blocking(self, timeout: float | None, fence_floor: int) -> int | None:
        # A failed attempt leaves the waiter marker; a release that sees it
        # pushes a signal, which the wait below BLPOPs. An expiry sends no
        # signal, so each wait is also bounded by the holder's TTL:
        #
        #   t=0     B tries, finds A holding (pttl 5 s), leaves the marker
        #   t=0     B waits min(slice, 5 s, time left) on the signal list
        #   t=0.2   A releases, sees the marker, pushes a signal
        #   t=0.2   B wakes and tries again: taken
        deadline = None if timeout is None else mod_time.monotonic() + timeout
        while True:
            result = self.do_acquire(fence_floor, self._marker_ms)
            fence = self._acquired(result)
            if fence is not None:
                return fence
            wait = self._slice or POLL_INTERVAL
            holder_pttl = -1 - result
            if holder_pttl >= 0:
                wait = min(wait, holder_pttl / 1000)
            if deadline is not None:
                remaining = deadline - mod_time.monotonic()
                if remaining <= 0:
                    return None
                wait = min(wait, remaining)
            wait_for_signal(
                self.client,
                self._signal_key,
                wait,
                self._slice,
                f"waiting for lock {self.name!r}",
            )

    # -- giving up -----------------------------------------------------------

    def release(self) -> bool:
        """
        Release the lock if this token holds it, waking a blocked taker.

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
                unavailable_message(f"releasing lock {self.name!r}", exc)
            ) from exc
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
            code = run_script(
                self.client, self.lua_extend, 1, self.key, self.token, ttl_ms
            )
        if code == 1:
            return True
        elif code == 0:
            return False
        else:
            raise RuntimeError(f"Unsupported error code {code}")

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
