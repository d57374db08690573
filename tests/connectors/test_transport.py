"""The HTTP client of the connectors (httpx) against a real local server."""

import gzip
import json
import socket
import threading
import time

import httpx
import pytest

from connectors.addresses import AddressRefused, AllowList
from connectors.csv import CsvConnector
from connectors.exceptions import (
    ConnectorConfigError,
    PermanentSourceError,
    TransientSourceError,
)
from connectors.http_backend import CheckedBackend
from connectors.http_json import HttpJsonConnector
from connectors.transport import MAX_REDIRECTS, HttpClient

from .servers import Reply

TOKEN = "Bearer tok-5e8a1c3f9b7d"
ITEMS = [{"id": n} for n in range(6)]


def read(url: str, **config) -> list:
    config = {"url": url, "timeout_read": 2, "page_retries": 0, **config}
    with HttpJsonConnector(config=config, source={}) as connector:
        return list(connector.iter_records())


def paged(request):
    n = int(request.query.get("page", 1))
    return Reply(ITEMS[(n - 1) * 2 : n * 2])


class TestConnections:
    def test_the_pages_of_a_run_reuse_one_connection(self, http_server):
        """One client per opened connector: every page over one connection."""
        http_server.route("/items", paged)
        assert read(http_server.url("/items"), pagination="page") == ITEMS
        assert len(http_server.requests) == 4
        assert len({r.client_port for r in http_server.requests}) == 1

    def test_each_opening_has_its_own_client(self, http_server):
        """close() closes the client; the next open() starts a new one."""
        http_server.route("/items", Reply(ITEMS))
        connector = HttpJsonConnector(
            config={"url": http_server.url("/items")}, source={}
        )
        with connector:
            first = connector.client()
            list(connector.iter_records())
        with connector:
            assert connector.client() is not first
            list(connector.iter_records())
        assert first.client.is_closed
        assert len({r.client_port for r in http_server.requests}) == 2

    def test_the_timeouts_are_the_connector_options(self, http_server):
        """connect/read map as before; write and pool have their own."""
        config = {
            "url": http_server.url("/items"),
            "timeout_connect": 1.5,
            "timeout_read": 7,
            "timeout_write": 3,
        }
        with HttpJsonConnector(config=config, source={}) as connector:
            timeout = connector.client().client.timeout
        assert timeout == httpx.Timeout(connect=1.5, read=7, write=3, pool=10)

    def test_a_read_timeout_says_what_timed_out(self, http_server):
        """No answer within timeout_read is transient and named."""
        http_server.route("/items", Reply(ITEMS, delay=1.0))
        with pytest.raises(TransientSourceError, match="timed out reading"):
            read(http_server.url("/items"), timeout_read=0.2)

    def test_cookies_are_neither_kept_nor_sent(self, http_server):
        """Each request stands alone: a Set-Cookie is not sent back."""
        http_server.route(
            "/items",
            lambda request: Reply(
                ITEMS[:2] if request.query.get("page") == "1" else [],
                headers={"Set-Cookie": "session=abc; Path=/"},
            ),
        )
        read(http_server.url("/items"), pagination="page")
        assert all("Cookie" not in r.headers for r in http_server.requests)


