"""The connector model: a shared data source with a number of import slots."""

from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _


class Connector(models.Model):
    class Kind(models.TextChoices):
        CSV = "csv", _("CSV file or URL")
        HTTP_JSON = "http_json", _("HTTP JSON API")
        SQL = "sql", _("SQL database")

    class WhenBusy(models.TextChoices):
        QUEUE = "queue", _("Queue the import until a slot frees")
        REJECT = "reject", _("Reject the import")

    name = models.CharField(
        _("name"),
        max_length=200,
        unique=True,
        help_text=_("A unique name operators recognise."),
    )
    kind = models.CharField(
        _("kind"),
        max_length=32,
        choices=Kind.choices,
        help_text=_("The kind of source this connector reads."),
    )
    config = models.JSONField(
        _("configuration"),
        default=dict,
        blank=True,
        help_text=_(
            "Settings shared by every project of this connector, such as a "
            "base URL, credentials or a delimiter."
        ),
    )
    max_concurrent_imports = models.PositiveIntegerField(
        _("slots"),
        default=1,
        validators=[MinValueValidator(1)],
        help_text=_("How many imports may read from this source at once."),
    )
    when_busy = models.CharField(
        _("when all slots are taken"),
        max_length=16,
        choices=WhenBusy.choices,
        default=WhenBusy.QUEUE,
        help_text=_("Queue further imports until a slot frees, or reject them."),
    )
    is_enabled = models.BooleanField(
        _("enabled"),
        default=True,
        help_text=_("A disabled connector accepts no new imports."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("connector")
        verbose_name_plural = _("connectors")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(max_concurrent_imports__gte=1),
                name="connector_at_least_one_slot",
            ),
        ]

    def __str__(self) -> str:
        return self.name
