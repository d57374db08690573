"""SQLSTATEs and driver errors of a SQL source, classified without a server."""

import psycopg
import pytest
from psycopg import errors

from connectors.exceptions import PermanentSourceError, TransientSourceError
from connectors.sql_errors import sql_error_translate

TIMEOUT = ("statement_timeout_ms", 300_000)


def translate(exc: psycopg.Error):
    return sql_error_translate(
        exc,
        "The SQL query failed",
        timeout=TIMEOUT,
        redact=lambda text: text.replace("s3cret", "***"),
    )


@pytest.mark.parametrize(
    "sqlstate", ["40001", "40P01", "08006", "53300", "57P01", "58030"]
)
def test_a_retryable_sqlstate_is_transient(sqlstate):
    """Rollbacks, connection, resource, operator and system errors retry."""
    error = translate(errors.lookup(sqlstate)("try again"))
    assert isinstance(error, TransientSourceError)
    assert str(error) == f"The SQL query failed: try again (SQLSTATE {sqlstate})"


@pytest.mark.parametrize("sqlstate", ["42601", "42P01", "22012", "42501"])
def test_any_other_sqlstate_is_permanent(sqlstate):
    """A syntax, data or permission error fails at once."""
    assert isinstance(translate(errors.lookup(sqlstate)("no")), PermanentSourceError)


def test_a_statement_timeout_is_permanent_and_names_the_limit():
    """A query cancelled by its timeout would time out again."""
    exc = errors.QueryCanceled("canceling statement due to statement timeout")
    error = translate(exc)
    assert isinstance(error, PermanentSourceError)
    assert "statement_timeout_ms (300000 ms)" in str(error)


def test_a_cancel_by_an_operator_is_transient():
    """57014 without a timeout (an operator's cancel) is worth a retry."""
    exc = errors.QueryCanceled("canceling statement due to user request")
    assert isinstance(translate(exc), TransientSourceError)


def test_a_refused_query_is_explained():
    """The server's wording for a second statement gets an operator's one."""
    exc = errors.SyntaxError(
        "cannot insert multiple commands into a prepared statement"
    )
    assert "Give a single statement" in str(translate(exc))


def test_without_a_sqlstate_the_message_decides():
    """A lost connection retries; a refused login does not; secrets go."""
    lost = translate(psycopg.OperationalError("connection to s3cret timed out"))
    assert isinstance(lost, TransientSourceError)
    assert "s3cret" not in str(lost)
    refused = translate(
        psycopg.OperationalError('password authentication failed for user "x"')
    )
    assert isinstance(refused, PermanentSourceError)
