"""An httpx transport whose every connection goes to a checked address.

httpx (through httpcore) resolves a host name when it opens a connection,
with ``socket.create_connection(name)``; a check made before the request
could then be answered differently at connect time (DNS rebinding). So the
transport's network backend is replaced by ``CheckedBackend``: it resolves
the name once with ``connectors.addresses.resolve_checked()`` and opens the
socket to an address that passed, never to the name. TLS still verifies the
certificate against the name (httpcore passes the request's host as
``server_hostname``), and the Host header keeps it.

Every connection goes through ``connect_tcp()``: the first request's, each
redirect's to an origin not yet connected to, and a new one when a pooled
connection has closed. A pooled connection was checked when it was opened.
With a proxy, the only connections this worker opens are to the proxy, so
the proxy's address is the one checked; the proxy resolves the targets.
"""

import socket
from collections.abc import Iterable

import httpcore
import httpx

from .addresses import AllowList, resolve_checked


class CheckedBackend(httpcore.SyncBackend):
    """httpcore's blocking backend, connecting to checked addresses only.

    Raises (from ``connect_tcp``):
        AddressRefused: the host has no address a connector may reach; it
            passes through httpx unchanged, for the caller to classify.
        httpcore.ConnectError: the name does not resolve, or no address
            accepted the connection.
    """

    def __init__(self, allowed: AllowList):
        self.allowed = allowed

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_checked(host, port, allowed=self.allowed)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from exc
        error: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host}: no address to connect to")


class CheckedTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` over ``CheckedBackend``; no proxy from the
    environment (``trust_env`` is off: only a configured proxy is used).

    httpx takes no network backend of its own, so the one of the httpcore
    pool it builds (a connection pool, or an HTTP proxy pool, which opens
    every connection to the proxy) is replaced before any connection.
    """

    def __init__(self, *, allowed: AllowList, **kwargs):
        super().__init__(trust_env=False, **kwargs)
        pool = self._pool
        if not isinstance(
            getattr(pool, "_network_backend", None), httpcore.SyncBackend
        ):
            raise RuntimeError(
                f"Unsupported httpcore pool {type(pool).__name__}: its network "
                f"backend cannot be checked."
            )
        pool._network_backend = CheckedBackend(allowed)
