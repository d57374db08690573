"""Argument checks shared by locks and semaphores, made before any call."""

from __future__ import annotations

import math
from typing import Any


def validate_name(name: Any) -> None:
    """Refuse a lock or semaphore name that is not a non-empty string, or
    that holds a brace (the keys' hash tag is the name in braces)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if "{" in name or "}" in name:
        raise ValueError(f"name must not hold braces, got {name!r}")


def validate_token(token: Any) -> str:
    """Return ``token`` if it is a non-empty string; refuse it otherwise."""
    if not isinstance(token, str) or not token:
        raise ValueError(f"token must be a non-empty string, got {token!r}")
    return token


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


def validate_timeout(blocking: bool, timeout: Any) -> None:
    """Refuse a negative or non-numeric timeout, or one given to a
    non-blocking call (it would be silently ignored)."""
    if timeout is None:
        return
    if not blocking:
        raise ValueError("timeout only applies to a blocking acquire")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"timeout must be a number of seconds, got {timeout!r}")
    if timeout < 0 or math.isnan(timeout):
        raise ValueError(f"timeout must be >= 0, got {timeout!r}")


def validate_fence_floor(fence_floor: Any) -> int:
    """Return ``fence_floor`` if it is an int >= 0; refuse it otherwise."""
    if (
        isinstance(fence_floor, bool)
        or not isinstance(fence_floor, int)
        or fence_floor < 0
    ):
        raise ValueError(f"fence_floor must be an int >= 0, got {fence_floor!r}")
    return fence_floor


def validate_limit(limit: Any) -> int:
    """Return a semaphore ``limit`` if it is an int >= 1; refuse it
    otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    return limit
