"""The HTTP JSON connector: records from a paginated JSON API."""

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urljoin

from django.utils.translation import gettext_lazy as _

from .base import BadRow, BaseConnector, Row
from .exceptions import PermanentSourceError, TransientSourceError
from .http_paging import MISSING as _MISSING
from .http_paging import lookup, next_link, response_total, with_params
from .messages import Message, gettext_noop
from .options import (
    OptionErrors,
    credentials_origin_check,
    http_client_check,
    merge_options,
)
from .page_retries import DEFAULTS as PAGE_RETRY_DEFAULTS
from .page_retries import PageRetries, page_retries_check
from .transport import (
    NETWORK_ERRORS,
    TIMEOUT_DEFAULTS,
    HttpClient,
    client_for,
    describe_error,
    split_headers,
)

PAGINATION_STYLES = ("none", "page", "offset", "cursor", "next_link", "link_header")

DEFAULTS = {
    "auth_header": "Authorization",
    **TIMEOUT_DEFAULTS,
    **PAGE_RETRY_DEFAULTS,
    "max_response_bytes": 50 * 1024 * 1024,
    "records_path": "",
    "pagination": "none",
    "page_param": "page",
    "page_start": 1,
    "offset_param": "offset",
    "limit_param": "limit",
    "limit": 100,
    "cursor_param": "cursor",
    "max_pages": 10_000,
}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def start_url(options: Mapping[str, Any]) -> str | None:
    """The first URL read: ``url``, with ``path`` joined to it if given."""
    url, path = options.get("url"), options.get("path")
    if path and isinstance(url, str) and isinstance(path, str):
        url = urljoin(url.rstrip("/") + "/", path.lstrip("/"))
    return url


