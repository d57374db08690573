"""The outcome table: how an attempt's exception moves its run."""

import psycopg
import pytest
import redis
from django.db import OperationalError

from connectors.exceptions import (
    ConnectorConfigError,
    PermanentSourceError,
    SourceError,
    TransientSourceError,
)
from imports.loading import BadRowError, FenceRejected, ImportInterrupted
from imports.services.settle import OUTCOMES, Outcome, outcome_rule
from locking import LockingUnavailable


@pytest.mark.parametrize(
    ("exc", "outcome", "keep_stage"),
    [
        (ImportInterrupted(), Outcome.STOPPED, False),
        (FenceRejected("newer"), Outcome.FENCED, False),
        (TransientSourceError("503"), Outcome.RETRY, False),
        (OperationalError("gone"), Outcome.RETRY, True),
        (psycopg.OperationalError("gone"), Outcome.RETRY, True),
        (psycopg.errors.AdminShutdown("restart"), Outcome.RETRY, True),
        (LockingUnavailable("down"), Outcome.RETRY, True),
        (redis.ConnectionError("Error 111"), Outcome.RETRY, True),
        (redis.TimeoutError("slow"), Outcome.RETRY, True),
        (PermanentSourceError("404"), Outcome.FAIL, False),
        (ConnectorConfigError("bad"), Outcome.FAIL, False),
        (BadRowError("row 3"), Outcome.FAIL, False),
        (SourceError("x"), Outcome.FAIL, False),
        (KeyError("bug"), Outcome.UNEXPECTED, False),
        (ZeroDivisionError(), Outcome.UNEXPECTED, False),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else None,
)
def test_outcome_of(exc, outcome, keep_stage):
    rule = outcome_rule(exc)
    assert rule.outcome is outcome
    assert rule.keep_stage is keep_stage


def test_the_most_specific_class_wins_whatever_the_order():
    """A transient source error is a SourceError too; the table's order does
    not decide, the class hierarchy does."""
    assert list(OUTCOMES).index(SourceError) > list(OUTCOMES).index(
        TransientSourceError
    )
    reordered = dict(reversed(list(OUTCOMES.items())))
    for cls in (TransientSourceError, PermanentSourceError, OperationalError):
        mro_rule = next(reordered[c] for c in cls.__mro__ if c in reordered)
        assert mro_rule == outcome_rule(cls("x"))


def test_every_retry_names_its_cause():
    for rule in OUTCOMES.values():
        if rule.outcome is Outcome.RETRY:
            assert str(rule.cause)
