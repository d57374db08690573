"""The HTTP JSON connector against a real local server."""

import json
from email.utils import formatdate

import pytest

from connectors.base import BadRow
from connectors.exceptions import PermanentSourceError, TransientSourceError
from connectors.http_json import HttpJsonConnector, lookup, next_link
from connectors.transport import parse_retry_after

from .contract import ConnectorContractTests
from .servers import Reply

ITEMS = [{"id": n, "name": f"item {n}", "tags": ["a", {"b": n}]} for n in range(7)]
TOKEN = "tok-2f9c1e7a5b3d"


def read(http_server, **options) -> list:
    """The records at ``path``; one try per page unless ``page_retries``."""
    config = {
        "url": http_server.url("/"),
        "timeout_read": 2,
        "page_retries": 0,
        **options,
    }
    source = {"path": options.pop("path", "/items")} if "url" not in options else {}
    with HttpJsonConnector(config=config, source=source) as connector:
        return list(connector.iter_records())


class TestHttpJsonConnectorContract(ConnectorContractTests):
    connector_class = HttpJsonConnector
    garbage_configs = [
        {"url": "not a url"},
        {"pagination": "sideways"},
        {"pagination": "cursor"},
        {"max_response_bytes": -1},
        {"headers": ["x"]},
        {"timeout_read": "soon"},
    ]

    @pytest.fixture
    def make_source(self, http_server):
        def make(rows):
            http_server.route("/rows", Reply({"data": {"items": rows}}))
            config = {
                "url": http_server.url("/"),
                "records_path": "data.items",
                "auth_token": "Bearer contract",
            }
            return config, {"path": "rows"}

        return make


class TestPagination:
    def test_no_pagination_reads_one_response(self, http_server):
        """Without pagination the body is read once; nested values are kept."""
        http_server.route("/items", Reply(ITEMS))
        assert read(http_server) == ITEMS
        assert len(http_server.requests) == 1

    def test_page_numbers_until_an_empty_page(self, http_server):
        """``page`` pagination counts pages up and stops on an empty one."""

        def page(request):
            n = int(request.query["p"])
            size = int(request.query["size"])
            return Reply({"items": ITEMS[(n - 1) * size : n * size]})

        http_server.route("/items", page)
        records = read(
            http_server,
            records_path="items",
            pagination="page",
            page_param="p",
            page_size_param="size",
            page_size=3,
        )
        assert records == ITEMS
        assert [r.query["p"] for r in http_server.requests] == ["1", "2", "3", "4"]

    def test_offset_and_limit_until_an_empty_page(self, http_server):
        """``offset`` pagination advances by the records received."""

        def page(request):
            start, limit = int(request.query["offset"]), int(request.query["limit"])
            return Reply({"results": ITEMS[start : start + limit]})

        http_server.route("/items", page)
        records = read(
            http_server, records_path="results", pagination="offset", limit=4
        )
        assert records == ITEMS
        assert [r.query["offset"] for r in http_server.requests] == ["0", "4", "7"]

    def test_cursor_from_the_body_sent_as_a_parameter(self, http_server):
        """``cursor`` pagination follows the body's cursor until it is null."""

        def page(request):
            start = int(request.query.get("after", 0))
            chunk = ITEMS[start : start + 3]
            cursor = start + 3 if start + 3 < len(ITEMS) else None
            return Reply({"data": chunk, "meta": {"next": cursor}})

        http_server.route("/items", page)
        records = read(
            http_server,
            records_path="data",
            pagination="cursor",
            cursor_path="meta.next",
            cursor_param="after",
            params={"kind": "all"},
        )
        assert records == ITEMS
        assert [r.query.get("after") for r in http_server.requests] == [
            None,
            "3",
            "6",
        ]
        assert all(r.query["kind"] == "all" for r in http_server.requests)

    def test_next_link_in_the_body(self, http_server):
        """``next_link`` follows a (relative) URL found in the body."""
        http_server.route("/items", Reply({"rows": ITEMS[:4], "next": "/items/2"}))
        http_server.route("/items/2", Reply({"rows": ITEMS[4:], "next": None}))
        records = read(
            http_server, records_path="rows", pagination="next_link", next_path="next"
        )
        assert records == ITEMS

    def test_link_header(self, http_server):
        """``link_header`` follows ``Link: <...>; rel="next"``."""
        second = http_server.url("/items?page=2")
        http_server.route(
            "/items",
            lambda request: Reply(
                ITEMS[4:] if request.query.get("page") == "2" else ITEMS[:4],
                headers={}
                if request.query.get("page") == "2"
                else {"Link": f'<{second}>; rel="next", </items?page=9>; rel="last"'},
            ),
        )
        assert read(http_server, pagination="link_header") == ITEMS
        assert len(http_server.requests) == 2

    def test_a_pagination_that_never_ends_is_bounded(self, http_server):
        """``max_pages`` stops an API that always says there is more."""
        http_server.route("/items", lambda request: Reply([{"id": 1}]))
        with pytest.raises(PermanentSourceError, match=r"max_pages \(3 pages\)"):
            read(http_server, pagination="page", max_pages=3)

    def test_a_cursor_that_repeats_is_a_loop(self, http_server):
        """A cursor pointing back at a read page is refused, not followed."""
        http_server.route("/items", Reply({"d": [1], "c": "same"}))
        with pytest.raises(PermanentSourceError, match="loops"):
            read(http_server, records_path="d", pagination="cursor", cursor_path="c")


