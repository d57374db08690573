"""Validation of connector configs and project sources, as Django errors.

Forms call these so that an invalid config or source is refused when it is
saved, with a readable message, and never reaches a worker.
"""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from .base import BaseConnector
from .exceptions import ConnectorConfigError
from .registry import get_connector_class
from .secrets import redact


def config_error_messages(
    error: ConnectorConfigError, *, config: Mapping[str, Any] | None = None
) -> list[str]:
    """One readable message per problem: ``"field: message"``."""
    messages = []
    for field, field_messages in error.errors.items():
        for message in field_messages:
            text = message if field in ("config", "source") else f"{field}: {message}"
            messages.append(redact(text, config))
    return messages


def connector_kind_validate(kind: str) -> type[BaseConnector]:
    """The connector class of a kind the registry knows.

    Raises:
        ValidationError: ``{"kind": [...]}`` for an unknown kind or a class
            that cannot be imported.
    """
    try:
        return get_connector_class(kind)
    except ConnectorConfigError as exc:
        # Shown on the kind field itself: no "kind: " prefix.
        messages = [m for field_messages in exc.errors.values() for m in field_messages]
        raise ValidationError({"kind": messages})


def connector_config_validate(*, kind: str, config: Any) -> None:
    """Check a connector's shared config for its kind.

    Raises:
        ValidationError: ``{"kind": [...]}`` for an unknown kind, or
            ``{"config": [...]}`` naming each invalid key.
    """
    connector_class = connector_kind_validate(kind)
    try:
        connector_class.validate(config=config)
    except ConnectorConfigError as exc:
        config = config if isinstance(config, Mapping) else None
        raise ValidationError({"config": config_error_messages(exc, config=config)})


def connector_live_validate(*, kind: str, config: Mapping[str, Any]) -> None:
    """Check a valid config against the live source, where it can be reached.

    For the admin form (saving a connector), not for the guard: it may open
    a connection to the source (see ``BaseConnector.check_live``).

    Raises:
        ValidationError: ``{"config": [...]}`` naming each problem.
    """
    connector_class = connector_kind_validate(kind)
    try:
        connector_class.check_live(config=config)
    except ConnectorConfigError as exc:
        raise ValidationError({"config": config_error_messages(exc, config=config)})


def connector_source_validate(*, connector, source: Any) -> None:
    """Check a project's source against its connector's kind and config.

    Raises:
        ValidationError: ``{"source": [...]}`` naming each invalid key.
    """
    try:
        connector_class = get_connector_class(connector.kind)
        connector_class.validate(config=connector.config, source=source)
    except ConnectorConfigError as exc:
        messages = config_error_messages(exc, config=connector.config)
        if isinstance(source, Mapping):
            messages = [redact(message, source) for message in messages]
        raise ValidationError({"source": messages})
