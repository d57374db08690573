"""Settling an attempt: from how it ended to the run's next status.

How an attempt's exception becomes an outcome is one table, ``OUTCOMES``,
read by the exception's class hierarchy (the most specific class listed
wins, whatever the order of the rows), not an ``except`` ladder:

=====================  ==========  =========================================
exception              outcome     the run becomes
=====================  ==========  =========================================
ImportInterrupted      STOPPED     lock lost: retried; cancelled/reaped: as is
FenceRejected          FENCED      failed (LockLost), nothing written
TransientSourceError   RETRY       retrying with backoff, or failed at last
database gone          RETRY       (the staged data is kept for the retry)
Redis unreachable      RETRY       (the staged data is kept for the retry)
SourceError            FAIL        failed, with the source's message
any other Exception    UNEXPECTED  failed, with the traceback in the log
=====================  ==========  =========================================
"""

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.db import connection
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

from connectors.exceptions import SourceError, TransientSourceError
from connectors.messages import Message, gettext_noop, message_of
from imports.loading import FenceRejected, ImportInterrupted
from imports.models import ImportRun
from imports.services.attempt import DATABASE_GONE, WORKER, Attempt, with_database
from imports.services.backoff import retry_delay
from imports.services.dispatch import import_run_dispatch
from imports.services.transitions import FAIL, LOSE_LOCK, RETRY, Transition
from imports.services.waiting import run_slot_free
from locking import LockingUnavailable, Renewer

logger = logging.getLogger(__name__)


class LockLost(Exception):
    """The attempt's project lock expired or was taken while it ran."""


class Outcome(enum.Enum):
    STOPPED = "stopped"
    FENCED = "fenced"
    RETRY = "retry"
    FAIL = "fail"
    UNEXPECTED = "unexpected"


@dataclass(frozen=True)
class Rule:
    outcome: Outcome
    # Whether the staged data survives for the next attempt to load.
    keep_stage: bool = False
    # For a retry: what failed, in the operator's words.
    cause: str = ""


_DATABASE = Rule(
    Outcome.RETRY, keep_stage=True, cause=gettext_lazy("The database failed")
)
_REDIS = Rule(Outcome.RETRY, keep_stage=True, cause=gettext_lazy("Redis failed"))

OUTCOMES: dict[type[BaseException], Rule] = {
    ImportInterrupted: Rule(Outcome.STOPPED),
    FenceRejected: Rule(Outcome.FENCED),
    TransientSourceError: Rule(Outcome.RETRY, cause=gettext_lazy("The source failed")),
    **dict.fromkeys(DATABASE_GONE, _DATABASE),
    LockingUnavailable: _REDIS,
    # A raw client error that escaped the locking package (a cancel-flag
    # check while Redis restarts) is the same blip.
    redis.ConnectionError: _REDIS,
    redis.TimeoutError: _REDIS,
    SourceError: Rule(Outcome.FAIL),
    Exception: Rule(Outcome.UNEXPECTED),
}


def outcome_rule(exc: BaseException) -> Rule:
    """The table's rule for ``exc``: its most specific listed class wins."""
    for cls in type(exc).__mro__:
        rule = OUTCOMES.get(cls)
        if rule is not None:
            return rule
    raise TypeError(f"no outcome for {type(exc).__name__}")  # BaseException only


def attempt_settle(attempt: Attempt, exc: Exception, *, renewer: Renewer) -> bool:
    """Move the run on after ``exc`` ended its attempt; True to keep the stage."""
    rule = outcome_rule(exc)
    outcome = rule.outcome
    if outcome is Outcome.STOPPED:
        # Cancelled or reaped from outside: the run already says so. A lock
        # lost while the run is still this attempt's (Redis unreachable past
        # the lease, or restarted without its data) is an accident of the
        # lock service: the attempt stopped before writing, and the run is
        # retried like any transient failure (the RETRY transition applies
        # only if nobody else moved the run meanwhile).
        if renewer.lost.is_set():
            reason = renewer.lost_reason or gettext_lazy("taken by another owner")
            attempt_retry_or_fail(
                attempt,
                error=LockLost(
                    Message(
                        gettext_noop(
                            "The run lost its project lock (%(reason)s) and stopped."
                        ),
                        reason=reason,
                    )
                ),
                cause=_REDIS.cause,
            )
    elif outcome is Outcome.FENCED:
        _end(
            attempt,
            LOSE_LOCK,
            error_class="LockLost",
            message=Message(
                gettext_noop(
                    "A newer run of the project took over; nothing was written "
                    "(%(detail)s)."
                ),
                detail=exc,
            ),
        )
    elif outcome is Outcome.RETRY:
        if isinstance(exc, DATABASE_GONE):
            connection.close()
        attempt_retry_or_fail(attempt, error=exc, cause=rule.cause)
    else:
        if outcome is Outcome.UNEXPECTED:
            logger.exception("run %s failed unexpectedly", attempt.run.pk, exc_info=exc)
        _end(
            attempt,
            FAIL,
            error_class=type(exc).__name__,
            message=message_of(exc),
        )
    return rule.keep_stage


def _end(
    attempt: Attempt,
    transition: Transition,
    *,
    error_class: str,
    message: Message | str,
) -> bool:
    """End the attempt's run along ``transition``; False if no longer its."""
    return with_database(
        lambda: transition.apply(
            attempt.run,
            guards=attempt.guards,
            actor=WORKER,
            message=message,
            error_class=error_class,
            error_message=message,
        )
    )


def attempt_retry_or_fail(
    attempt: Attempt, *, error: BaseException, cause: str | Promise
) -> None:
    """A transient failure: schedule the next attempt, or fail if none is left."""
    run = attempt.run
    error_class = type(error).__name__
    message = message_of(error)
    if run.attempt >= 1 + run.project.max_retries:
        _end(
            attempt,
            FAIL,
            error_class=error_class,
            message=Message(
                gettext_noop("%(message)s (gave up after %(count)s attempts)"),
                message=message,
                count=run.attempt,
            ),
        )
        return
    delay = retry_delay(
        attempt=run.attempt, retry_after=getattr(error, "retry_after", None)
    )
    retried = with_database(
        lambda: RETRY.apply(
            run,
            guards=attempt.guards,
            actor=WORKER,
            message=Message(
                gettext_noop("%(kind)s: %(message)s; attempt %(next)s in %(delay)ss."),
                kind=cause,
                message=message,
                next=run.attempt + 1,
                delay=round(delay, 1),
            ),
            data={
                "error_class": error_class,
                "delay": round(delay, 3),
                "attempt": run.attempt + 1,
            },
            attempt=run.attempt + 1,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            error_class=error_class,
            error_message=message,
        )
    )
    if not retried:
        return
    # During backoff the run keeps its project's lock and frees its slot.
    try:
        import_run_dispatch(run=run, countdown=delay)
    except Exception:
        logger.exception("retry of run %s not dispatched; the sweep will", run.pk)


def attempt_release(attempt: Attempt) -> None:
    """Give back what the attempt held, as its run now requires.

    A retrying run keeps its project's lock through the backoff; every other
    ending releases it. The slot is always given back, and whoever waits for
    one starts.
    """
    run, lock = attempt.run, attempt.lock
    try:
        with_database(run.refresh_from_db, attempts=5)
    except DATABASE_GONE:
        logger.warning("run %s: database unreachable at the end", run.pk)
    if run.status != ImportRun.Status.RETRYING or run.lock_token != lock.token:
        try:
            lock.release()
        except LockingUnavailable:
            logger.warning("could not release the lock of run %s", run.pk)
    run_slot_free(connector_id=attempt.connector_id, token=lock.token)
