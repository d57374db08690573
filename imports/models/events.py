"""The run and project event logs."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from connectors.messages import message_render
from imports.actors import actor_label
from imports.models.projects import Project
from imports.models.runs import ImportRun


class Event(models.Model):
    """What the run and project logs share: when, who, what, details."""

    at = models.DateTimeField(_("at"), default=timezone.now)
    actor = models.CharField(
        _("actor"),
        max_length=150,
        blank=True,
        help_text=_("Who or what caused the event."),
    )
    message = models.TextField(
        _("message"),
        blank=True,
        help_text=_(
            "The text as written; shown as it is for an event that has no message id."
        ),
    )
    message_id = models.TextField(
        _("message id"),
        blank=True,
        help_text=_("The message's English source text, translated when shown."),
    )
    message_params = models.JSONField(_("message parameters"), default=dict, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.kind} @ {self.at:%Y-%m-%d %H:%M:%S}"

    @property
    def text(self) -> str:
        """The message in the reader's language."""
        return message_render(self.message, self.message_id, self.message_params)

    @property
    def actor_display(self) -> str:
        """Who caused it: a user's name, or the product's actor translated."""
        return actor_label(self.actor)


class ImportRunEvent(Event):
    """An entry of a run's log: who, when, why."""

    class Kind(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        DISPATCHED = "dispatched", _("Dispatched")
        DISPATCH_FAILED = "dispatch_failed", _("Dispatch failed")
        WAITING = "waiting", _("Waiting for a slot")
        PROMOTED = "promoted", _("Slot taken")
        STARTED = "started", _("Started")
        EXTRACTED = "extracted", _("Extracted")
        LOADED = "loaded", _("Loaded")
        REJECTED_ROWS = "rejected_rows", _("Rows rejected")
        RETRY_SCHEDULED = "retry_scheduled", _("Retry scheduled")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        LOCK_LOST = "lock_lost", _("Lock lost")
        REAPED = "reaped", _("Worker lost")
        REVOKED = "revoked", _("Revoked")
        RESUMED = "resumed", _("Resumed from staged data")
        UNLOCKED = "unlocked", _("Force-unlocked")
        STALE_MESSAGE = "stale_message", _("Stale message ignored")
        SWEEP_FAILED = "sweep_failed", _("The sweep could not handle the run")
        SCHEMA_CHANGED = "schema_changed", _("Table schema changed")
        RECONCILED = "reconciled", _("Reconciled with the destination")
        WARNING = "warning", _("Warning")

    run = models.ForeignKey(
        ImportRun,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("run"),
    )
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)

    class Meta:
        verbose_name = _("run event")
        verbose_name_plural = _("run events")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["run", "at"], name="run_event_run_at")]


class ProjectEvent(Event):
    """Something that happened to a project outside any run's life."""

    class Kind(models.TextChoices):
        SKIPPED_BUSY = "skipped_busy", _("Skipped: busy")
        SKIPPED_INVALID = "skipped_invalid", _("Skipped: refused")
        REJECTED_BUSY = "rejected_busy", _("Rejected: busy")
        UNLOCKED = "unlocked", _("Force-unlocked")
        PAUSED = "paused", _("Paused")
        RESUMED = "resumed", _("Resumed")
        SKIPPED_PAUSED = "skipped_paused", _("Skipped: paused")

    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="events",
        verbose_name=_("project"),
    )
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)

    class Meta:
        verbose_name = _("project event")
        verbose_name_plural = _("project events")
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["project", "-at"], name="project_event_project_at")
        ]
