"""Per-project import schedules (django-celery-beat) and their ticks."""

import json
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from connectors.messages import message_fields
from imports import actors
from imports.exceptions import (
    ConnectorBusy,
    ImportRequestError,
    ProjectBusy,
    ProjectPaused,
)
from imports.models import ImportRun, Project, ProjectEvent
from imports.services.guard import RunRequest, import_run_request, import_runs_request

logger = logging.getLogger(__name__)

SCHEDULED_TASK_NAME = "imports.project_import_scheduled"
SCHEDULE_ACTOR = actors.SCHEDULE


def project_schedule_name(project_id: int) -> str:
    return f"import project {project_id}"


def project_schedule_get(*, project: Project) -> PeriodicTask | None:
    return (
        PeriodicTask.objects.select_related("crontab", "interval")
        .filter(name=project_schedule_name(project.pk))
        .first()
    )


def crontab_parse(expression: str) -> dict:
    """``"*/5 * * * *"`` as CrontabSchedule fields; a ValidationError if not
    five fields."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValidationError(
            _(
                "A crontab has five fields (minute hour day-of-month month "
                "day-of-week), such as “*/5 * * * *”; got “%(value)s”."
            )
            % {"value": expression}
        )
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    return {
        "minute": minute,
        "hour": hour,
        "day_of_month": day_of_month,
        "month_of_year": month_of_year,
        "day_of_week": day_of_week,
    }


@transaction.atomic
def project_schedule_set(
    *,
    project: Project,
    crontab: str | None = None,
    every_seconds: int | None = None,
    enabled: bool = True,
) -> PeriodicTask:
    """Schedule imports of a project by crontab or by interval.

    One ``PeriodicTask`` per project, named ``import project <id>``, editable
    in the admin (Periodic tasks). Setting a schedule replaces the previous
    one. Each tick goes through the guard in the beat process.

    Raises:
        ValidationError: no schedule or both given, a bad crontab or interval.
    """
    if (crontab is None) == (every_seconds is None):
        raise ValidationError(_("Give either a crontab or an interval."))
    schedule_fields: dict = {"crontab": None, "interval": None}
    if crontab is not None:
        fields = crontab_parse(crontab)
        candidate = CrontabSchedule(**fields, timezone=settings.TIME_ZONE)
        candidate.full_clean(exclude=["id"], validate_unique=False)
        # Validated by django-celery-beat's field validators; reuse a row.
        schedule_fields["crontab"] = CrontabSchedule.objects.filter(
            **fields, timezone=settings.TIME_ZONE
        ).first() or CrontabSchedule.objects.create(
            **fields, timezone=settings.TIME_ZONE
        )
    else:
        if every_seconds < 1:
            raise ValidationError(_("The interval must be at least one second."))
        schedule_fields["interval"], _created = IntervalSchedule.objects.get_or_create(
            every=every_seconds, period=IntervalSchedule.SECONDS
        )
    task, _created = PeriodicTask.objects.update_or_create(
        name=project_schedule_name(project.pk),
        defaults={
            "task": SCHEDULED_TASK_NAME,
            "kwargs": json.dumps({"project_id": project.pk}),
            "enabled": enabled,
            "description": _("Imports of project “%(name)s”.") % {"name": project},
            **schedule_fields,
        },
    )
    task.full_clean()
    return task


@transaction.atomic
def project_schedule_clear(*, project: Project) -> bool:
    """Remove a project's schedule; True if it had one."""
    deleted, _details = PeriodicTask.objects.filter(
        name=project_schedule_name(project.pk)
    ).delete()
    return bool(deleted)


def project_import_scheduled(*, project_id: int) -> ImportRun | None:
    """One scheduled tick for a project: request an import through the guard.

    A busy project is an expected outcome: recorded as a "skipped: busy"
    project event, never raised, retried or logged as an error. Any other
    refusal is recorded as "skipped: refused" with a warning. Returns the
    new run, or None when the tick was skipped.
    """
    try:
        project = Project.objects.select_related("connector").get(pk=project_id)
    except Project.DoesNotExist:
        logger.warning(
            "scheduled import of unknown project %s ignored",
            project_id,
            extra={"project_id": project_id},
        )
        return None
    try:
        return import_run_request(
            project=project,
            requested_by=SCHEDULE_ACTOR,
            trigger=ImportRun.Trigger.SCHEDULE,
        )
    except ImportRequestError as exc:
        _skip_event(project, exc).save()
    return None


def projects_import_scheduled(*, project_ids: list[int]) -> list[ImportRun]:
    """One scheduled tick for each of many projects (a beat batch): one guard
    call for all; the skipped ones recorded as ``project_import_scheduled``
    records them, with one statement. Returns the new runs."""
    found = Project.objects.select_related("connector").in_bulk(project_ids)
    for project_id in project_ids:
        if project_id not in found:
            logger.warning(
                "scheduled import of unknown project %s ignored",
                project_id,
                extra={"project_id": project_id},
            )
    outcomes = import_runs_request(
        requests=[RunRequest(found[pid]) for pid in project_ids if pid in found],
        requested_by=SCHEDULE_ACTOR,
        trigger=ImportRun.Trigger.SCHEDULE,
    )
    skipped = [
        _skip_event(outcome.project, outcome.error)
        for outcome in outcomes
        if outcome.error is not None
    ]
    if skipped:
        ProjectEvent.objects.bulk_create(skipped)
    busy = sum(1 for event in skipped if event.kind == ProjectEvent.Kind.SKIPPED_BUSY)
    if busy:
        logger.info("%s scheduled imports skipped: project busy", busy)
    return [outcome.run for outcome in outcomes if outcome.run is not None]


def _skip_event(project: Project, exc: ImportRequestError) -> ProjectEvent:
    """The project event that records a skipped tick (not saved)."""
    if isinstance(exc, ProjectBusy | ConnectorBusy):
        return ProjectEvent(
            project=project,
            kind=ProjectEvent.Kind.SKIPPED_BUSY,
            actor=SCHEDULE_ACTOR,
            **message_fields(exc),
            data={
                "code": exc.default_code,
                "active_run": getattr(exc, "active_run_id", None),
            },
        )
    if isinstance(exc, ProjectPaused):
        # An operator paused it (or the auto-pause did): expected, no warning.
        return ProjectEvent(
            project=project,
            kind=ProjectEvent.Kind.SKIPPED_PAUSED,
            actor=SCHEDULE_ACTOR,
            **message_fields(exc),
            data={"code": exc.default_code},
        )
    logger.warning(
        "scheduled import of project %s refused: %s",
        project.pk,
        exc,
        extra={"project_id": project.pk},
    )
    return ProjectEvent(
        project=project,
        kind=ProjectEvent.Kind.SKIPPED_INVALID,
        actor=SCHEDULE_ACTOR,
        **message_fields(exc),
        data={"code": exc.default_code},
    )
