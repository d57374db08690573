"""The connector model: a shared data source with a number of import slots.

A connector's ``kind`` is free text in the database; the registry says which
kinds exist (see ``connectors.registry``).
"""

from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from .validation import connector_config_validate


class Connector(models.Model):
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

    def clean(self) -> None:
        # One validation for every way in (the admin form, full_clean() in
        # services and commands): the kind against the registry (built-ins,
        # entry points and the IMPORTHUB_CONNECTORS setting, not a list
        # fixed in the schema), then the config by the kind's class. A blank
        # kind or a missing config is left to the fields' own checks.
        if self.kind and self.config is not None:
            connector_config_validate(kind=self.kind, config=self.config)