class TestRecords:
    def test_a_non_object_item_is_a_bad_row(self, http_server):
        """Items that are not JSON objects become BadRows with their number."""
        http_server.route("/items", Reply([{"id": 1}, [1, 2], "x", {"id": 4}]))
        assert read(http_server) == [
            {"id": 1},
            BadRow(2, "record 2 is a JSON array, not an object"),
            BadRow(3, "record 3 is a JSON string, not an object"),
            {"id": 4},
        ]

    def test_a_records_path_that_is_missing_is_permanent(self, http_server):
        """A body without the configured records path is a config problem."""
        http_server.route("/items", Reply({"other": []}))
        with pytest.raises(PermanentSourceError, match="nothing at 'data.items'"):
            read(http_server, records_path="data.items")

    def test_lookup_and_link_parsing(self):
        """Dotted paths reach into objects and lists; Link finds rel=next."""
        assert lookup({"a": [{"b": 1}]}, "a.0.b") == 1
        assert lookup([1], "") == [1]
        assert next_link('<https://x/2>; rel="prev next"') == "https://x/2"
        assert next_link('<https://x/9>; rel="last"') is None


class TestErrors:
    def test_500_is_transient_and_a_second_attempt_succeeds(self, http_server):
        """A 500 raises a transient error; trying again reads the records."""
        http_server.route("/items", Reply("oops", status=500), Reply(ITEMS))
        with pytest.raises(TransientSourceError, match="HTTP 500"):
            read(http_server)
        assert read(http_server) == ITEMS

    def test_429_with_retry_after_seconds(self, http_server):
        """A 429 with Retry-After is transient and carries the delay."""
        http_server.route(
            "/items", Reply("slow down", status=429, headers={"Retry-After": "7"})
        )
        with pytest.raises(TransientSourceError) as caught:
            read(http_server)
        assert caught.value.retry_after == 7.0

    def test_retry_after_as_an_http_date(self, http_server):
        """A Retry-After date becomes the seconds left until it."""
        http_server.route(
            "/items",
            lambda request: Reply(
                "", status=503, headers={"Retry-After": formatdate(usegmt=True)}
            ),
        )
        with pytest.raises(TransientSourceError) as caught:
            read(http_server)
        assert 0 <= caught.value.retry_after <= 1
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == 10

    def test_a_slow_response_times_out_as_transient(self, http_server):
        """No answer within ``timeout_read`` is transient."""
        http_server.route("/items", Reply(ITEMS, delay=1.0))
        with pytest.raises(TransientSourceError, match="timed out"):
            read(http_server, timeout_read=0.3)

    def test_invalid_json_is_permanent(self, http_server):
        """A body that is not JSON fails at once, with the parser's reason."""
        http_server.route("/items", Reply('{"items": [1, 2'))
        with pytest.raises(PermanentSourceError, match="not valid JSON"):
            read(http_server)

    def test_nan_is_not_json(self, http_server):
        """``NaN`` is refused: PostgreSQL's jsonb could not store it."""
        http_server.route("/items", Reply('[{"x": NaN}]'))
        with pytest.raises(PermanentSourceError, match="NaN is not valid JSON"):
            read(http_server)

    def test_a_404_is_permanent(self, http_server):
        """A 4xx other than 429 is permanent and names the status."""
        with pytest.raises(PermanentSourceError, match="HTTP 404"):
            read(http_server, path="/nowhere")

    def test_a_response_over_the_bound_is_permanent(self, http_server):
        """A response larger than max_response_bytes aborts, naming the limit."""
        http_server.route("/items", Reply(ITEMS * 50))
        with pytest.raises(PermanentSourceError, match=r"max_response_bytes \(1000"):
            read(http_server, max_response_bytes=1000)

    def test_a_streamed_response_over_the_bound_is_permanent(self, http_server):
        """Without a Content-Length the bound holds while reading."""
        chunk = json.dumps(ITEMS).encode()
        http_server.route("/items", lambda request: Reply(iter([chunk] * 100)))
        with pytest.raises(PermanentSourceError, match="max_response_bytes"):
            read(http_server, max_response_bytes=5000)


