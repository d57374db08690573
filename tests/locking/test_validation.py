"""Tests of locking.validation: arguments refused before any Redis call."""

from __future__ import annotations

import pytest

from locking.validation import (
    ttl_to_ms,
    validate_fence_floor,
    validate_limit,
    validate_name,
    validate_timeout,
    validate_token,
)


def test_valid_arguments_pass_through():
    """Good values are returned (or accepted) unchanged, TTLs as whole
    milliseconds."""
    validate_name("project:1")
    assert validate_token("t") == "t"
    assert ttl_to_ms(1.5) == 1500
    assert ttl_to_ms(0.001) == 1
    assert ttl_to_ms(30) == 30_000
    validate_timeout(True, None)
    validate_timeout(False, None)
    validate_timeout(True, 0)
    validate_timeout(True, 2.5)
    assert validate_fence_floor(0) == 0
    assert validate_fence_floor(10**15) == 10**15
    assert validate_limit(1) == 1


@pytest.mark.parametrize("name", ["", None, 5, b"x"])
def test_invalid_name(name):
    """A name must be a non-empty string."""
    with pytest.raises(ValueError):
        validate_name(name)


@pytest.mark.parametrize("token", ["", None, 5])
def test_invalid_token(token):
    """A token must be a non-empty string."""
    with pytest.raises(ValueError):
        validate_token(token)


@pytest.mark.parametrize(
    "ttl", [0, -1, 0.0001, float("nan"), float("inf"), "5", True, None]
)
def test_invalid_ttl(ttl):
    """A TTL must be a positive, finite number of at least a millisecond."""
    with pytest.raises(ValueError):
        ttl_to_ms(ttl)


@pytest.mark.parametrize(
    ("blocking", "timeout"),
    [(False, 1), (True, -1), (True, float("nan")), (True, "1"), (True, True)],
)
def test_invalid_timeout(blocking, timeout):
    """A timeout needs a blocking call and must be a number >= 0."""
    with pytest.raises(ValueError):
        validate_timeout(blocking, timeout)


@pytest.mark.parametrize("floor", [-1, 1.5, True, None, "3"])
def test_invalid_fence_floor(floor):
    """A fence floor must be an int >= 0."""
    with pytest.raises(ValueError):
        validate_fence_floor(floor)


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, None])
def test_invalid_limit(limit):
    """A semaphore limit must be an int >= 1."""
    with pytest.raises(ValueError):
        validate_limit(limit)
