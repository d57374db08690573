"""Retries of one page request inside an import attempt, with stamina.

A paged API that fails once on page 900 should cost one more request, not
a new attempt: the page is tried again in place, a few times, with
exponential backoff and jitter. When the tries are spent (or the server
asks for a longer pause than a worker should sleep through), the transient
error goes on to the run, whose own backoff then takes over.
"""

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import stamina

from .exceptions import TransientSourceError
from .options import OptionErrors

T = TypeVar("T")

DEFAULTS = {
    "page_retries": 3,
    "page_retry_wait": 1.0,
    "page_retry_wait_max": 30.0,
    "page_retry_after_max": 60.0,
}


def page_retries_check(errors: OptionErrors) -> None:
    errors.non_negative_int("page_retries")
    errors.non_negative_number("page_retry_wait")
    errors.positive_number("page_retry_wait_max")
    errors.non_negative_number("page_retry_after_max")


class PageRetries:
    """How a page request that failed transiently is tried again.

    ``retries`` more tries after the first (0: none). The n-th wait is
    ``min(wait_max, wait * 2 ** (n - 1) + uniform(0, wait))`` seconds
    (stamina's backoff, with a jitter as large as the first wait). A
    ``Retry-After`` of at most ``after_max`` seconds replaces the backoff
    of its try; a longer one ends the tries at once, so that the run-level
    retry, which reads the error's ``retry_after``, waits it out rather
    than a worker sleeping with its slot held. Permanent errors are never
    retried.
    """

    def __init__(
        self,
        *,
        retries: int = DEFAULTS["page_retries"],
        wait: float = DEFAULTS["page_retry_wait"],
        wait_max: float = DEFAULTS["page_retry_wait_max"],
        after_max: float = DEFAULTS["page_retry_after_max"],
    ):
        self.retries = retries
        self.wait = wait
        self.wait_max = wait_max
        self.after_max = after_max

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> "PageRetries":
        values = {name: options.get(name, d) for name, d in DEFAULTS.items()}
        return cls(
            retries=values["page_retries"],
            wait=values["page_retry_wait"],
            wait_max=values["page_retry_wait_max"],
            after_max=values["page_retry_after_max"],
        )

    def backoff(self, exc: Exception) -> bool | float:
        """stamina's backoff hook: retry or not, or the seconds to wait."""
        if not isinstance(exc, TransientSourceError):
            return False
        if exc.retry_after is None:
            return True
        if exc.retry_after > self.after_max:
            return False
        return float(max(exc.retry_after, 0.0))

    def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``, tried again on transient errors.

        Raises:
            TransientSourceError: the last try's, when the tries are spent.
            PermanentSourceError: at once.
        """
        if self.retries < 1:
            return function(*args)
        for attempt in stamina.retry_context(
            on=self.backoff,
            attempts=self.retries + 1,
            timeout=None,
            wait_initial=self.wait,
            wait_max=self.wait_max,
            wait_jitter=self.wait,
        ):
            with attempt:
                return function(*args)
        raise AssertionError("unreachable: stamina raises the last error")
