"""HTTP GET for the connectors, on httpx: pooled, bounded, classified.

One ``HttpClient`` serves one opened connector: its pages reuse connections
(keep-alive), its timeouts are separate for connecting, reading, sending
and waiting for a pooled connection, and every connection goes to an
address the SSRF guard checked (``connectors.http_backend``). Redirects are
followed here rather than by httpx, so that each hop is checked again and
credentials (private headers) go only to their own origin; httpx would
keep a custom ``X-Api-Key`` header on a redirect to another host.
"""

import email.utils
import http.cookiejar
import io
import ipaddress
import re
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC
from urllib.parse import urljoin, urlsplit

import httpx
from django.conf import settings

from .addresses import AddressRefused, AllowList, resolve_checked
from .exceptions import PermanentSourceError, TransientSourceError
from .http_backend import CheckedTransport
from .http_errors import http_error, http_status_error
from .secrets import is_secret_key

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
ERROR_BODY_CHARS = 200

#: Defaults of the client's limits, in seconds (see ``HttpClient``).
TIMEOUT_DEFAULTS = {
    "timeout_connect": 10.0,
    "timeout_read": 30.0,
    "timeout_write": 10.0,
    "timeout_pool": 10.0,
}

#: One connector reads one response at a time; a few spare connections
#: cover a next link or redirect to another origin.
LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4)

#: Errors while connecting or reading that a later attempt may not meet.
NETWORK_ERRORS = (OSError, httpx.TransportError)

_TIMEOUT_WHILE = {
    httpx.ConnectTimeout: "connecting",
    httpx.ReadTimeout: "reading",
    httpx.WriteTimeout: "sending",
    httpx.PoolTimeout: "waiting for a free connection",
}
_PROXY_STATUS = re.compile(r"^\s*(\d{3})\b")


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


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out {_TIMEOUT_WHILE.get(type(exc), '')}".strip()
    return str(exc) or type(exc).__name__


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure at the root of a connection error, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _is_permanent_network_error(exc: BaseException) -> bool:
    """A bad certificate, or a proxy that refuses (4xx) the tunnel."""
    if _certificate_error(exc) is not None:
        return True
    if isinstance(exc, httpx.ProxyError):
        status = _PROXY_STATUS.match(str(exc))
        return bool(status) and 400 <= int(status.group(1)) < 500
    return False


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """Neither keep nor send cookies: every request stands alone, as before."""

    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


class _RawReader(io.RawIOBase):
    """A file over a response's raw (still encoded) byte chunks."""

    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class HttpResponse:
    """A 2xx response being streamed; ``close()`` frees its connection."""

    def __init__(self, *, url: str, response: httpx.Response):
        self.url = url
        self.response = response
        self.status = response.status_code
        self.headers = response.headers
        self._raw: _RawReader | None = None

    @property
    def raw(self) -> io.RawIOBase:
        """The body as a binary file, as sent (a gzip encoding kept)."""
        if self._raw is None:
            # No chunk size: httpx would hold bytes back until it had one;
            # the reader gets each piece as it arrives.
            self._raw = _RawReader(self.response.iter_raw())
        return self._raw

    def read_limited(self, max_bytes: int) -> bytes:
        """The whole (decoded) body, or an error naming the limit it went past.

        The bound holds while reading, whatever ``Content-Length`` says,
        and counts the decoded bytes (a gzip body is bounded unpacked).

        Raises:
            PermanentSourceError: the body is larger than ``max_bytes``, or
                its content encoding is broken.
        """
        length = self.headers.get("Content-Length", "")
        if (
            length.isdigit()
            and int(length) > max_bytes
            and not self.headers.get("Content-Encoding")
        ):
            raise self._too_large(max_bytes)
        chunks, size = [], 0
        try:
            for chunk in self.response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise self._too_large(max_bytes)
                chunks.append(chunk)
        except httpx.DecodingError as exc:
            encoding = self.headers.get("Content-Encoding", "")
            raise PermanentSourceError(
                f"The response is not valid {encoding or 'encoded'} data: {exc}"
            )
        return b"".join(chunks)

    def _too_large(self, max_bytes: int) -> PermanentSourceError:
        return PermanentSourceError(http_error("too_large", max=max_bytes))

    def close(self) -> None:
        self.response.close()


