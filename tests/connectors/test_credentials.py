"""A shared connector's credentials travel only to the connector's origin."""

import pytest
from django.core.exceptions import ValidationError

from connectors.csv import CsvConnector
from connectors.exceptions import ConnectorConfigError
from connectors.http_json import HttpJsonConnector
from connectors.sql import SqlConnector
from connectors.validation import connector_source_validate

from .servers import Reply

TOKEN = "Bearer tok-7c1d9e2f4a6b"
API = "https://api.example.invalid/v1/"


def refused(connector_class, config, source) -> dict:
    with pytest.raises(ConnectorConfigError) as caught:
        connector_class.validate(config=config, source=source)
    return caught.value.errors


class TestHttpJson:
    def test_a_source_url_on_another_origin_is_refused(self):
        """A project cannot point the connector's token at its own server."""
        config = {"url": API, "auth_token": TOKEN}
        errors = refused(
            HttpJsonConnector, config, {"url": "https://evil.example.invalid/x"}
        )
        [message] = errors["url"]
        assert "https://evil.example.invalid:443" in message
        assert "https://api.example.invalid:443" in message
        assert TOKEN not in message

    def test_another_scheme_or_port_is_another_origin(self):
        """Origin is scheme, host and port."""
        config = {"url": API, "auth_token": TOKEN}
        for url in (
            "http://api.example.invalid/v1/items",
            "https://api.example.invalid:8443/v1/items",
        ):
            assert "url" in refused(HttpJsonConnector, config, {"url": url})

    def test_a_path_that_is_a_full_url_is_refused(self):
        """``path`` joined to the base URL cannot lead to another host."""
        config = {"url": API, "auth_token": TOKEN}
        errors = refused(
            HttpJsonConnector, config, {"path": "https://evil.example.invalid/x"}
        )
        assert "credentials travel only to their own origin" in errors["path"][0]

    def test_secret_headers_count_as_credentials(self):
        """An ``Authorization`` header in the config is a credential too."""
        config = {"url": API, "headers": {"Authorization": TOKEN}}
        assert "url" in refused(
            HttpJsonConnector, config, {"url": "https://evil.example.invalid/"}
        )

    def test_the_same_origin_and_connectors_without_secrets_pass(self):
        """Another path on the same origin, or no secret at all, is fine."""
        HttpJsonConnector.validate(
            config={"url": API, "auth_token": TOKEN},
            source={"url": "https://API.example.invalid:443/v2/other"},
        )
        HttpJsonConnector.validate(
            config={"url": API}, source={"url": "https://elsewhere.example.invalid/"}
        )

    def test_credentials_without_an_own_url_are_refused(self):
        """A token shared by projects that choose the host is refused."""
        errors = refused(
            HttpJsonConnector,
            {"auth_token": TOKEN},
            {"url": "https://any.example.invalid/"},
        )
        assert "names no url" in errors["url"][0]

    def test_a_project_token_goes_to_the_project_url(self):
        """Credentials a project gives itself are not the connector's."""
        HttpJsonConnector.validate(
            config={"url": API},
            source={"url": "https://mine.example.invalid/", "auth_token": TOKEN},
        )

    def test_secret_headers_are_not_sent_to_another_host(self, http_server):
        """An ``X-Api-Key`` header stays on the connector's origin."""
        other = http_server.url("/more").replace("127.0.0.1", "localhost")
        http_server.route("/items", Reply({"rows": [{"id": 1}], "next": other}))
        http_server.route("/more", Reply({"rows": [{"id": 2}]}))
        config = {
            "url": http_server.url("/"),
            "headers": {"X-Api-Key": "k-123456789", "X-Trace": "t1"},
            "records_path": "rows",
            "pagination": "next_link",
            "next_path": "next",
        }
        with HttpJsonConnector(config=config, source={"path": "items"}) as c:
            assert len(list(c.iter_records())) == 2
        first, second = http_server.requests
        assert first.headers["X-Api-Key"] == "k-123456789"
        assert "X-Api-Key" not in second.headers
        assert second.headers["X-Trace"] == "t1"


class TestCsv:
    def test_a_source_url_on_another_origin_is_refused(self):
        """The connector's token never follows a project's URL elsewhere."""
        config = {"url": "https://files.example.invalid/a.csv", "auth_token": TOKEN}
        errors = refused(
            CsvConnector, config, {"url": "https://evil.example.invalid/b.csv"}
        )
        assert "credentials travel only to their own origin" in errors["url"][0]
        CsvConnector.validate(
            config=config, source={"url": "https://files.example.invalid/b.csv"}
        )

    def test_the_token_is_sent_only_to_the_connector_origin(self, http_server):
        """Even unchecked, a token goes only to the connector's own origin."""
        http_server.route("/d.csv", Reply("id\n1\n"))
        own = http_server.url("/d.csv").replace("127.0.0.1", "localhost")
        connector = CsvConnector(
            config={"url": own, "auth_token": TOKEN},
            source={"url": http_server.url("/d.csv")},
        )
        connector.validate = lambda **kwargs: None  # as if validation had passed
        with connector:
            assert list(connector.iter_records()) == [{"id": "1"}]
        assert "Authorization" not in http_server.requests[0].headers


class TestSql:
    URL = "postgresql://reader:s3cret-pw@db.example.invalid:5432/warehouse"

    def test_a_project_cannot_change_the_connection_of_a_connector_with_a_password(
        self,
    ):
        """The connector's password would log in wherever the project says."""
        for config in (
            {"url": self.URL},
            {"url": self.URL.replace(":s3cret-pw", ""), "password": "s3cret-pw"},
        ):
            errors = refused(
                SqlConnector,
                config,
                {
                    "url": "postgresql://reader@evil.example.invalid/warehouse",
                    "query": "SELECT 1",
                },
            )
            assert "may not change the connection" in errors["url"][0]
            assert "s3cret-pw" not in str(errors)

    def test_without_credentials_a_project_may_choose_the_database(self):
        """A connector with no password leaves the URL to its projects."""
        SqlConnector.validate(
            config={"url": "postgresql://reader@db.example.invalid/a"},
            source={
                "url": "postgresql://reader@db.example.invalid/b",
                "query": "SELECT 1",
            },
        )
        SqlConnector.validate(
            config={"url": self.URL}, source={"url": self.URL, "query": "SELECT 1"}
        )


@pytest.mark.django_db
def test_the_project_side_refuses_it_too(make_connector):
    """``connector_source_validate`` (the project form, the guard) refuses."""
    connector = make_connector(
        kind="http_json", config={"url": API, "auth_token": TOKEN}
    )
    with pytest.raises(ValidationError) as caught:
        connector_source_validate(
            connector=connector, source={"url": "https://evil.example.invalid/"}
        )
    assert "credentials travel only" in caught.value.message_dict["source"][0]
