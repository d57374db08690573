"""A webhook receiver: ``http.server`` on 127.0.0.1 in a thread, which checks
each request's signature as a real receiver would."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookReceiver:
    """Its port is bound at once but not listened on until ``up()``: until
    then a connection is refused, as by a receiver that is down.

    ``received`` holds the verified deliveries (headers and JSON body);
    ``refused`` the requests whose signature or timestamp did not check out
    (answered 401). ``statuses`` are answered first, one per request, then
    200.
    """

    def __init__(self, secret: str, *, statuses: list[int] | None = None):
        self.secret = secret
        self.received: list[dict] = []
        self.refused: list[dict] = []
        self.statuses = list(statuses or [])
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                status = receiver.handle(dict(self.headers.items()), body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format, *args):
                pass

        self.httpd = ThreadingHTTPServer(
            ("127.0.0.1", 0), Handler, bind_and_activate=False
        )
        self.httpd.server_bind()
        self.port = self.httpd.server_address[1]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/importhub"

    def up(self) -> "WebhookReceiver":
        self.httpd.server_activate()
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        return self

    def up_after(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(seconds, self.up)
        timer.start()
        return timer

    def close(self) -> None:
        if self.thread is not None:
            self.httpd.shutdown()
            self.thread.join(timeout=5)
        self.httpd.server_close()

    def handle(self, headers: dict, body: bytes) -> int:
        timestamp = headers.get("X-Importhub-Timestamp", "")
        expected = hmac.new(
            self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        signature = headers.get("X-Importhub-Signature", "")
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        entry = {"headers": headers, "body": body}
        if not (fresh and hmac.compare_digest(signature, f"sha256={expected}")):
            self.refused.append(entry)
            return 401
        if self.statuses:
            return self.statuses.pop(0)
        entry["json"] = json.loads(body)
        self.received.append(entry)
        self.arrived.set()
        return 200
