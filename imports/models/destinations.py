"""Destinations: where a project's typed table lands.

A project without a destination lands in the app's own database, in the
schema ``IMPORTHUB_DATA_SCHEMA``. A destination names another PostgreSQL
database; only those who may edit destinations see or change its URL (its
password is masked like every secret), so whoever may edit a project can
pick a destination but never learn its credentials or point it elsewhere.
"""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

#: A schema or table name importhub creates: lower case, at most 63 bytes.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def identifier_validate(value: str) -> None:
    """Refuse a schema or table name that is not a plain identifier."""
    if value and not IDENTIFIER.match(value):
        raise ValidationError(
            _(
                "Use lower-case letters, digits and underscores, starting "
                "with a letter or an underscore, at most 63 characters."
            ),
            code="identifier",
        )


class Destination(models.Model):
    """Another PostgreSQL database that projects' tables can land in."""

    name = models.CharField(
        _("name"),
        max_length=200,
        unique=True,
        help_text=_("A unique name operators recognise."),
    )
    url = models.CharField(
        _("database URL"),
        max_length=500,
        help_text=_(
            "postgresql://user:password@host:port/database. The role needs to "
            "create tables in the schema (or the schema itself)."
        ),
    )
    schema = models.CharField(
        _("schema"),
        max_length=63,
        blank=True,
        validators=[identifier_validate],
        help_text=_("Where the tables land; empty for IMPORTHUB_DATA_SCHEMA."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("destination")
        verbose_name_plural = _("destinations")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(self.url or "")
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValidationError({"url": _("Not a valid URL.")})
        if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
            raise ValidationError(
                {"url": _("Must be postgresql://user:password@host:port/database.")}
            )
