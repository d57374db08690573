"""Import runs: a run's status, attempts, counts and fence."""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from connectors.messages import message_render
from imports.actors import actor_label
from imports.models.projects import Project
from imports.querysets import ImportRunQuerySet


class RunStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    WAITING = "waiting", _("Waiting for a slot")
    RUNNING = "running", _("Running")
    RETRYING = "retrying", _("Retrying")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class ProgressUnit(models.TextChoices):
    ROWS = "rows", _("rows")
    BYTES = "bytes", _("bytes")


# The status groups, defined once: the querysets, the transitions, the admin
# and the partial unique index read these.
ACTIVE_RUN_STATUSES = (
    RunStatus.QUEUED,
    RunStatus.WAITING,
    RunStatus.RUNNING,
    RunStatus.RETRYING,
)
# A worker may start an attempt of a run in one of these.
STARTABLE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.WAITING, RunStatus.RETRYING)
# Runs that hold one of their connector's slots in the database's eyes.
SLOT_HOLDING_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)
FINAL_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
# An operator may retry a run that ended in one of these.
RETRYABLE_RUN_STATUSES = (RunStatus.FAILED, RunStatus.CANCELLED)

# What a run counts, by kind; each is the field ``rows_<kind>``.
RUN_COUNT_KINDS = (
    "read",
    "inserted",
    "updated",
    "unchanged",
    "deleted",
    "rejected",
    "duplicates",
)
RUN_COUNT_FIELDS = tuple(f"rows_{kind}" for kind in RUN_COUNT_KINDS)


