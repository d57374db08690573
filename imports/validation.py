"""Validation of a project's settings, shared by the admin and the guard."""

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from connectors.validation import connector_source_validate


def project_settings_validate(
    *, connector, source: Any, key_fields: Any, mode: str
) -> None:
    """Check a project's source, key fields and mode together.

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
    if connector is not None:
        try:
            connector_source_validate(connector=connector, source=source)
        except ValidationError as exc:
            errors.update(exc.message_dict)
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
        )
    except ValidationError as exc:
        return [
            f"{field}: {message}"
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    return []
