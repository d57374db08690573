"""What the HTTP JSON connector's pagination reads: paths, links, queries."""

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: A path that leads nowhere in a document (None is a value found there).
MISSING = object()

# One link of a ``Link`` header (RFC 8288): ``<url>; rel="next"; ...``.
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]*)*)")


def lookup(document: Any, path: str) -> Any:
    """The value at a dotted path (``data.items``, ``pages.0.next``)."""
    value = document
    for part in path.split(".") if path else ():
        if isinstance(value, Mapping):
            value = value.get(part, MISSING)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def next_link(link_header: str | None) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, if any."""
    for match in _LINK.finditer(link_header or ""):
        for param in match.group(2).split(";"):
            name, _, value = param.strip().partition("=")
            rels = value.strip().strip('"').lower().split()
            if name.strip().lower() == "rel" and "next" in rels:
                return match.group(1).strip()
    return None


def with_params(url: str, params: Mapping[str, Any]) -> str:
    """``url`` with ``params`` added to (or replacing those in) its query."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params]
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, bool):
                item = "true" if item else "false"
            query.append((name, "" if item is None else str(item)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def response_total(options: Mapping[str, Any], body: Any, headers) -> int | None:
    """How many records the API says it holds: the ``total_header``'s value
    (``X-Total-Count``) or the number at ``total_path`` of the first page's
    body (``meta.total``), when configured; None otherwise."""
    value: Any = None
    if options.get("total_header"):
        value = headers.get(options["total_header"])
    if value is None and options.get("total_path"):
        value = lookup(body, options["total_path"])
    if isinstance(value, bool):
        return None
    try:
        total = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return total if total >= 0 else None
