"""Projects, import runs, their event log and the records imports land."""

from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


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


class ImportRunQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status__in=ImportRun.ACTIVE_STATUSES)

    def finished(self):
        return self.filter(status__in=ImportRun.FINAL_STATUSES)

    def failed(self):
        return self.filter(status=ImportRun.Status.FAILED)


class ImportRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        WAITING = "waiting", _("Waiting for a slot")
        RUNNING = "running", _("Running")
        RETRYING = "retrying", _("Retrying")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    class Trigger(models.TextChoices):
        ADMIN = "admin", _("Admin")
        COMMAND = "command", _("Management command")
        SCHEDULE = "schedule", _("Schedule")
        API = "api", _("HTTP API")
        RETRY = "retry", _("Retry")
        CODE = "code", _("Code")

    ACTIVE_STATUSES = (
        Status.QUEUED,
        Status.WAITING,
        Status.RUNNING,
        Status.RETRYING,
    )
    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

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
    deletions_confirmed = models.BooleanField(
        _("deletions confirmed"),
        default=False,
        help_text=_(
            "An operator allowed this run to delete more than the project's "
            "deletion limit."
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
                condition=Q(status__in=("queued", "waiting", "running", "retrying")),
                name="one_active_run_per_project",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="run_status_created"),
            models.Index(fields=["project", "-created_at"], name="run_project_created"),
            models.Index(fields=["project", "fencing_token"], name="run_project_fence"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.project_id} {self.status}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def duration(self):
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class Event(models.Model):
    """What the run and project logs share: when, who, what, details."""

    at = models.DateTimeField(_("at"), default=timezone.now)
    actor = models.CharField(
        _("actor"),
        max_length=150,
        blank=True,
        help_text=_("Who or what caused the event."),
    )
    message = models.TextField(_("message"), blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.kind} @ {self.at:%Y-%m-%d %H:%M:%S}"


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
