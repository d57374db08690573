"""The JSONB record store imports land in."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from imports.models.projects import Project
from imports.models.runs import ImportRun


class Record(models.Model):
    """One record an import landed, keyed within its project.

    The layout serves bulk loads: the primary key is ``(project, key)``, the
    one index every write must maintain; there is no surrogate id, no index
    on ``last_run`` and no database foreign key (whose deferred check would
    fire once per row at commit). Deleting a project still deletes its
    records: Django's collector issues one ``DELETE ... WHERE project_id``.
    """

    pk = models.CompositePrimaryKey("project_id", "key")
    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="records",
        verbose_name=_("project"),
        db_constraint=False,
        db_index=False,
    )
    key = models.TextField(
        _("key"),
        help_text=_("The project's key fields' values, joined."),
    )
    data = models.JSONField(_("data"), help_text=_("The record as the source gave it."))
    checksum = models.CharField(
        _("checksum"),
        max_length=32,
        help_text=_("A digest of the data; an unchanged record is not rewritten."),
    )
    last_run = models.ForeignKey(
        ImportRun,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("last run"),
        db_constraint=False,
        db_index=False,
        help_text=_("The run that last inserted or changed the record."),
    )

    class Meta:
        verbose_name = _("record")
        verbose_name_plural = _("records")

    def __str__(self) -> str:
        return f"{self.project_id}:{self.key}"