class HttpJsonConnector(BaseConnector):
    """Reads JSON objects from an HTTP API, page after page.

    Config (shared) and source (per project) are merged, the source winning.

    - ``url``: the base URL; the source's ``path`` is joined to it, or the
      source gives a full ``url``. ``params``: query parameters.
    - ``headers``; ``auth_header`` ("Authorization") carries the secret
      ``auth_token`` (the whole header value, e.g. "Bearer ..."). Credentials
      (the token, and headers whose names look secret) go only to the
      origin of the connector's ``url``, never to another host a redirect,
      a next link or a project's source points at; a project source that
      leads elsewhere is refused when the connector holds credentials.
    - ``timeout_connect`` (10 s), ``timeout_read`` (30 s, each read),
      ``timeout_write`` (10 s), ``timeout_pool`` (10 s, waiting for a
      pooled connection) and ``max_response_bytes`` (50 MiB, per response,
      unpacked: a page is parsed whole). Pages share one client, so they
      reuse its connections; at most 5 redirects are followed, each hop
      checked by the SSRF guard. ``proxy`` (connector config only): an
      http(s) proxy URL for every request; the SSRF check then applies to
      the proxy's address, and the proxy resolves the targets.
    - ``page_retries`` (3; 0: none): a page that fails transiently is tried
      again in place, after ``page_retry_wait`` (1 s) doubling up to
      ``page_retry_wait_max`` (30 s), with jitter; a ``Retry-After`` up to
      ``page_retry_after_max`` (60 s) is waited instead, a longer one is
      left to the run's retry (see ``connectors.page_retries``).
    - ``records_path``: where the records list is, e.g. "data.items"; empty
      when the body is the list. A null there is an empty page.
    - ``pagination``:
      ``none``; ``page`` (``page_param``, ``page_start``; optional
      ``page_size_param`` + ``page_size``; stops on an empty page);
      ``offset`` (``offset_param``, ``limit_param``, ``limit``; stops on an
      empty page); ``cursor`` (the value at ``cursor_path`` is sent as
      ``cursor_param``; stops when it is absent or empty); ``next_link``
      (the URL at ``next_path``); ``link_header`` (``Link: <...>;
      rel="next"``). ``max_pages`` bounds every style.
    - ``total_header`` (``X-Total-Count``) or ``total_path`` (``meta.total``):
      where the API says how many records it holds, for the run's progress.

    Errors: 429, 5xx, timeouts and network failures are transient (with
    ``retry_after``); other 4xx, malformed JSON and an oversized response are
    permanent. An item that is not a JSON object is a ``BadRow``. Besides
    a page's own tries, retrying is the pipeline's decision.
    """

    kind = "http_json"
    verbose_name = _("HTTP JSON API")
    secret_fields = ("auth_token",)

    def __init__(self, *, config: Mapping[str, Any], source: Mapping[str, Any]):
        super().__init__(config=config, source=source)
        self.options = {**DEFAULTS, **self.config, **self.source}
        self.pages_read = 0
        self._client: HttpClient | None = None

    @classmethod
    def validate(
        cls, *, config: Mapping[str, Any], source: Mapping[str, Any] | None = None
    ) -> None:
        options = merge_options(config, source)
        errors = OptionErrors(options)
        errors.http_url("url", required=source is not None)
        errors.string("path")
        errors.mapping("params")
        errors.mapping("headers", of_strings=True)
        errors.string("auth_header")
        errors.string("auth_token")
        http_client_check(errors, source=source)
        page_retries_check(errors)
        for name in ("max_response_bytes", "limit", "page_size", "max_pages"):
            errors.positive_int(name)
        page_start = options.get("page_start")
        if page_start is not None and (
            isinstance(page_start, bool) or not isinstance(page_start, int)
        ):
            errors.add("page_start", "Must be a whole number.")
        for name in (
            "records_path",
            "page_param",
            "page_size_param",
            "offset_param",
            "limit_param",
            "cursor_param",
            "cursor_path",
            "next_path",
            "total_header",
            "total_path",
        ):
            errors.string(name)
        style = options.get("pagination", "none")
        if style not in PAGINATION_STYLES:
            errors.add("pagination", f"Must be one of: {', '.join(PAGINATION_STYLES)}.")
        elif style == "cursor":
            errors.string("cursor_path", required=True, what="where the cursor is")
        elif style == "next_link":
            errors.string("next_path", required=True, what="where the next URL is")
        if options.get("page_size_param") and not options.get("page_size"):
            errors.add("page_size", "Required with page_size_param.")
        if source is not None:
            credentials_origin_check(
                errors,
                config=config,
                target=start_url(options),
                secret_fields=cls.secret_fields,
                field="path" if "url" not in source and source.get("path") else "url",
            )
        errors.raise_if_any()

    def start_url(self) -> str:
        return start_url(self.options)

    def credentials_origin(self) -> str | None:
        """The URL whose origin the connector's credentials belong to.

        The connector's own ``url`` when it has one, whatever a project's
        source says; the start URL when the credentials are the project's.
        """
        return self.config.get("url") or self.start_url()

    def open(self) -> None:
        self.validate(config=self.config, source=self.source)
        self.client()

    def client(self) -> HttpClient:
        """The client every page of this opening is read with."""
        if self._client is None:
            self._client = client_for(
                self.options, proxy=self.config.get("proxy"), redact=self.redact
            )
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def iter_records(self) -> Iterator[Row | BadRow]:
        number = 0
        for records in self.iter_pages():
            for item in records:
                number += 1
                if isinstance(item, dict):
                    yield item
                else:
                    yield BadRow(
                        number,
                        f"record {number} is a JSON {_json_type(item)}, not an object",
                    )

    supports_resume = True

    def iter_positions(self, start: dict | None = None) -> Iterator[tuple[list, dict]]:
        """Each page's records with the position after it (see ``resume``)."""
        for records in self.iter_pages(start=start):
            yield records, self.position

    def iter_pages(self, start: dict | None = None) -> Iterator[list]:
        """Each page's list of records, following the pagination style.

        After each page, ``position`` says where the next one starts (None
        after the last): ``iter_pages(start=position)`` goes on from there,
        so that a retry re-fetches at most the page that failed.
        """
        options = self.options
        style = options["pagination"]
        params = dict(options.get("params") or {})
        incremental = self.source.get("cursor")
        if isinstance(incremental, dict) and self.cursor_value is not None:
            # An incremental project: only what changed since its cursor.
            params[incremental.get("param") or "since"] = self.cursor_value
        page = offset = 0
        if style == "page":
            page = options["page_start"]
            if options.get("page_size_param"):
                params[options["page_size_param"]] = options["page_size"]
        elif style == "offset":
            params[options["limit_param"]] = options["limit"]
        url = with_params(self.start_url(), params) if params else self.start_url()
        seen = set()
        self.pages_read = 0
        if start:
            url, page, offset = start["url"], start["page"], start["offset"]
            self.pages_read = start["pages_read"]
        retries = PageRetries.from_options(options)
        while True:
            if self.pages_read >= options["max_pages"]:
                raise PermanentSourceError(
                    f"The pagination did not end within max_pages "
                    f"({options['max_pages']} pages)."
                )
            if style == "page":
                url = with_params(url, {options["page_param"]: page})
            elif style == "offset":
                url = with_params(url, {options["offset_param"]: offset})
            if url in seen:
                raise PermanentSourceError(
                    self.redact(f"The pagination loops: {url} was read before.")
                )
            seen.add(url)
            body, headers = retries.call(self.get_json, url)
            self.pages_read += 1
            records = self.records_of(body, url)
            if self.progress_total is None:
                self.progress_total = response_total(options, body, headers)
            following = self._next_url(style, url, body, headers, records)
            if style == "page":
                page += 1
            elif style == "offset":
                offset += len(records)
            self.position = (
                None
                if following is None
                else {
                    "url": following,
                    "page": page,
                    "offset": offset,
                    "pages_read": self.pages_read,
                }
            )
            yield records
            if following is None:
                return
            url = following

    def _next_url(self, style, url, body, headers, records) -> str | None:
        """The next page's URL, or None when this page was the last."""
        options = self.options
        if style == "none":
            return None
        if style in ("page", "offset"):
            return url if records else None
        if style == "cursor":
            cursor = lookup(body, options["cursor_path"])
            if cursor in (_MISSING, None, ""):
                return None
            return with_params(url, {options["cursor_param"]: cursor})
        if style == "next_link":
            link = lookup(body, options["next_path"])
            if link in (_MISSING, None, ""):
                return None
            if not isinstance(link, str):
                raise PermanentSourceError(
                    f"The next link at {options['next_path']!r} is not a string."
                )
            return urljoin(url, link)
        link = next_link(", ".join(headers.get_list("Link")))  # link_header
        return urljoin(url, link) if link else None

    def records_of(self, body: Any, url: str) -> list:
        path = self.options["records_path"]
        records = lookup(body, path)
        if records is _MISSING:
            raise PermanentSourceError(
                Message(
                    gettext_noop("The response of %(url)s has nothing at %(path)s."),
                    url=url,
                    path=repr(path),
                ).redacted(self.redact)
            )
        if records is None:
            return []
        if not isinstance(records, list):
            where = f"at {path!r}" if path else "as its body"
            raise PermanentSourceError(
                self.redact(
                    f"The response of {url} holds a JSON {_json_type(records)} "
                    f"{where}, not a list of records."
                )
            )
        return records

    def get_json(self, url: str) -> tuple[Any, Any]:
        """One page's decoded body and headers, tried once.

        Raises:
            TransientSourceError, PermanentSourceError: see
                ``HttpClient.get``; a failed read is transient.
        """
        options = self.options
        headers, private = split_headers(options.get("headers"))
        headers = {"Accept": "application/json", **headers}
        if options.get("auth_token"):
            private[options["auth_header"]] = options["auth_token"]
        response = self.client().get(
            url,
            headers=headers,
            private_headers=private,
            private_origin=self.credentials_origin(),
        )
        try:
            data = response.read_limited(options["max_response_bytes"])
        except NETWORK_ERRORS as exc:
            raise TransientSourceError(
                self.redact(f"Reading {url} failed: {describe_error(exc)}")
            )
        finally:
            response.close()
        try:
            body = json.loads(data, parse_constant=_reject_constant)
        except ValueError as exc:
            raise PermanentSourceError(
                Message(
                    gettext_noop(
                        "The response of %(url)s is not valid JSON: %(error)s."
                    ),
                    url=url,
                    error=str(exc),
                ).redacted(self.redact)
            )
        return body, response.headers


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"
