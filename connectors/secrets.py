"""Keep connector secrets out of the admin, the logs and error messages.

A secret is the value of a field the connector class lists in
``secret_fields``, the value of any key whose name looks secret (a password,
a token, an API key, an ``Authorization`` header...) at any depth, or the
password inside a URL (``postgres://user:secret@host/db``).

This module knows nothing of connector kinds: callers that start from a kind
ask ``connectors.registry.connector_secret_fields()`` for its fields.
"""

import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

MASK = "••••••"

#: Key names that hold secrets whatever a connector declares.
SECRET_KEY_PATTERN = re.compile(
    r"password|passwd|secret|token|api[-_]?key|authorization|credential"
    r"|private[-_]?key|cookie",
    re.IGNORECASE,
)

# ``scheme://user:password@`` anywhere in a text.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)", re.I)

# Shorter secrets are redacted only as whole words, so that a silly
# one-letter password does not garble every message.
_MIN_SUBSTRING_SECRET = 4


def is_secret_key(name: Any, secret_fields: tuple[str, ...] = ()) -> bool:
    """Whether a config key holds a secret."""
    return isinstance(name, str) and (
        name in secret_fields or bool(SECRET_KEY_PATTERN.search(name))
    )


def url_password(value: Any) -> str | None:
    """The password inside a URL, percent-decoded, or None."""
    if not isinstance(value, str) or "://" not in value:
        return None
    try:
        password = urlsplit(value).password
    except ValueError:
        return None
    return unquote(password) if password else None


def mask_url(url: str) -> str:
    """A URL with the password of its user info replaced by the mask."""
    if not isinstance(url, str) or "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", url)
    if not password:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hostport}"))


def _walk_secrets(value: Any, secret_fields: tuple[str, ...], depth: int) -> Iterator:
    if isinstance(value, Mapping):
        for key, item in value.items():
            # Declared secret fields count at the top level only; names that
            # look secret count at any depth (``headers.Authorization``).
            declared = secret_fields if depth == 0 else ()
            if is_secret_key(key, declared) and item not in (None, ""):
                yield from _leaves(item)
            else:
                yield from _walk_secrets(item, secret_fields, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk_secrets(item, secret_fields, depth + 1)
    else:
        password = url_password(value)
        if password:
            yield password


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif value not in (None, "", True, False):
        yield str(value)


def secret_values(
    config: Mapping[str, Any] | None, *, secret_fields: tuple[str, ...] = ()
) -> set[str]:
    """Every secret string in a config, with its usual encodings.

    A multi-word secret such as ``Bearer abc...`` also yields its long words,
    so that a server echoing only the token is still redacted.
    """
    found: set[str] = set()
    for secret in _walk_secrets(config or {}, tuple(secret_fields), 0):
        variants = {secret, quote(secret, safe=""), quote_plus(secret)}
        variants.update(word for word in secret.split() if len(word) >= 8)
        found.update(v for v in variants if v)
    return found


def redact(
    text: str,
    config: Mapping[str, Any] | None,
    *,
    secret_fields: tuple[str, ...] = (),
) -> str:
    """``text`` with every secret of ``config`` replaced by the mask.

    Also masks the password of any ``scheme://user:password@`` URL in the
    text, whether or not it comes from the config.
    """
    text = str(text)
    secrets = secret_values(config, secret_fields=tuple(secret_fields))
    for secret in sorted(secrets, key=len)[::-1]:
        if len(secret) >= _MIN_SUBSTRING_SECRET:
            text = text.replace(secret, MASK)
        else:
            text = re.sub(rf"(?<!\w){re.escape(secret)}(?!\w)", MASK, text)
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)


def _mask(value: Any, secret_fields: tuple[str, ...], depth: int) -> Any:
    if isinstance(value, Mapping):
        declared = secret_fields if depth == 0 else ()
        return {
            key: MASK
            if is_secret_key(key, declared) and item not in (None, "")
            else _mask(item, secret_fields, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask(item, secret_fields, depth + 1) for item in value]
    if isinstance(value, str):
        return mask_url(value)
    return value


def mask_config(
    config: Mapping[str, Any] | None, *, secret_fields: tuple[str, ...] = ()
) -> dict:
    """A copy of ``config`` fit to show: every secret replaced by ``MASK``.

    ``secret_fields`` are the connector class's declared secret keys (see
    ``connectors.registry.connector_secret_fields``); without them, keys
    that look secret and URL passwords are still masked.
    """
    if not isinstance(config, Mapping):
        return config  # type: ignore[return-value]
    return _mask(config, tuple(secret_fields), 0)


def _unmask(submitted: Any, stored: Any) -> Any:
    if submitted == MASK:
        return stored if stored is not None else submitted
    if isinstance(submitted, Mapping):
        stored = stored if isinstance(stored, Mapping) else {}
        return {key: _unmask(item, stored.get(key)) for key, item in submitted.items()}
    if isinstance(submitted, list):
        stored = stored if isinstance(stored, list) else []
        return [
            _unmask(item, stored[index] if index < len(stored) else None)
            for index, item in enumerate(submitted)
        ]
    if isinstance(submitted, str) and url_password(submitted) == MASK:
        password = url_password(stored)
        if password:
            parts = urlsplit(submitted)
            userinfo, _, hostport = parts.netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            netloc = f"{user}:{quote(password, safe='')}@{hostport}"
            return urlunsplit(parts._replace(netloc=netloc))
    return submitted


def unmask_config(
    submitted: Mapping[str, Any] | None, stored: Mapping[str, Any] | None
) -> Any:
    """``submitted`` with each ``MASK`` placeholder replaced by the stored secret.

    An operator who edits a masked config and leaves a secret's placeholder
    as it was keeps the secret; a placeholder with nothing stored behind it
    stays, for the caller to refuse (see ``masked_paths``).
    """
    return _unmask(submitted, stored)


def masked_paths(value: Any, prefix: str = "") -> list[str]:
    """The dotted paths in ``value`` that still hold the mask placeholder."""
    found: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += masked_paths(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += masked_paths(item, f"{prefix}.{index}" if prefix else str(index))
    elif isinstance(value, str) and (value == MASK or url_password(value) == MASK):
        found.append(prefix or "config")
    return found
