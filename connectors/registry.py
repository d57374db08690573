"""Connector classes by kind: the built-in ones and those of other packages.

A package adds a connector with an entry point in the group
``importhub.connectors`` whose name is the kind and whose value is the class.
"""

from functools import lru_cache
from importlib.metadata import entry_points

from django.utils.module_loading import import_string

from .base import BaseConnector
from .exceptions import ConnectorConfigError

ENTRY_POINT_GROUP = "importhub.connectors"

BUILTIN_CONNECTORS = {
    "csv": "connectors.csv.CsvConnector",
}


@lru_cache(maxsize=1)
def connector_paths() -> dict[str, str]:
    paths = dict(BUILTIN_CONNECTORS)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        paths.setdefault(entry_point.name, entry_point.value.replace(":", "."))
    return paths


def get_connector_class(kind: str) -> type[BaseConnector]:
    """The connector class for a kind, resolved like ``get_connection``.

    Raises:
        ConnectorConfigError: no connector is registered for the kind.
    """
    try:
        path = connector_paths()[kind]
    except KeyError:
        raise ConnectorConfigError({"kind": [f"No connector for kind {kind!r}."]})
    return import_string(path)


def get_connector(project) -> BaseConnector:
    """A connector instance reading ``project``'s source."""
    connector = project.connector
    return get_connector_class(connector.kind)(
        config=connector.config, source=project.source
    )