class TestBodies:
    def test_a_gzip_page_is_decoded(self, http_server):
        """A Content-Encoding the client asked for is undone."""
        body = gzip.compress(json.dumps(ITEMS).encode())
        http_server.route("/items", Reply(body, headers={"Content-Encoding": "gzip"}))
        assert read(http_server.url("/items")) == ITEMS
        assert "gzip" in http_server.requests[0].headers["Accept-Encoding"]

    def test_the_bound_counts_the_unpacked_bytes(self, http_server):
        """A small gzip body that unpacks past max_response_bytes is refused."""
        body = gzip.compress(b"[" + b" " * 100_000 + b"]")
        assert len(body) < 1000
        http_server.route("/items", Reply(body, headers={"Content-Encoding": "gzip"}))
        with pytest.raises(PermanentSourceError, match=r"max_response_bytes \(5000"):
            read(http_server.url("/items"), max_response_bytes=5000)

    def test_a_broken_gzip_page_is_permanent(self, http_server):
        """A body that its encoding cannot undo is not retried."""
        http_server.route(
            "/items", Reply(b"not gzip at all", headers={"Content-Encoding": "gzip"})
        )
        with pytest.raises(PermanentSourceError, match="not valid gzip"):
            read(http_server.url("/items"))

    def test_a_csv_without_gzip_asks_for_the_bytes_as_they_are(self, http_server):
        """``"gzip": false`` sends ``Accept-Encoding: identity``."""
        http_server.route("/d.csv", Reply("id\n1\n"))
        for option, expected in ((False, "identity"), (None, "gzip")):
            source = {"url": http_server.url("/d.csv")}
            if option is not None:
                source["gzip"] = option
            with CsvConnector(config={}, source=source) as connector:
                assert list(connector.iter_records()) == [{"id": "1"}]
            assert http_server.requests[-1].headers["Accept-Encoding"] == expected

    def test_csv_rows_arrive_as_the_body_does(self, http_server):
        """A CSV URL is streamed: the first row is read before the rest is
        even sent (nothing waits for a buffer to fill)."""
        release = threading.Event()

        def body():
            yield b"id\n1\n"
            release.wait(5)
            yield b"2\n"

        http_server.route("/d.csv", lambda request: Reply(body()))
        source = {"url": http_server.url("/d.csv")}
        started = time.monotonic()
        with CsvConnector(config={}, source=source) as connector:
            records = connector.iter_records()
            assert next(records) == {"id": "1"}
            assert time.monotonic() - started < 2
            release.set()
            assert list(records) == [{"id": "2"}]


class TestRedirects:
    def test_credentials_stay_on_their_origin_across_a_redirect(self, http_server):
        """A redirect elsewhere gets public headers only; back home, all."""
        elsewhere = http_server.url("/moved").replace("127.0.0.1", "localhost")
        http_server.route("/items", Reply(status=302, headers={"Location": elsewhere}))
        http_server.route(
            "/moved",
            Reply(status=307, headers={"Location": http_server.url("/home")}),
        )
        http_server.route("/home", Reply(ITEMS))
        records = read(
            http_server.url("/items"),
            auth_token=TOKEN,
            headers={"X-Api-Key": "k-987654321", "X-Trace": "t7"},
        )
        assert records == ITEMS
        first, second, third = (r.headers for r in http_server.requests)
        assert first["Authorization"] == TOKEN and first["X-Api-Key"]
        assert "Authorization" not in second and "X-Api-Key" not in second
        assert second["X-Trace"] == "t7"
        assert third["Authorization"] == TOKEN and third["X-Api-Key"]

    def test_at_most_five_redirects_are_followed(self, http_server):
        """Five hops are followed; a sixth is refused as permanent."""
        for n in range(MAX_REDIRECTS + 1):
            http_server.route(
                f"/r{n}", Reply(status=301, headers={"Location": f"/r{n + 1}"})
            )
        http_server.route(f"/r{MAX_REDIRECTS}", Reply(ITEMS))
        assert read(http_server.url("/r0")) == ITEMS
        http_server.route(
            f"/r{MAX_REDIRECTS}", Reply(status=302, headers={"Location": "/x"})
        )
        http_server.requests.clear()
        with pytest.raises(PermanentSourceError, match="more than 5 redirects"):
            read(http_server.url("/r0"))
        assert len(http_server.requests) == MAX_REDIRECTS + 1

    def test_a_redirect_to_another_scheme_is_permanent(self, http_server):
        """Only http(s) is followed."""
        http_server.route(
            "/items", Reply(status=302, headers={"Location": "file:///etc/passwd"})
        )
        with pytest.raises(PermanentSourceError, match="Not an http"):
            read(http_server.url("/items"))

    def test_a_secret_in_a_redirect_target_is_redacted(self, http_server):
        """The URL an error names is redacted, wherever a hop led."""
        secret = TOKEN.split()[1]
        http_server.route(
            "/items", Reply(status=302, headers={"Location": f"/next?k={secret}"})
        )
        http_server.route("/next", Reply(f"bad key {secret}", status=500))
        with pytest.raises(TransientSourceError) as caught:
            read(http_server.url("/items"), auth_token=TOKEN)
        assert "HTTP 500" in str(caught.value)
        assert secret not in str(caught.value)


