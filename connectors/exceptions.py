"""Errors a connector raises, classified for retrying.

A connector raises them with a ``Message`` (``connectors.messages``), so
that the run's error is stored as its id and read in the reader's language;
``str(error)`` renders it in the active one.
"""

from .messages import Message


class SourceError(Exception):
    """Reading the source failed."""

    transient = False


class TransientSourceError(SourceError):
    """A failure worth retrying later: network, timeouts, 5xx, 429."""

    transient = True

    def __init__(self, message: Message | str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSourceError(SourceError):
    """A failure that retrying cannot fix: bad config, bad data, 4xx, SQL."""


class ConnectorConfigError(PermanentSourceError):
    """The connector's config or the project's source is invalid.

    ``errors`` maps a field name to its messages, the way a form error does.
    """

    def __init__(self, errors: dict[str, list[str]] | str):
        if isinstance(errors, str):
            errors = {"config": [errors]}
        self.errors = errors
        super().__init__(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        )
