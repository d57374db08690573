"""HTTP GET for the connectors: separate timeouts, classified errors.

``urllib.request`` has one timeout for everything; a source that is slow to
answer and one that is unreachable deserve different limits, so requests are
made with ``http.client`` and follow a few redirects by themselves.
"""

import email.utils
import http.client
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from urllib.parse import urljoin, urlsplit, urlunsplit

from django.conf import settings

from .addresses import AddressRefused, AllowList, resolve_checked
from .exceptions import PermanentSourceError, TransientSourceError
from .secrets import is_secret_key

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
CHUNK_SIZE = 64 * 1024
ERROR_BODY_CHARS = 200

#: Errors while connecting or reading that a later attempt may not meet.
NETWORK_ERRORS = (OSError, http.client.HTTPException)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return max(0.0, when.timestamp() - now)


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def split_headers(
    headers: Mapping[str, str] | None,
) -> tuple[dict[str, str], dict[str, str]]:
    """``(public, private)``: headers whose names look secret are private.

    Private headers (``Authorization``, ``X-Api-Key``...) go to the
    credentials' origin only, like an ``auth_token``.
    """
    public, private = {}, {}
    for name, value in (headers or {}).items():
        (private if is_secret_key(name) else public)[name] = value
    return public, private


def _connector_to(addresses: list[str]) -> Callable:
    """A ``create_connection`` that tries ``addresses`` in turn, not a name."""

    def create_connection(address, timeout=None, source_address=None):
        error: OSError | None = None
        for ip in addresses:
            try:
                return socket.create_connection(
                    (ip, address[1]), timeout, source_address
                )
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    return create_connection


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class HttpResponse:
    """A response being streamed, with the connection it came over."""

    def __init__(self, *, url: str, connection, response: http.client.HTTPResponse):
        self.url = url
        self.connection = connection
        self.raw = response
        self.status = response.status
        self.headers = response.headers

    def read_limited(self, max_bytes: int) -> bytes:
        """The whole body, or an error naming the limit it went past.

        Raises:
            PermanentSourceError: the body is larger than ``max_bytes``.
        """
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise self._too_large(max_bytes)
        chunks, size = [], 0
        while chunk := self.raw.read(min(CHUNK_SIZE, max_bytes + 1 - size) or 1):
            size += len(chunk)
            if size > max_bytes:
                raise self._too_large(max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, max_bytes: int) -> PermanentSourceError:
        return PermanentSourceError(
            f"The response is larger than max_response_bytes ({max_bytes} bytes)."
        )

    def close(self) -> None:
        self.raw.close()
        self.connection.close()


def http_get(
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    private_headers: Mapping[str, str] | None = None,
    private_origin: str | None = None,
    timeout_connect: float = 10.0,
    timeout_read: float = 30.0,
    redact: Callable[[str], str] = str,
    allowed_hosts: Iterable[str] | None = None,
) -> HttpResponse:
    """GET ``url``, following redirects; a response with a 2xx status.

    ``private_headers`` (credentials) are sent only to the origin of
    ``private_origin`` (default: ``url``), never to another host that a
    redirect or a next link leads to. Messages pass through ``redact``.

    Every host, the first and each a redirect leads to, is resolved once
    and reached only at addresses ``connectors.addresses`` allows
    (``allowed_hosts``, default: the ``IMPORTHUB_HTTP_ALLOWED_HOSTS``
    setting).

    Raises:
        TransientSourceError: connection failures, timeouts, 429 and 5xx,
            with ``retry_after`` from a ``Retry-After`` header.
        PermanentSourceError: other 4xx, a bad certificate, too many
            redirects, an unexpected status, an address not allowed.
    """
    if allowed_hosts is None:
        allowed_hosts = settings.IMPORTHUB_HTTP_ALLOWED_HOSTS
    allowed = AllowList(allowed_hosts)
    first_origin = origin(private_origin or url)
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        shown = redact(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermanentSourceError(f"Not an http(s) URL: {shown}")
        send = dict(headers or {})
        if origin(url) == first_origin:
            send.update(private_headers or {})
        send.setdefault("User-Agent", "importhub")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            addresses = resolve_checked(parts.hostname, port, allowed=allowed)
        except AddressRefused as exc:
            raise PermanentSourceError(redact(f"GET {shown}: refused: {exc}"))
        except OSError as exc:
            raise TransientSourceError(
                redact(f"GET {shown} failed: {parts.hostname}: {describe_error(exc)}")
            )
        if parts.scheme == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname,
                parts.port,
                timeout=timeout_connect,
                context=ssl.create_default_context(),
            )
        else:
            connection = http.client.HTTPConnection(
                parts.hostname, parts.port, timeout=timeout_connect
            )
        # The connection goes to the checked addresses, never to the name
        # again; Host and, for https, SNI and the certificate check still
        # use the name (http.client takes them from ``connection.host``).
        connection._create_connection = _connector_to(addresses)
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            connection.connect()
            connection.sock.settimeout(timeout_read)
            connection.request("GET", target, headers=send)
            response = connection.getresponse()
        except ssl.SSLCertVerificationError as exc:
            connection.close()
            raise PermanentSourceError(redact(f"GET {shown}: {exc}"))
        except NETWORK_ERRORS as exc:
            connection.close()
            raise TransientSourceError(
                redact(f"GET {shown} failed: {describe_error(exc)}")
            )
        status = response.status
        if 200 <= status < 300:
            return HttpResponse(url=url, connection=connection, response=response)
        location = response.headers.get("Location")
        try:
            snippet = response.read(ERROR_BODY_CHARS * 4).decode("utf-8", "replace")
        except NETWORK_ERRORS:
            snippet = ""
        finally:
            response.close()
            connection.close()
        if status in REDIRECT_STATUSES and location:
            url = urljoin(url, location)
            continue
        reason = f"GET {shown}: HTTP {status} {response.reason}"
        snippet = " ".join(snippet.split())[:ERROR_BODY_CHARS]
        if snippet:
            reason = f"{reason}: {snippet}"
        if status == 429 or status >= 500:
            raise TransientSourceError(
                redact(reason),
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise PermanentSourceError(redact(reason))
    raise PermanentSourceError(
        redact(f"GET {url}: more than {MAX_REDIRECTS} redirects.")
    )
