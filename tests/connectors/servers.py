"""A real HTTP server on the loopback interface for connector tests."""

import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Reply:
    """What the server answers: a status, headers and a body.

    ``body`` may be bytes, a string, any JSON value (sent as JSON), or an
    iterable of byte chunks streamed without a Content-Length. ``delay``
    seconds pass before anything is sent.
    """

    body: Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    #: The request target as sent: a path, or a whole URL through a proxy.
    target: str = ""
    #: The client's port: requests over one connection share it.
    client_port: int = 0


Handler = Callable[[Request], Reply]


class LocalHttpServer:
    """``http.server`` on 127.0.0.1, an ephemeral port, in a thread.

    ``route(path, *replies)`` answers GETs of ``path`` with the replies in
    turn, repeating the last; a reply may be a function of the request.
    It speaks HTTP/1.1 and keeps connections open (a streamed body without
    a length closes its connection). A request for a whole URL (as a
    client sends to a proxy) is routed by its path, so the server stands
    in for a forwarding proxy too.
    """

    def __init__(self):
        self.routes: dict[str, list[Reply | Handler]] = {}
        self.requests: list[Request] = []
        self.stopping = threading.Event()
        server = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body are written apart: without this, Nagle's
            # algorithm holds the body for the client's delayed ACK (40 ms
            # per request on a kept-alive connection).
            disable_nagle_algorithm = True

            def do_GET(self):  # noqa: N802 - the http.server API
                server.handle(self)

            def log_message(self, format, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
        self.httpd.handle_error = lambda request, address: None
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> "LocalHttpServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def route(self, path: str, *replies: Reply | Handler) -> None:
        self.routes[path] = list(replies)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        request = Request(
            path=parts.path,
            query={k: v[0] for k, v in parse_qs(parts.query).items()},
            headers=dict(handler.headers.items()),
            target=handler.path,
            client_port=handler.client_address[1],
        )
        self.requests.append(request)
        replies = self.routes.get(parts.path)
        if not replies:
            reply = Reply({"error": "not found"}, status=404)
        else:
            reply = replies.pop(0) if len(replies) > 1 else replies[0]
            if callable(reply):
                reply = reply(request)
        if reply.delay and self.stopping.wait(reply.delay):
            handler.close_connection = True
            return
        body = reply.body
        if not isinstance(body, bytes | str | Iterable) or isinstance(
            body, dict | list
        ):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        if isinstance(body, bytes):
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        else:
            handler.send_header("Connection", "close")
            handler.close_connection = True
            handler.end_headers()
            for chunk in body:
                handler.wfile.write(chunk)
