"""Exceptions raised by the locking package."""


class LockingError(Exception):
    """Base class of every error raised by the locking package."""


class LockingUnavailable(LockingError):
    """
    Redis could not serve a command: unreachable, silent past the socket
    timeout, still loading its data after a restart, read-only after a
    failover, or any other error of the Redis client.

    Raised ``from`` the underlying ``redis.RedisError``; no Redis error
    leaves the locking package raw. The state of the lock is unknown to the
    caller: an acquire may or may not have taken effect, so a caller that
    cannot tell must treat the resource as busy and let the TTL settle it.
    """


class LockNotOwned(LockingError):
    """
    The lock was no longer held by its owner when the owner released it.

    The critical section may have run without protection for a while (the
    lock expired and possibly passed to another holder), so work done under
    it must be checked with its fencing token before it is trusted.
    """
