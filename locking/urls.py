"""The three shapes of a Redis URL: one server, Sentinel, Cluster.

* ``redis://``, ``rediss://``, ``unix://`` -- one server (redis-py's own
  URL syntax, unchanged);
* ``sentinel://[[user]:password@]host:port[,host:port...]/<master>[/<db>]``
  -- the sentinels to ask, comma-separated, and the name of the master
  they watch (``sentinel monitor <master> ...``). The password is the
  master's; ``?sentinel_password=...`` gives the sentinels' own, if they
  have one;
* ``redis+cluster://[[user]:password@]host:port[,host:port...]`` -- startup
  nodes of a Redis Cluster (any reachable node will do; the others are
  discovered). A Cluster has database 0 only.

Kombu spells a Sentinel broker differently (``sentinel://h1:p1;sentinel://
h2:p2/<db>`` with the master's name in a transport option):
``kombu_sentinel_url`` translates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote

SENTINEL_SCHEME = "sentinel"
CLUSTER_SCHEME = "redis+cluster"


@dataclass(frozen=True)
class RedisTarget:
    """What a Redis URL names: ``kind`` is ``server``, ``sentinel`` or
    ``cluster``; ``nodes`` are the sentinels or the startup nodes."""

    kind: str
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    options: dict[str, str] = field(default_factory=dict)


def _nodes(netloc: str, default_port: int) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    nodes = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        host, colon, port = item.rpartition(":")
        if not colon:
            host, port = item, ""
        host = host.strip("[]")
        try:
            nodes.append((host, int(port) if port else default_port))
        except ValueError:
            raise ValueError(f"bad port in Redis URL node {item!r}") from None
    if not nodes:
        raise ValueError("a Sentinel or Cluster URL names at least one host:port")
    return tuple(nodes)


def _credentials(netloc: str) -> tuple[str | None, str | None]:
    userinfo, at, _hosts = netloc.rpartition("@")
    if not at:
        return None, None
    user, colon, password = userinfo.partition(":")
    if not colon:
        return None, unquote(user) or None  # redis://secret@host: a password
    return unquote(user) or None, unquote(password) or None


def parse_redis_url(url: str) -> RedisTarget:
    """Tell what ``url`` names (see the module's docstring).

    Raises:
        ValueError: for a Sentinel URL without a master name, a Cluster URL
            with a database other than 0, or a bad host:port.
    """
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    if scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        return RedisTarget(kind="server", url=url)
    # urlsplit refuses a netloc with several ports; split it by hand.
    netloc, slash, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    if not slash and "?" in netloc:
        netloc, _, query = netloc.partition("?")
    options = {key: values[-1] for key, values in parse_qs(query).items()}
    username, password = _credentials(netloc)
    parts = [part for part in path.split("/") if part]
    if scheme == CLUSTER_SCHEME:
        if parts not in ([], ["0"]):
            raise ValueError(f"a Redis Cluster has database 0 only: {url!r}")
        return RedisTarget(
            kind="cluster",
            url=url,
            nodes=_nodes(netloc, 6379),
            username=username,
            password=password,
            options=options,
        )
    if not parts:
        raise ValueError(
            "a Sentinel URL names its master: "
            "sentinel://host:26379[,host:port...]/<master>[/<db>]"
        )
    try:
        db = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise ValueError(f"bad database number in {url!r}") from None
    return RedisTarget(
        kind="sentinel",
        url=url,
        nodes=_nodes(netloc, 26379),
        master=unquote(parts[0]),
        db=db,
        username=username,
        password=password,
        sentinel_password=options.pop("sentinel_password", None),
        options=options,
    )


def kombu_sentinel_url(target: RedisTarget) -> tuple[str, dict]:
    """The broker URL and the transport options kombu's Sentinel transport
    wants for ``target``: every sentinel a ``sentinel://`` URL of its own,
    joined by ``;`` (kombu fails over between them), the master's name and
    the sentinels' password as transport options."""
    if target.kind != "sentinel":
        raise ValueError(f"not a Sentinel URL: {target.url!r}")
    auth = ""
    if target.password is not None:
        user = target.username or ""
        auth = f"{user}:{target.password}@"
    urls = [
        f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in target.nodes
    ]
    options: dict = {"master_name": target.master}
    if target.sentinel_password:
        options["sentinel_kwargs"] = {"password": target.sentinel_password}
    return ";".join(urls), options


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages)."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return url
    user, colon, _password = userinfo.partition(":")
    shown = f"{user}:***" if colon else "***"
    return f"{scheme}{sep}{shown}@{hosts}{slash}{tail}"


__all__ = [
    "RedisTarget",
    "kombu_sentinel_url",
    "parse_redis_url",
    "redacted",
]
