"""The log of a run: the lines its attempts logged, kept with the run."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from imports.models.runs import ImportRun


class ImportRunLogLine(models.Model):
    """One log record (INFO and above) made while a run was being worked on.

    Written by ``imports.run_log.RunLogHandler``, at most
    ``IMPORTHUB_RUN_LOG_LINES`` per run, secrets masked.
    """

    run = models.ForeignKey(
        ImportRun,
        on_delete=models.CASCADE,
        related_name="log_lines",
        verbose_name=_("run"),
    )
    at = models.DateTimeField(_("time"), default=timezone.now)
    attempt = models.PositiveIntegerField(_("attempt"), null=True, blank=True)
    level = models.PositiveSmallIntegerField(_("level"))
    logger = models.CharField(_("logger"), max_length=200)
    message = models.TextField(_("message"))
    traceback = models.TextField(
        _("traceback"),
        blank=True,
        help_text=_("The traceback of an unexpected error, when the line has one."),
    )

    class Meta:
        verbose_name = _("run log line")
        verbose_name_plural = _("run log lines")
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["run", "at"], name="run_log_run_at")]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.message[:60]}"