class TestSecrets:
    def test_the_token_is_sent_and_never_in_an_error(self, http_server):
        """The auth header is sent; a 401 echoing the token shows the mask."""
        http_server.route(
            "/items",
            lambda request: Reply(
                f"bad token {request.headers.get('X-Api-Auth')}", status=401
            ),
        )
        with pytest.raises(PermanentSourceError) as caught:
            read(http_server, auth_header="X-Api-Auth", auth_token=TOKEN)
        assert http_server.requests[0].headers["X-Api-Auth"] == TOKEN
        assert "HTTP 401" in str(caught.value)
        assert TOKEN not in str(caught.value)
        assert "••••••" in str(caught.value)

    def test_the_token_is_not_sent_to_another_host(self, http_server):
        """A next link to another origin gets no credentials."""
        other = http_server.url("/more").replace("127.0.0.1", "localhost")
        http_server.route("/items", Reply({"rows": [{"id": 1}], "next": other}))
        http_server.route("/more", Reply({"rows": [{"id": 2}]}))
        records = read(
            http_server,
            records_path="rows",
            pagination="next_link",
            next_path="next",
            auth_token=TOKEN,
        )
        assert records == [{"id": 1}, {"id": 2}]
        assert http_server.requests[0].headers["Authorization"] == TOKEN
        assert "Authorization" not in http_server.requests[1].headers


class TestTransport:
    def test_a_redirect_is_followed(self, http_server):
        """A 302 leads to the records."""
        http_server.route("/old", Reply("", status=302, headers={"Location": "/items"}))
        http_server.route("/items", Reply(ITEMS))
        assert read(http_server, path="/old") == ITEMS

    def test_a_redirect_loop_is_permanent(self, http_server):
        """Redirects are bounded."""
        http_server.route("/loop", Reply("", status=302, headers={"Location": "/loop"}))
        with pytest.raises(PermanentSourceError, match="redirects"):
            read(http_server, path="/loop")

    def test_a_refused_connection_is_transient(self, http_server):
        """Nobody listening is transient."""
        url = http_server.url("/")
        http_server.stop()
        config = {"url": url, "page_retries": 0}
        with HttpJsonConnector(config=config, source={}) as connector:
            with pytest.raises(TransientSourceError, match="failed"):
                list(connector.iter_records())