class TestProxy:
    def test_requests_go_through_the_proxy(self, http_server):
        """The proxy gets the whole URL; the target's name is not resolved here."""
        http_server.route("/items", Reply(ITEMS))
        records = read(
            "http://api.example.invalid/items",
            proxy=http_server.url("/"),
            auth_token=TOKEN,
        )
        assert records == ITEMS
        [request] = http_server.requests
        assert request.target == "http://api.example.invalid/items"
        assert request.headers["Host"] == "api.example.invalid"
        assert request.headers["Authorization"] == TOKEN

    def test_the_proxy_address_is_the_one_checked(self, http_server, settings):
        """A loopback proxy is refused unless allowed, like any address."""
        settings.IMPORTHUB_HTTP_ALLOWED_HOSTS = []
        with pytest.raises(PermanentSourceError, match="loopback"):
            read("http://api.example.invalid/items", proxy=http_server.url("/"))
        assert http_server.requests == []

    def test_a_literal_internal_target_is_refused_through_a_proxy(self, http_server):
        """An IP address in the URL needs no resolving: it is checked here."""
        with pytest.raises(PermanentSourceError, match="link-local"):
            read(
                "http://169.254.169.254/latest/meta-data/",
                proxy=http_server.url("/"),
            )
        assert http_server.requests == []

    def test_a_proxy_password_is_never_shown(self, http_server):
        """A proxy's credentials are secrets of the config."""
        url = http_server.url("/")
        http_server.stop()
        proxy = url.replace("http://", "http://user:pw-3f8e1a7c@")
        with pytest.raises(TransientSourceError) as caught:
            read("http://api.example.invalid/items", proxy=proxy)
        assert "pw-3f8e1a7c" not in str(caught.value)

    def test_only_the_connector_may_set_a_proxy(self):
        """A project could read the connector's requests through its own."""
        for kind in (HttpJsonConnector, CsvConnector):
            with pytest.raises(ConnectorConfigError) as caught:
                kind.validate(
                    config={"url": "https://api.example.invalid/"},
                    source={
                        "url": "https://api.example.invalid/x",
                        "proxy": "http://p:3128",
                    },
                )
            assert "Only the connector's config" in caught.value.errors["proxy"][0]
            with pytest.raises(ConnectorConfigError) as caught:
                kind.validate(config={"proxy": "socks4://p:1080"})
            assert "proxy" in caught.value.errors
            kind.validate(config={"proxy": "http://user:pw@proxy.internal:3128"})


class TestCheckedAddresses:
    def test_the_backend_refuses_before_connecting(self):
        """An address not allowed is refused without a connection attempt."""
        backend = CheckedBackend(AllowList(["127.0.0.1"]))
        with pytest.raises(AddressRefused, match="127.0.0.2 is a loopback"):
            backend.connect_tcp("127.0.0.2", 9, timeout=1)

    def test_every_new_connection_is_checked_again(self, http_server, monkeypatch):
        """A name answering an internal address on reconnect is refused then.

        The first connection goes to 127.0.0.1 (allowed); the server closes
        it; the name now answers 127.0.0.2 (loopback, not allowed: a stand-in
        for an internal address that never leaves the machine), and the
        second page is refused without a request.
        """
        real_getaddrinfo = socket.getaddrinfo
        answers = []

        def rebinding(host, port, *args, **kwargs):
            if host != "rebind.test":
                return real_getaddrinfo(host, port, *args, **kwargs)
            answers.append(host)
            address = "127.0.0.1" if len(answers) == 1 else "127.0.0.2"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        # A body without a length closes its connection.
        http_server.route(
            "/items", lambda request: Reply(iter([json.dumps(ITEMS[:2]).encode()]))
        )
        url = f"http://rebind.test:{http_server.port}/items"
        with pytest.raises(PermanentSourceError, match="127.0.0.2 is a loopback"):
            read(url, pagination="page")
        assert len(answers) == 2
        assert len(http_server.requests) == 1

    def test_the_client_checks_with_its_own_allow_list(self, http_server):
        """``allowed_hosts`` given to the client wins over the setting."""
        http_server.route("/items", Reply(ITEMS))
        with HttpClient(allowed_hosts=[]) as client:
            with pytest.raises(PermanentSourceError, match="loopback"):
                client.get(http_server.url("/items"))
        with HttpClient(allowed_hosts=["127.0.0.0/8"]) as client:
            response = client.get(http_server.url("/items"))
            assert json.loads(response.read_limited(10_000)) == ITEMS
            response.close()
