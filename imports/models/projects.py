"""Projects: what is imported, from which connector, how."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _

from imports.models.destinations import Destination, identifier_validate
from imports.validation import project_settings_validate

#: What a source's missing value looks like, unless a project says otherwise.
DEFAULT_NULL_MARKERS = ["", "NA", "NULL", "\\N"]


def default_null_markers() -> list[str]:
    return list(DEFAULT_NULL_MARKERS)


class Project(models.Model):
    class Mode(models.TextChoices):
        UPSERT = "upsert", _("Upsert: insert new, update changed, keep the rest")
        REPLACE = "replace", _("Replace: also delete what the source no longer has")

    class OnBadRow(models.TextChoices):
        FAIL = "fail", _("Fail the import")
        SKIP = "skip", _("Skip the row and count it")

    class Layout(models.TextChoices):
        TABLE = "table", _("A typed table of the project's own")
        RECORDS = "records", _("JSON records (for sources without a stable shape)")

    class SchemaPolicy(models.TextChoices):
        EVOLVE = "evolve", _("Evolve: add new columns, widen types")
        FREEZE = "freeze", _("Freeze: fail on any new column or type change")
        DISCARD_ROW = "discard_row", _("Discard rows that do not fit")
        DISCARD_VALUE = "discard_value", _("Discard values that do not fit")

    name = models.CharField(
        _("name"),
        max_length=200,
        unique=True,
        help_text=_("A unique name operators recognise."),
    )
    connector = models.ForeignKey(
        "connectors.Connector",
        on_delete=models.PROTECT,
        related_name="projects",
        verbose_name=_("connector"),
        help_text=_("The shared source this project reads from."),
    )
    source = models.JSONField(
        _("source"),
        default=dict,
        blank=True,
        help_text=_(
            "Per-project parameters for the connector, such as a path, a URL "
            "or a query."
        ),
    )
    key_fields = models.JSONField(
        _("key fields"),
        default=list,
        blank=True,
        help_text=_(
            "Column names that identify a record. A project without key "
            "fields must use the replace mode."
        ),
    )
    mode = models.CharField(
        _("mode"),
        max_length=16,
        choices=Mode.choices,
        default=Mode.UPSERT,
        help_text=_("How an import merges into the project's records."),
    )
    on_bad_row = models.CharField(
        _("on a bad row"),
        max_length=16,
        choices=OnBadRow.choices,
        default=OnBadRow.FAIL,
        help_text=_("Fail the import, or skip bad rows and count them."),
    )
    is_active = models.BooleanField(
        _("active"),
        default=True,
        help_text=_("An inactive project accepts no new imports."),
    )
    max_retries = models.PositiveSmallIntegerField(
        _("maximum retries"),
        default=3,
        help_text=_("How many times a transient failure is retried."),
    )
    replace_delete_limit = models.PositiveSmallIntegerField(
        _("replace: deletion limit (%)"),
        default=50,
        validators=[MaxValueValidator(100)],
        help_text=_(
            "A replace run that would delete more than this share of the "
            "project's rows fails before the merge unless an operator "
            "confirms that run. 100 allows any deletion."
        ),
    )
    layout = models.CharField(
        _("layout"),
        max_length=16,
        choices=Layout.choices,
        default=Layout.TABLE,
        help_text=_(
            "Where the data lands: a typed table, or JSON records. Switching "
            "re-imports in full into the new layout."
        ),
    )
    destination = models.ForeignKey(
        Destination,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="projects",
        verbose_name=_("destination"),
        help_text=_("Another database for the table; empty for the app's own."),
    )
    table_name = models.CharField(
        _("table name"),
        max_length=63,
        blank=True,
        validators=[identifier_validate],
        help_text=_("Empty to derive one from the name and id."),
    )
    schema_policy = models.CharField(
        _("schema policy"),
        max_length=16,
        choices=SchemaPolicy.choices,
        default=SchemaPolicy.EVOLVE,
        help_text=_("What an import does when the source's columns change."),
    )
    column_types = models.JSONField(
        _("declared column types"),
        default=dict,
        blank=True,
        help_text=_(
            'Column name to type, for example {"amount": "numeric"}; a '
            "declared type always wins over the inferred one."
        ),
    )
    null_markers = models.JSONField(
        _("null markers"),
        default=default_null_markers,
        blank=True,
        help_text=_("Values that mean a missing value and land as NULL."),
    )
    table_columns = models.JSONField(
        _("table columns"),
        default=list,
        blank=True,
        editable=False,
        help_text=_("The table's columns as the last import committed them."),
    )
    auto_pause_after = models.PositiveSmallIntegerField(
        _("pause after failures"),
        default=0,
        help_text=_(
            "Pause the project once this many of its runs have failed in a "
            "row; 0 never pauses it."
        ),
    )
    paused_at = models.DateTimeField(
        _("paused"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("Set while the project is paused: it accepts no imports."),
    )
    pause_details = models.JSONField(
        _("pause details"),
        default=dict,
        blank=True,
        editable=False,
        help_text=_("Why the project was paused: the failures and the last run."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("project")
        verbose_name_plural = _("projects")
        ordering = ["name"]
        permissions = [
            ("force_unlock_project", _("Can force-unlock a project")),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        if not self.table_name:
            # Derived once, from the name and id, and kept: renaming the
            # project does not move its data.
            self.table_name = table_name_derive(self.name, self.pk)
            Project.objects.filter(pk=self.pk).update(table_name=self.table_name)

    def clean(self) -> None:
        # One validation for every way in: the admin's form, the API, the
        # commands and the guard all reach it through full_clean().
        project_settings_validate(
            connector=self.connector if self.connector_id else None,
            source=self.source,
            key_fields=self.key_fields,
            mode=self.mode,
            column_types=self.column_types,
            null_markers=self.null_markers,
            layout=self.layout,
        )
        if self.layout == self.Layout.TABLE and self.table_name:
            taken = Project.objects.filter(
                destination_id=self.destination_id, table_name=self.table_name
            ).exclude(pk=self.pk)
            if taken.exists():
                raise ValidationError(
                    {"table_name": _("Another project lands in this table.")}
                )


#: Russian letters in Latin, so that a Russian name gives a readable table.
_CYRILLIC = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        (
            "a b v g d e e zh z i i k l m n o p r s t u f kh ts ch sh shch  y  e yu ya"
        ).split(" "),
        strict=True,
    )
)


def table_name_derive(name: str, pk: int) -> str:
    """A table name from a project's name and id: ``sales_eu_12``, and for
    «Клиенты» ``klienty_1``."""
    latin = "".join(_CYRILLIC.get(char, char) for char in name.lower())
    slug = re.sub(r"[^a-z0-9_]+", "_", slugify(latin).replace("-", "_"))
    slug = slug.strip("_")[:50] or "project"
    if slug[0].isdigit():
        slug = f"p_{slug}"[:50]
    return f"{slug}_{int(pk)}"
