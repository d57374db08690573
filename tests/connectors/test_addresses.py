"""The SSRF guard: which addresses HTTP connectors may reach."""

import ipaddress
import socket

import pytest

from connectors.addresses import (
    AddressRefused,
    AllowList,
    address_problem,
    resolve_checked,
)
from connectors.csv import CsvConnector
from connectors.exceptions import PermanentSourceError
from connectors.http_json import HttpJsonConnector

from .servers import Reply

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "fd00::1": "private",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "240.0.0.1": "reserved",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "100.64.0.1": "not a public address",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:169.254.169.254": "link-local",
    "2002:a00:1::": "private",  # 6to4 of 10.0.0.1
    "64:ff9b::a9fe:a9fe": "link-local",  # NAT64 of 169.254.169.254
}


@pytest.mark.parametrize(("address", "what"), REFUSED.items())
def test_non_public_addresses_are_refused(address, what):
    """Each range a request must not reach by default is named."""
    assert what in address_problem(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    """A public address has no problem."""
    assert address_problem(ipaddress.ip_address(address)) is None


def test_the_allow_list_takes_hosts_domains_and_networks():
    """Entries are networks, host names, or ``.domain`` for subdomains."""
    allowed = AllowList(["10.0.0.0/8", "127.0.0.1", "Data.Internal", ".corp.example"])
    assert allowed.allows_address(ipaddress.ip_address("10.9.8.7"))
    assert allowed.allows_address(ipaddress.ip_address("::ffff:10.9.8.7"))
    assert not allowed.allows_address(ipaddress.ip_address("192.168.0.1"))
    assert allowed.allows_host("data.internal")
    assert allowed.allows_host("api.corp.example")
    assert not allowed.allows_host("corp.example.evil.test")
    assert not allowed.allows_host("other.internal")


def test_resolve_checked_keeps_only_allowed_addresses():
    """Literal addresses resolve to themselves and are checked."""
    with pytest.raises(AddressRefused, match="IMPORTHUB_HTTP_ALLOWED_HOSTS"):
        resolve_checked("127.0.0.1", 80)
    assert resolve_checked("127.0.0.1", 80, allowed=["127.0.0.0/8"]) == ["127.0.0.1"]
    assert resolve_checked("localhost", 80, allowed=["localhost"])


class TestConnectorsRefuseLocalAddresses:
    @pytest.fixture
    def default_settings(self, settings):
        """The default: no allow-list, as a deployment starts."""
        settings.IMPORTHUB_HTTP_ALLOWED_HOSTS = []

    def test_loopback_is_refused_by_default(self, http_server, default_settings):
        """With the default setting the local test server is never asked."""
        http_server.route("/items", Reply([{"id": 1}]))
        http_server.route("/d.csv", Reply("id\n1\n"))
        with pytest.raises(PermanentSourceError, match="loopback") as caught:
            with HttpJsonConnector(
                config={"url": http_server.url("/items")}, source={}
            ) as connector:
                list(connector.iter_records())
        assert "IMPORTHUB_HTTP_ALLOWED_HOSTS" in str(caught.value)
        with pytest.raises(PermanentSourceError, match="loopback"):
            with CsvConnector(
                config={}, source={"url": http_server.url("/d.csv")}
            ) as connector:
                list(connector.iter_records())
        assert http_server.requests == []

    def test_an_ipv4_mapped_loopback_is_refused(self, http_server, default_settings):
        """``[::ffff:127.0.0.1]`` is loopback too."""
        url = f"http://[::ffff:127.0.0.1]:{http_server.port}/items"
        with pytest.raises(PermanentSourceError, match="loopback"):
            with HttpJsonConnector(config={"url": url}, source={}) as connector:
                list(connector.iter_records())

    @pytest.mark.parametrize(
        "target",
        [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/admin",
            "http://[::1]:9/",
            "http://0.0.0.0:9/",
        ],
    )
    def test_a_redirect_to_a_local_address_is_refused(self, http_server, target):
        """Every redirect is checked: an allowed host cannot bounce inside."""
        http_server.route("/items", Reply("", status=302, headers={"Location": target}))
        with pytest.raises(PermanentSourceError, match="may not be reached"):
            with HttpJsonConnector(
                config={"url": http_server.url("/items")}, source={}
            ) as connector:
                list(connector.iter_records())
        assert [r.path for r in http_server.requests] == ["/items"]

    def test_a_host_allowed_by_name(self, http_server, settings):
        """An internal source is reachable once its name is allowed."""
        settings.IMPORTHUB_HTTP_ALLOWED_HOSTS = ["localhost"]
        http_server.route("/items", Reply([{"id": 1}]))
        url = f"http://localhost:{http_server.port}/items"
        with HttpJsonConnector(config={"url": url}, source={}) as connector:
            assert list(connector.iter_records()) == [{"id": 1}]

    def test_the_connection_goes_to_the_checked_address(self, http_server, monkeypatch):
        """A name is resolved once; a second answer (rebinding) is never used.

        The resolver answers 127.0.0.1 (allowed) first and 127.0.0.2 after
        (refused: only 127.0.0.1 is allowed in the tests; a loopback
        stand-in for an internal address, so that a broken guard sends
        nothing off the machine); the request still reaches the local
        server, under the name, and the name is resolved once.
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
        http_server.route("/items", Reply([{"id": 1}]))
        url = f"http://rebind.test:{http_server.port}/items"
        with HttpJsonConnector(config={"url": url}, source={}) as connector:
            assert list(connector.iter_records()) == [{"id": 1}]
        assert answers == ["rebind.test"]
        assert http_server.requests[0].headers["Host"] == (
            f"rebind.test:{http_server.port}"
        )
