"""Projects: what is imported, from which connector, how."""

from django.core.validators import MaxValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from imports.validation import project_settings_validate


class Project(models.Model):
    class Mode(models.TextChoices):
        UPSERT = "upsert", _("Upsert: insert new, update changed, keep the rest")
        REPLACE = "replace", _("Replace: also delete what the source no longer has")

    class OnBadRow(models.TextChoices):
        FAIL = "fail", _("Fail the import")
        SKIP = "skip", _("Skip the row and count it")

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

    def clean(self) -> None:
        # One validation for every way in: the admin's form, the API, the
        # commands and the guard all reach it through full_clean().
        project_settings_validate(
            connector=self.connector if self.connector_id else None,
            source=self.source,
            key_fields=self.key_fields,
            mode=self.mode,
        )
