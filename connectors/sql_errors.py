"""SQLSTATEs and driver errors of a SQL source as transient or permanent."""

import re
from collections.abc import Callable

import psycopg

from .exceptions import PermanentSourceError, SourceError, TransientSourceError

# A statement cancelled: by statement_timeout (permanent: it would time out
# again) or by an operator or shutdown (transient, with the rest of class 57).
QUERY_CANCELED = "57014"

# SQLSTATE classes worth retrying: connection exceptions, insufficient
# resources, operator intervention (57014 is a statement timeout, 57P01 an
# admin shutdown), system errors, and transaction rollbacks (serialization
# failures, deadlocks).
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58", "40"})

# libpq reports a refused login without a SQLSTATE; these messages mean that
# retrying with the same settings cannot help.
PERMANENT_CONNECT_ERRORS = re.compile(
    r"does not exist|authentication failed|no pg_hba\.conf entry"
    r"|password|permission denied|invalid|unsupported|not permitted",
    re.IGNORECASE,
)

# What the server says when a query is not one read statement, and what it
# means for an operator.
REFUSED_QUERY_MESSAGES = (
    (
        "cannot insert multiple commands into a prepared statement",
        "Give a single statement: the query holds more than one",
    ),
    (
        "must not contain data-modifying statements in WITH",
        "A read query may not write: its WITH holds INSERT, UPDATE, DELETE or MERGE",
    ),
)


def sql_error_translate(
    exc: psycopg.Error,
    context: str,
    *,
    timeout: tuple[str, int],
    redact: Callable[[str], str],
) -> SourceError:
    """A classified, redacted error from a driver exception.

    ``timeout`` is the limit last set on the session, as ``(option name,
    milliseconds)``, named when the server cancelled a statement for it;
    ``redact`` removes the connector's secrets from the message.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag else None) or str(exc)
    message = " ".join(message.split())[:500]
    if sqlstate == QUERY_CANCELED and "statement timeout" in message:
        # A query that ran out of time will run out of time again:
        # retrying only loads the source once more.
        name, milliseconds = timeout
        return PermanentSourceError(
            f"{context}: the query ran longer than {name} ({milliseconds} ms) "
            f"and the server cancelled it (SQLSTATE {sqlstate}). Make the "
            f"query faster or raise {name}."
        )
    for pattern, explanation in REFUSED_QUERY_MESSAGES:
        if pattern in message:
            message = f"{explanation} ({message})"
            break
    text = redact(f"{context}: {message}")
    if sqlstate:
        text = f"{text} (SQLSTATE {sqlstate})"
        transient = sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES
    else:
        # No SQLSTATE: the client failed (refused, timed out, lost the
        # connection), or the connection parameters are wrong.
        transient = isinstance(
            exc, psycopg.OperationalError
        ) and not PERMANENT_CONNECT_ERRORS.search(message)
    if transient:
        return TransientSourceError(text)
    return PermanentSourceError(text)
