"""Checks shared by the connectors' ``validate()`` methods."""

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from .exceptions import ConnectorConfigError
from .secrets import secret_values


def merge_options(
    config: Mapping[str, Any] | None, source: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The connector's config overlaid with the project's source.

    Raises:
        ConnectorConfigError: either is not a JSON object.
    """
    errors = {}
    for name, value in (("config", config), ("source", source)):
        if value is not None and not isinstance(value, Mapping):
            errors[name] = [f"Must be a JSON object, not {type(value).__name__}."]
    if errors:
        raise ConnectorConfigError(errors)
    return {**(config or {}), **(source or {})}


class OptionErrors:
    """Collects field errors, then raises them as one ``ConnectorConfigError``.

    The messages never echo a value: a value may be a secret.
    """

    def __init__(self, options: Mapping[str, Any]):
        self.options = options
        self.errors: dict[str, list[str]] = {}

    def add(self, name: str, message: str) -> None:
        self.errors.setdefault(name, []).append(message)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConnectorConfigError(self.errors)

    def string(self, name: str, *, required: bool = False, what: str = "") -> None:
        value = self.options.get(name)
        if value is None or value == "":
            if required:
                self.add(name, f"Required{': ' + what if what else ''}.")
        elif not isinstance(value, str):
            self.add(name, "Must be a string.")

    def boolean(self, name: str) -> None:
        value = self.options.get(name)
        if value is not None and not isinstance(value, bool):
            self.add(name, "Must be true or false.")

    def positive_number(self, name: str) -> None:
        value = self.options.get(name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            self.add(name, "Must be a positive number.")

    def positive_int(self, name: str) -> None:
        value = self.options.get(name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.add(name, "Must be a positive whole number.")

    def non_negative_int(self, name: str) -> None:
        value = self.options.get(name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            self.add(name, "Must be a whole number, 0 or more.")

    def non_negative_number(self, name: str) -> None:
        value = self.options.get(name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            self.add(name, "Must be a number, 0 or more.")

    def mapping(self, name: str, *, of_strings: bool = False) -> None:
        value = self.options.get(name)
        if value is None:
            return
        if not isinstance(value, Mapping):
            self.add(name, "Must be a JSON object.")
        elif of_strings and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            self.add(name, "Every name and value must be a string.")

    def http_url(self, name: str, *, required: bool = False) -> None:
        value = self.options.get(name)
        if value is None or value == "":
            if required:
                self.add(name, "Required: an http:// or https:// URL.")
            return
        if not isinstance(value, str):
            self.add(name, "Must be an http:// or https:// URL.")
            return
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            self.add(name, "Not a valid URL.")
            return
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.add(name, "Must be an http:// or https:// URL with a host.")
        elif parts.username or parts.password:
            self.add(
                name,
                "Must not hold credentials; use auth_header and auth_token.",
            )


def http_client_check(errors: OptionErrors, *, source: Mapping | None) -> None:
    """The HTTP client's options: ``timeout_*`` and the connector's ``proxy``.

    A proxy sees every request, plain http ones with their credentials, so
    only the connector's config may name one, never a project's source.
    """
    for name in ("timeout_connect", "timeout_read", "timeout_write", "timeout_pool"):
        errors.positive_number(name)
    if source and "proxy" in source:
        errors.add("proxy", "Only the connector's config may set a proxy.")
        return
    value = errors.options.get("proxy")
    if value is None or value == "":
        return
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        parts and parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        errors.add("proxy", "Must be an http:// or https:// proxy URL with a host.")


def url_origin(url: Any) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) URL, or None if it is not one."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, parts.hostname.lower(), port or default


def _shown(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def credentials_origin_check(
    errors: OptionErrors,
    *,
    config: Mapping[str, Any] | None,
    target: Any,
    secret_fields: tuple[str, ...],
    field: str = "url",
) -> None:
    """Refuse a project URL that would carry the connector's secrets away.

    A shared connector's credentials (its secret fields, secret-looking
    headers) travel only to the connector's own origin, the scheme, host
    and port of its ``url``. A project whose source leads elsewhere (its
    own ``url``, or a ``path`` that is a full URL) is refused, and so is
    any project URL when a connector holding credentials names no URL.
    """
    if not secret_values(config or {}, secret_fields=secret_fields):
        return
    theirs = url_origin(target)
    if theirs is None:
        return
    own = url_origin((config or {}).get("url"))
    if own is None:
        errors.add(
            field,
            "This connector holds credentials but names no url: give the "
            "connector the url its credentials are for.",
        )
    elif own != theirs:
        errors.add(
            field,
            f"Leads to {_shown(theirs)}, but this connector's credentials are "
            f"for {_shown(own)}: credentials travel only to their own origin. "
            f"Use a connector of its own for {_shown(theirs)}.",
        )
