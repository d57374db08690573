"""Validation of a project's settings, shared by the admin and the guard."""

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from connectors.validation import connector_source_validate
from imports.column_types import TYPES, type_normalize
from imports.cursors import cursor_problems


def project_settings_validate(
    *,
    connector,
    source: Any,
    key_fields: Any,
    mode: str,
    column_types: Any = None,
    null_markers: Any = None,
    layout: str = "table",
) -> None:
    """Check a project's source, key fields, mode and table settings together.

    Raises:
        ValidationError: a dict naming each invalid field.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(key_fields, list) or not all(
        isinstance(name, str) and name.strip() for name in key_fields
    ):
        errors["key_fields"] = [_("Key fields must be a list of column names.")]
    elif len(set(key_fields)) != len(key_fields):
        errors["key_fields"] = [_("A key field is named more than once.")]
    elif not key_fields and mode != "replace":
        errors["key_fields"] = [
            _("A project without key fields must use the replace mode.")
        ]
    if column_types is not None:
        problem = _column_types_problem(column_types)
        if problem:
            errors["column_types"] = [problem]
    if null_markers is not None and (
        not isinstance(null_markers, list)
        or not all(isinstance(m, str) and "\x00" not in m for m in null_markers)
    ):
        errors["null_markers"] = [_("Null markers must be a list of strings.")]
    if connector is not None:
        cursor = cursor_problems(source, kind=connector.kind, layout=layout)
        checked = source
        if isinstance(source, dict) and "cursor" in source:
            # The connector's own checks see the source as it reads it.
            checked = {k: v for k, v in source.items() if k != "cursor"}
        try:
            connector_source_validate(connector=connector, source=checked)
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if cursor:
            errors.setdefault("source", []).extend(cursor)
    if errors:
        raise ValidationError(errors)


def project_settings_errors(project) -> list[str]:
    """The project's setting problems as readable lines; empty when valid."""
    try:
        project_settings_validate(
            connector=project.connector,
            source=project.source,
            key_fields=project.key_fields,
            mode=project.mode,
            column_types=project.column_types,
            null_markers=project.null_markers,
            layout=project.layout,
        )
    except ValidationError as exc:
        return [
            f"{field}: {message}"
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    return []


def _column_types_problem(column_types: Any) -> str | None:
    if not isinstance(column_types, dict):
        return _('Declared types must be an object: {"column": "type"}.')
    unknown = sorted(
        f"{name}: {kind!r}"
        for name, kind in column_types.items()
        if type_normalize(kind) is None
    )
    if unknown:
        return _("Unknown type for %(columns)s; use one of %(types)s.") % {
            "columns": ", ".join(unknown),
            "types": ", ".join(TYPES),
        }
    return None
