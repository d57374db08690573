"""Connector classes by kind: the built-in ones and those of other packages.

A package adds a connector with an entry point in the group
``importhub.connectors`` whose name is the kind and whose value is the class
(``my_package.connectors:S3Connector``). A deployment may also map kinds to
dotted paths in the ``IMPORTHUB_CONNECTORS`` setting, which wins over both.
A package never replaces a built-in kind silently.

The model stores the kind as plain text: the choices an operator sees in the
admin come from here (``connector_choices()``), so a plug-in's kind can be
chosen without a migration.
"""

from functools import lru_cache
from importlib.metadata import entry_points

from django.conf import settings
from django.utils.module_loading import import_string

from .base import BaseConnector
from .exceptions import ConnectorConfigError

ENTRY_POINT_GROUP = "importhub.connectors"

BUILTIN_CONNECTORS = {
    "csv": "connectors.csv.CsvConnector",
    "http_json": "connectors.http_json.HttpJsonConnector",
    "sql": "connectors.sql.SqlConnector",
}


@lru_cache(maxsize=1)
def entry_point_paths() -> dict[str, str]:
    """Kinds installed packages declare, read once per process."""
    paths: dict[str, str] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        paths.setdefault(entry_point.name, entry_point.value.replace(":", "."))
    return paths


def connector_paths() -> dict[str, str]:
    """Every known kind and the dotted path of its class."""
    paths = dict(BUILTIN_CONNECTORS)
    for kind, path in entry_point_paths().items():
        paths.setdefault(kind, path)
    paths.update(getattr(settings, "IMPORTHUB_CONNECTORS", None) or {})
    return paths


def get_connector_class(kind: str) -> type[BaseConnector]:
    """The connector class for a kind, resolved like ``get_connection``.

    Raises:
        ConnectorConfigError: no connector is registered for the kind, or
            its class cannot be imported.
    """
    try:
        path = connector_paths()[kind]
    except (KeyError, TypeError):
        raise ConnectorConfigError({"kind": [f"No connector for kind {kind!r}."]})
    try:
        connector_class = import_string(path)
    except ImportError as exc:
        raise ConnectorConfigError(
            {"kind": [f"The connector of kind {kind!r} cannot be imported: {exc}"]}
        )
    if not (
        isinstance(connector_class, type) and issubclass(connector_class, BaseConnector)
    ):
        raise ConnectorConfigError(
            {"kind": [f"{path} is not a subclass of BaseConnector."]}
        )
    return connector_class


def connector_kinds() -> list[str]:
    """Every known kind, sorted."""
    return sorted(connector_paths())


def connector_choices() -> list[tuple[str, str]]:
    """``(kind, label)`` for each known kind, labelled by its class.

    The label is the class's ``verbose_name``, or the kind when it has none
    or cannot be imported (choosing such a kind is then refused on save,
    with the reason).
    """
    choices = []
    for kind in connector_kinds():
        try:
            label = get_connector_class(kind).verbose_name or kind
        except ConnectorConfigError:
            label = kind
        choices.append((kind, label))
    return choices


def connector_secret_fields(kind: str | None) -> tuple[str, ...]:
    """The secret config keys the kind's class declares; none if unknown."""
    try:
        return tuple(get_connector_class(kind).secret_fields)
    except ConnectorConfigError:
        return ()


def get_connector(project) -> BaseConnector:
    """A connector instance reading ``project``'s source."""
    connector = project.connector
    return get_connector_class(connector.kind)(
        config=connector.config, source=project.source
    )
