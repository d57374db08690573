"""A page that fails transiently is tried again inside the attempt."""

import time

import pytest
import stamina

from connectors.exceptions import (
    ConnectorConfigError,
    PermanentSourceError,
    TransientSourceError,
)
from connectors.http_json import HttpJsonConnector
from connectors.page_retries import PageRetries

from .servers import Reply

ITEMS = [{"id": n} for n in range(6)]
#: Real waits, kept tiny: the retries are not faked.
FAST = {"page_retry_wait": 0.01, "page_retry_wait_max": 0.05}


def read(http_server, path="/items", **options) -> list:
    config = {"url": http_server.url(path), "timeout_read": 2, **FAST, **options}
    with HttpJsonConnector(config=config, source={}) as connector:
        return list(connector.iter_records())


def pages_asked(http_server) -> list[str]:
    return [r.query.get("page", "-") for r in http_server.requests]


@pytest.fixture
def waits():
    """The backoff of each retry stamina schedules, in seconds."""
    seen = []
    stamina.instrumentation.set_on_retry_hooks([lambda d: seen.append(d.wait_for)])
    yield seen
    stamina.instrumentation.set_on_retry_hooks(None)


class TestRetriedInPlace:
    def test_a_failed_page_is_fetched_again_and_only_it(self, http_server):
        """Page 2 fails once: the pages asked are 1, 2, 2, 3, 4 (empty)."""
        failed = []

        def page(request):
            n = int(request.query["page"])
            if n == 2 and not failed:
                failed.append(n)
                return Reply("overloaded", status=503)
            return Reply(ITEMS[(n - 1) * 2 : n * 2])

        http_server.route("/items", page)
        assert read(http_server, pagination="page") == ITEMS
        assert pages_asked(http_server) == ["1", "2", "2", "3", "4"]

    def test_a_timeout_is_retried_too(self, http_server):
        """A network failure (no answer in time) is transient: tried again."""
        http_server.route("/items", Reply(ITEMS, delay=1.0), Reply(ITEMS))
        assert read(http_server, timeout_read=0.2) == ITEMS
        assert len(http_server.requests) == 2

    def test_the_tries_are_bounded(self, http_server):
        """``page_retries`` more tries, then the last error goes to the run."""
        http_server.route("/items", Reply("down", status=500))
        with pytest.raises(TransientSourceError, match="HTTP 500"):
            read(http_server, page_retries=2)
        assert len(http_server.requests) == 3

    def test_zero_retries_is_one_try(self, http_server):
        """``page_retries: 0`` turns the retries off."""
        http_server.route("/items", Reply("down", status=500), Reply(ITEMS))
        with pytest.raises(TransientSourceError):
            read(http_server, page_retries=0)
        assert len(http_server.requests) == 1

    def test_a_permanent_error_is_not_retried(self, http_server):
        """A 404 fails at once."""
        with pytest.raises(PermanentSourceError, match="HTTP 404"):
            read(http_server, path="/nowhere")
        assert len(http_server.requests) == 1

    def test_the_backoff_grows_with_jitter_up_to_its_maximum(self, http_server, waits):
        """Waits of 0.02 s doubling (plus up to 0.02 s), capped at 0.05 s."""
        http_server.route("/items", Reply("down", status=502))
        with pytest.raises(TransientSourceError):
            read(
                http_server,
                page_retries=4,
                page_retry_wait=0.02,
                page_retry_wait_max=0.05,
            )
        assert len(http_server.requests) == 5
        first, second, *rest = waits
        assert 0.02 <= first <= 0.04
        assert 0.04 <= second <= 0.05
        assert rest == pytest.approx([0.05, 0.05])


class TestRetryAfter:
    def test_a_retry_after_is_waited_instead_of_the_backoff(self, http_server, waits):
        """``Retry-After: 1`` makes the next try wait a second, not 0.01 s."""
        http_server.route(
            "/items",
            Reply("slow down", status=429, headers={"Retry-After": "1"}),
            Reply(ITEMS),
        )
        started = time.monotonic()
        assert read(http_server) == ITEMS
        assert time.monotonic() - started >= 0.95
        assert waits == [1.0]
        assert len(http_server.requests) == 2

    def test_a_retry_after_over_the_cap_is_left_to_the_run(self, http_server):
        """A longer pause than ``page_retry_after_max`` ends the tries at once;
        the error keeps the delay for the run-level retry."""
        http_server.route(
            "/items", Reply("later", status=503, headers={"Retry-After": "120"})
        )
        started = time.monotonic()
        with pytest.raises(TransientSourceError) as caught:
            read(http_server)
        assert caught.value.retry_after == 120
        assert len(http_server.requests) == 1
        http_server.route(
            "/items", Reply("later", status=503, headers={"Retry-After": "1"})
        )
        with pytest.raises(TransientSourceError):
            read(http_server, page_retry_after_max=0.5)
        assert len(http_server.requests) == 2
        assert time.monotonic() - started < 1


class TestOptions:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("page_retries", -1),
            ("page_retries", 1.5),
            ("page_retries", True),
            ("page_retry_wait", -0.1),
            ("page_retry_wait_max", 0),
            ("page_retry_after_max", "soon"),
        ],
    )
    def test_bad_values_are_refused(self, name, value):
        """Each option is checked when the connector is saved."""
        with pytest.raises(ConnectorConfigError) as caught:
            HttpJsonConnector.validate(config={name: value})
        assert name in caught.value.errors

    def test_the_defaults(self):
        """Three more tries, from 1 s up to 30 s; Retry-After up to 60 s."""
        HttpJsonConnector.validate(config={"page_retries": 0, "page_retry_wait": 0})
        policy = PageRetries.from_options({})
        assert (policy.retries, policy.wait, policy.wait_max, policy.after_max) == (
            3,
            1.0,
            30.0,
            60.0,
        )
