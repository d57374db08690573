"""The words of the HTTP transport's errors, as messages (one per kind)."""

from collections.abc import Callable

from .messages import Message, gettext_noop

HTTP_ERRORS = {
    "too_large": gettext_noop(
        "The response is larger than max_response_bytes (%(max)s bytes)."
    ),
    "invalid_url": gettext_noop("Not a valid URL: %(url)s"),
    "not_http": gettext_noop("Not an http(s) URL: %(url)s"),
    "failed": gettext_noop("GET %(url)s failed: %(error)s"),
    "status": gettext_noop("GET %(url)s: HTTP %(status)s %(phrase)s%(snippet)s"),
    "redirects": gettext_noop("GET %(url)s: more than %(count)s redirects."),
}


def http_error(
    kind: str, *, redact: Callable[[str], str] | None = None, **params
) -> Message:
    """The message of an HTTP error of ``kind``; its texts pass ``redact``."""
    message = Message(HTTP_ERRORS[kind], **params)
    return message.redacted(redact) if redact else message


def http_status_error(
    response, *, url: str, snippet: str, redact: Callable[[str], str]
) -> Message:
    """The message of an unexpected HTTP status, with the body's start."""
    return http_error(
        "status",
        redact=redact,
        url=url,
        status=response.status_code,
        phrase=response.reason_phrase,
        snippet=f": {snippet}" if snippet else "",
    )