class ImportRun(models.Model):
    Status = RunStatus

    class Trigger(models.TextChoices):
        ADMIN = "admin", _("Admin")
        COMMAND = "command", _("Management command")
        SCHEDULE = "schedule", _("Schedule")
        API = "api", _("HTTP API")
        # Not the RETRYING status (the app's own backoff): an operator's
        # retry, a run of its own.
        RETRY = "retry", pgettext_lazy("run trigger", "Retry")
        CODE = "code", _("Code")

    ACTIVE_STATUSES = ACTIVE_RUN_STATUSES
    STARTABLE_STATUSES = STARTABLE_RUN_STATUSES
    SLOT_HOLDING_STATUSES = SLOT_HOLDING_RUN_STATUSES
    FINAL_STATUSES = FINAL_RUN_STATUSES
    RETRYABLE_STATUSES = RETRYABLE_RUN_STATUSES

    project = models.ForeignKey(
        Project,
        on_delete=models.CASCADE,
        related_name="runs",
        verbose_name=_("project"),
    )
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=Status.choices,
        default=Status.QUEUED,
        help_text=_("Where the run is in its life."),
    )
    trigger = models.CharField(
        _("trigger"),
        max_length=16,
        choices=Trigger.choices,
        help_text=_("What started the run."),
    )
    requested_by = models.CharField(
        _("requested by"),
        max_length=150,
        blank=True,
        help_text=_("The user, command or schedule that asked for the run."),
    )
    attempt = models.PositiveIntegerField(
        _("attempt"),
        default=1,
        help_text=_("Which attempt this is; transient failures add one."),
    )
    retry_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="retries",
        verbose_name=_("retry of"),
        help_text=_("The run an operator retried with this one."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        _("last heartbeat"),
        null=True,
        blank=True,
        help_text=_("When the worker last said the run is alive."),
    )
    dispatched_at = models.DateTimeField(
        _("dispatched"),
        null=True,
        blank=True,
        help_text=_("When the run's task was last sent to the broker."),
    )
    next_attempt_at = models.DateTimeField(
        _("next attempt"),
        null=True,
        blank=True,
        help_text=_("When a retrying run's next attempt is due."),
    )
    extracted_at = models.DateTimeField(
        _("extracted"),
        null=True,
        blank=True,
        help_text=_(
            "When the current attempt finished staging the source; a retry "
            "of a failed load starts from the staged data."
        ),
    )
    rows_read = models.BigIntegerField(_("rows read"), default=0)
    rows_inserted = models.BigIntegerField(_("rows inserted"), default=0)
    rows_updated = models.BigIntegerField(_("rows updated"), default=0)
    rows_unchanged = models.BigIntegerField(_("rows unchanged"), default=0)
    rows_deleted = models.BigIntegerField(_("rows deleted"), default=0)
    rows_rejected = models.BigIntegerField(_("rows rejected"), default=0)
    rows_duplicates = models.BigIntegerField(
        _("duplicate rows"),
        default=0,
        help_text=_("Rows whose key repeated an earlier row's; the last one wins."),
    )
    progress_total = models.BigIntegerField(
        _("progress total"),
        null=True,
        blank=True,
        help_text=_(
            "How much the source holds, when it can tell (a file's size, an "
            "SQL query's row estimate, an API's total); in progress units."
        ),
    )
    progress_done = models.BigIntegerField(
        _("progress done"),
        null=True,
        blank=True,
        help_text=_("How much of the total was read so far."),
    )
    progress_unit = models.CharField(
        _("progress unit"),
        max_length=8,
        blank=True,
        choices=ProgressUnit.choices,
        help_text=_("What the progress total counts."),
    )
    deletions_confirmed = models.BooleanField(
        _("deletions confirmed"),
        default=False,
        help_text=_(
            "An operator allowed this run to delete more than the project's "
            "deletion limit."
        ),
    )
    full_refresh = models.BooleanField(
        _("full refresh"),
        default=False,
        help_text=_(
            "An incremental project reads its whole source again and starts "
            "its cursor anew."
        ),
    )
    cursor_before = models.JSONField(
        _("cursor before"),
        null=True,
        blank=True,
        help_text=_("The incremental cursor this run read from."),
    )
    cursor_after = models.JSONField(
        _("cursor after"),
        null=True,
        blank=True,
        help_text=_("The cursor this run committed with its data."),
    )
    checkpoint = models.JSONField(
        _("checkpoint"),
        null=True,
        blank=True,
        help_text=_(
            "Where the extraction got to: the rows staged and the source's "
            "position after them, so that a retry goes on from there."
        ),
    )
    error_class = models.CharField(
        _("error class"),
        max_length=200,
        blank=True,
        help_text=_("The kind of error that ended the run."),
    )
    error_message = models.TextField(
        _("error message"),
        blank=True,
        help_text=_("What went wrong, in words an operator can act on."),
    )
    error_message_id = models.TextField(
        _("error message id"),
        blank=True,
        help_text=_("The error's English source text, translated when shown."),
    )
    error_message_params = models.JSONField(
        _("error message parameters"), default=dict, blank=True
    )
    fencing_token = models.BigIntegerField(
        _("fencing token"),
        null=True,
        blank=True,
        help_text=_(
            "Issued with the project lock; the load commits only while it is "
            "the newest for the project."
        ),
    )
    lock_token = models.CharField(
        _("lock token"),
        max_length=64,
        blank=True,
        help_text=_("The run's identity as the owner of the project lock."),
    )
    celery_task_id = models.CharField(
        _("Celery task id"),
        max_length=255,
        blank=True,
        db_index=True,
    )

    objects = ImportRunQuerySet.as_manager()

    class Meta:
        verbose_name = _("import run")
        verbose_name_plural = _("import runs")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("retry_importrun", _("Can retry an import run")),
            ("cancel_importrun", _("Can cancel an import run")),
        ]
        constraints = [
            # The database half of "one import per project": whatever Redis
            # says, a second active run of a project cannot be written.
            models.UniqueConstraint(
                fields=["project"],
                condition=Q(status__in=ACTIVE_RUN_STATUSES),
                name="one_active_run_per_project",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="run_status_created"),
            models.Index(fields=["project", "-created_at"], name="run_project_created"),
            models.Index(fields=["project", "fencing_token"], name="run_project_fence"),
        ]

    def __str__(self) -> str:
        # Read by people (the breadcrumbs, the admin's history): the
        # project's name and the status in the reader's language.
        return f"#{self.pk} {self.project} ({self.get_status_display()})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def error_text(self) -> str:
        """The error message in the reader's language."""
        return message_render(
            self.error_message, self.error_message_id, self.error_message_params
        )

    # The admin's label when it shows the property as a field.
    error_text.fget.short_description = _("error message")

    @property
    def requested_by_display(self) -> str:
        """Who asked: a user's name, or the product's actor translated."""
        return actor_label(self.requested_by)

    requested_by_display.fget.short_description = _("requested by")

    @property
    def is_retryable(self) -> bool:
        return self.status in self.RETRYABLE_STATUSES

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at