class HttpClient:
    """GETs for one opened connector, over one pool of checked connections.

    ``timeout_connect``, ``timeout_read`` (each read of the socket),
    ``timeout_write`` (sending the request) and ``timeout_pool`` (waiting
    for a connection of the pool) are seconds. ``proxy`` (an http(s) URL)
    carries every request; the SSRF check then applies to the proxy's
    address, since this worker connects to nothing else: the proxy
    resolves the targets' names and must keep internal addresses out by
    its own rules. A target given as a literal IP address is still checked
    here. ``allowed_hosts`` defaults to ``IMPORTHUB_HTTP_ALLOWED_HOSTS``.
    Messages pass through ``redact``. Use it as a context manager, or call
    ``close()``.
    """

    def __init__(
        self,
        *,
        timeout_connect: float = TIMEOUT_DEFAULTS["timeout_connect"],
        timeout_read: float = TIMEOUT_DEFAULTS["timeout_read"],
        timeout_write: float = TIMEOUT_DEFAULTS["timeout_write"],
        timeout_pool: float = TIMEOUT_DEFAULTS["timeout_pool"],
        proxy: str | None = None,
        allowed_hosts: Iterable[str] | None = None,
        accept_encoding: str = "gzip, deflate",
        redact: Callable[[str], str] = str,
    ):
        if allowed_hosts is None:
            allowed_hosts = settings.IMPORTHUB_HTTP_ALLOWED_HOSTS
        self.allowed = AllowList(allowed_hosts)
        self.proxy = proxy or None
        self.redact = redact
        transport = CheckedTransport(
            allowed=self.allowed,
            verify=ssl.create_default_context(),
            proxy=self.proxy,
            limits=LIMITS,
        )
        self.client = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(
                connect=timeout_connect,
                read=timeout_read,
                write=timeout_write,
                pool=timeout_pool,
            ),
            follow_redirects=False,
            trust_env=False,
            cookies=http.cookiejar.CookieJar(policy=_NoCookies()),
            headers={"User-Agent": "importhub", "Accept-Encoding": accept_encoding},
        )

    def __enter__(self) -> "HttpClient":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def get(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        private_headers: Mapping[str, str] | None = None,
        private_origin: str | None = None,
    ) -> HttpResponse:
        """GET ``url``, following redirects; a response with a 2xx status.

        ``private_headers`` (credentials) are sent only to the origin of
        ``private_origin`` (default: ``url``), never to another host that a
        redirect leads to. At most ``MAX_REDIRECTS`` redirects are followed,
        each connection checked by the SSRF guard.

        Raises:
            TransientSourceError: connection failures, timeouts, 429 and 5xx,
                with ``retry_after`` from a ``Retry-After`` header.
            PermanentSourceError: other 4xx, a bad certificate, too many
                redirects, an unexpected status, an address not allowed.
        """
        redact = self.redact
        first_origin = origin(private_origin or url)
        for _ in range(MAX_REDIRECTS + 1):
            shown = redact(url)
            try:
                parts = urlsplit(url)
                port = parts.port or (443 if parts.scheme == "https" else 80)
            except ValueError:
                raise PermanentSourceError(http_error("invalid_url", url=shown))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise PermanentSourceError(http_error("not_http", url=shown))
            send = dict(headers or {})
            if origin(url) == first_origin:
                send.update(private_headers or {})
            try:
                if self.proxy:
                    self._check_literal_target(parts.hostname, port)
                request = self.client.build_request("GET", url, headers=send)
                response = self.client.send(request, stream=True)
            except AddressRefused as exc:
                raise PermanentSourceError(redact(f"GET {shown}: refused: {exc}"))
            except httpx.InvalidURL as exc:
                raise PermanentSourceError(redact(f"GET {shown}: {exc}"))
            except NETWORK_ERRORS as exc:
                error = PermanentSourceError
                if not _is_permanent_network_error(exc):
                    error = TransientSourceError
                error_text = describe_error(exc)
                raise error(
                    http_error("failed", redact=redact, url=shown, error=error_text)
                )
            status = response.status_code
            if 200 <= status < 300:
                return HttpResponse(url=url, response=response)
            location = response.headers.get("Location")
            snippet = _snippet(response)
            if status in REDIRECT_STATUSES and location:
                url = urljoin(url, location)
                continue
            reason = http_status_error(
                response, url=shown, snippet=snippet, redact=redact
            )
            if status == 429 or status >= 500:
                raise TransientSourceError(
                    reason,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )
            raise PermanentSourceError(reason)
        raise PermanentSourceError(
            http_error("redirects", redact=redact, url=url, count=MAX_REDIRECTS)
        )

    def _check_literal_target(self, host: str, port: int) -> None:
        """Through a proxy, a literal IP target is checked all the same.

        A name is the proxy's to resolve (its answer may differ from this
        worker's); an address needs no resolving and is refused here.

        Raises:
            AddressRefused: the address may not be reached.
        """
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return
        resolve_checked(host, port, allowed=self.allowed)


def client_for(
    options: Mapping,
    *,
    proxy: str | None,
    redact: Callable[[str], str],
    timeout_read: float = TIMEOUT_DEFAULTS["timeout_read"],
    accept_encoding: str = "gzip, deflate",
) -> HttpClient:
    """An ``HttpClient`` with a connector's ``timeout_*`` options.

    ``proxy`` is the connector config's, never a project's: a proxy sees
    the requests (and, for plain http, their credentials).
    """
    defaults = {**TIMEOUT_DEFAULTS, "timeout_read": timeout_read}
    return HttpClient(
        **{name: options.get(name) or default for name, default in defaults.items()},
        proxy=proxy,
        accept_encoding=accept_encoding,
        redact=redact,
    )


def _snippet(response: httpx.Response) -> str:
    """The start of an error response's body, one line; the response closed."""
    data = b""
    try:
        for chunk in response.iter_bytes():
            data += chunk
            if len(data) >= ERROR_BODY_CHARS * 4:
                break
    except (*NETWORK_ERRORS, httpx.DecodingError):
        pass
    finally:
        response.close()
    text = data[: ERROR_BODY_CHARS * 4].decode("utf-8", "replace")
    return " ".join(text.split())[:ERROR_BODY_CHARS]
