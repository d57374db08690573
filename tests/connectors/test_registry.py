"""Connector classes by kind."""

import pytest

from connectors.base import BaseConnector
from connectors.csv import CsvConnector
from connectors.exceptions import ConnectorConfigError
from connectors.http_json import HttpJsonConnector
from connectors.registry import (
    BUILTIN_CONNECTORS,
    connector_choices,
    connector_kinds,
    connector_paths,
    connector_secret_fields,
    entry_point_paths,
    get_connector_class,
)
from connectors.sql import SqlConnector


class FakeConnector(BaseConnector):
    kind = "fake"
    verbose_name = "Fake source"
    secret_fields = ("api_secret_value",)

    def iter_records(self):
        yield {"id": 1}


def test_every_builtin_kind_is_a_choice():
    """Each built-in kind is offered, labelled, and resolves to its class."""
    assert connector_kinds() == ["csv", "http_json", "sql"]
    assert connector_choices() == [
        ("csv", CsvConnector.verbose_name),
        ("http_json", HttpJsonConnector.verbose_name),
        ("sql", SqlConnector.verbose_name),
    ]
    assert set(BUILTIN_CONNECTORS) == set(connector_kinds())
    assert get_connector_class("csv") is CsvConnector
    assert get_connector_class("http_json") is HttpJsonConnector
    assert get_connector_class("sql") is SqlConnector


def test_an_unknown_kind_is_a_config_error():
    """An unknown kind is refused with a message naming it."""
    with pytest.raises(ConnectorConfigError) as caught:
        get_connector_class("ftp")
    assert caught.value.errors == {"kind": ["No connector for kind 'ftp'."]}


def test_a_dotted_path_in_settings_adds_a_kind(settings):
    """``IMPORTHUB_CONNECTORS`` maps a kind to a class by dotted path."""
    settings.IMPORTHUB_CONNECTORS = {"fake": f"{__name__}.FakeConnector"}
    assert get_connector_class("fake") is FakeConnector
    assert connector_paths()["csv"] == BUILTIN_CONNECTORS["csv"]
    assert ("fake", "Fake source") in connector_choices()
    assert connector_secret_fields("fake") == ("api_secret_value",)


def test_a_kind_that_does_not_import_is_still_listed(settings):
    """A broken plug-in is offered under its kind, so choosing it says why."""
    settings.IMPORTHUB_CONNECTORS = {"ghost": "no_such_package.Connector"}
    assert ("ghost", "ghost") in connector_choices()
    assert connector_secret_fields("ghost") == ()
    assert connector_secret_fields(None) == ()


def test_a_path_that_does_not_import_is_a_config_error(settings):
    """A registered path that cannot be imported is reported, not raised raw."""
    settings.IMPORTHUB_CONNECTORS = {"ghost": "no_such_package.Connector"}
    with pytest.raises(ConnectorConfigError, match="cannot be imported"):
        get_connector_class("ghost")


def test_a_path_to_something_else_is_a_config_error(settings):
    """Only BaseConnector subclasses are connectors."""
    settings.IMPORTHUB_CONNECTORS = {"odd": "collections.OrderedDict"}
    with pytest.raises(ConnectorConfigError, match="not a subclass"):
        get_connector_class("odd")


def test_an_installed_package_adds_a_kind_by_entry_point(tmp_path, monkeypatch):
    """A distribution's entry point adds a kind but cannot take over ``csv``."""
    dist_info = tmp_path / "importhub_fake-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: importhub-fake\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[importhub.connectors]\n"
        "csv = no_such_package:Connector\n"
        f"fake = {__name__}:FakeConnector\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    entry_point_paths.cache_clear()
    try:
        assert get_connector_class("fake") is FakeConnector
        assert get_connector_class("csv") is CsvConnector
    finally:
        monkeypatch.undo()
        entry_point_paths.cache_clear()
    with pytest.raises(ConnectorConfigError):
        get_connector_class("fake")


def test_the_base_class_demands_iter_records():
    """A subclass that forgets ``iter_records()`` fails loudly."""
    with pytest.raises(NotImplementedError, match="must provide an iter_records"):
        next(BaseConnector(config={}, source={}).iter_records())
