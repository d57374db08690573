"""Projects as an operations view: their last runs, the active one, the next tick.

Read-only and batched, for a page of projects at once: the last runs of all
of them in one query (a window function, ``ROW_NUMBER()`` per project,
which PostgreSQL and SQLite both have), their schedules in another.
"""

import datetime
from dataclasses import dataclass, field

from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from imports.models import ImportRun
from imports.services.schedules import project_schedule_name

#: How many runs the grid of a project shows.
GRID_RUNS = 30

# The fields a grid cell needs; nothing else of a run is read.
CELL_FIELDS = (
    "id",
    "project_id",
    "status",
    "created_at",
    "started_at",
    "finished_at",
)


@dataclass
class ProjectOps:
    """What the operations view shows of one project."""

    runs: list[ImportRun] = field(default_factory=list)  # newest first
    schedule: PeriodicTask | None = None
    next_run_at: datetime.datetime | None = None

    @property
    def last_run(self) -> ImportRun | None:
        return self.runs[0] if self.runs else None

    @property
    def active_run(self) -> ImportRun | None:
        # Nothing can start while a run is active, so an active run is
        # always among the newest.
        return next((run for run in self.runs if run.is_active), None)


def projects_last_runs(
    *, project_ids: list[int], limit: int = GRID_RUNS
) -> dict[int, list[ImportRun]]:
    """The last ``limit`` runs of each project, newest first: one query."""
    if not project_ids:
        return {}
    ranked = (
        ImportRun.objects.filter(project_id__in=project_ids)
        .annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("project_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(position__lte=limit)
        .only(*CELL_FIELDS)
        .order_by("project_id", "-created_at", "-id")
    )
    found: dict[int, list[ImportRun]] = {pk: [] for pk in project_ids}
    for run in ranked:
        found[run.project_id].append(run)
    return found


def schedule_next_run(
    task: PeriodicTask | None, *, now: datetime.datetime | None = None
) -> datetime.datetime | None:
    """When an enabled periodic task fires next, as beat computes it."""
    if task is None or not task.enabled:
        return None
    now = now or timezone.now()
    if task.expires and task.expires <= now:
        return None
    last = task.last_run_at or now
    try:
        remaining = task.schedule.remaining_estimate(last)
    except Exception:  # a schedule beat itself could not compute
        return None
    # Celery's schedules count from now to the next tick after ``last``; an
    # overdue interval is due now.
    return now + max(remaining, datetime.timedelta(0))


def projects_ops(*, project_ids: list[int], limit: int = GRID_RUNS) -> dict:
    """``ProjectOps`` of each project: two queries for the whole page."""
    runs = projects_last_runs(project_ids=project_ids, limit=limit)
    names = {project_schedule_name(pk): pk for pk in project_ids}
    schedules = (
        {
            names[task.name]: task
            for task in PeriodicTask.objects.select_related(
                "crontab", "interval", "solar", "clocked"
            ).filter(name__in=list(names))
        }
        if project_ids
        else {}
    )
    now = timezone.now()
    return {
        pk: ProjectOps(
            runs=runs.get(pk, []),
            schedule=schedules.get(pk),
            next_run_at=schedule_next_run(schedules.get(pk), now=now),
        )
        for pk in project_ids
    }
