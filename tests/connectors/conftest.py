"""Fixtures of the connector tests: local HTTP servers and SQL sources."""

import pytest

from .servers import LocalHttpServer


@pytest.fixture
def http_server():
    """A real HTTP server on 127.0.0.1, stopped after the test."""
    server = LocalHttpServer().start()
    yield server
    server.stop()
