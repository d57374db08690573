"""Read-only queries behind the operators' admin: dashboard, slots, errors."""

import datetime
from dataclasses import dataclass

from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from connectors.models import Connector
from imports.locks import connector_slots, project_lock_owner
from imports.models import ImportRun, ImportRunEvent
from locking import LockingUnavailable

# The rolling windows of "runs created in the last …": the dashboard's cards
# count one and link to the runs list filtered by the same one, so that the
# card's number is the list's length.
RUN_WINDOWS: dict[str, datetime.timedelta] = {
    "1h": datetime.timedelta(hours=1),
    "24h": datetime.timedelta(hours=24),
    "7d": datetime.timedelta(days=7),
}
DASHBOARD_WINDOW = "24h"


def run_window_start(window: str, *, now: datetime.datetime) -> datetime.datetime:
    """The start of the rolling window named ``window`` (a key of
    ``RUN_WINDOWS``) that ends at ``now``."""
    return now - RUN_WINDOWS[window]


def run_status_counts(*, since: datetime.datetime) -> dict[str, int]:
    """How many runs created since ``since`` are in each status (all listed)."""
    counts = dict(
        ImportRun.objects.filter(created_at__gte=since)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in ImportRun.Status.values}


@dataclass(frozen=True)
class DayCount:
    day: datetime.date
    succeeded: int
    failed: int


def runs_per_day(*, days: int = 30, now: datetime.datetime | None = None) -> list:
    """Succeeded and failed runs per day (by finish, in the current time zone).

    Returns one ``DayCount`` for each of the last ``days`` days, oldest first,
    days without runs included.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = today - datetime.timedelta(days=days - 1)
    start = timezone.make_aware(
        datetime.datetime.combine(first, datetime.time.min),
        timezone.get_current_timezone(),
    )
    rows = (
        ImportRun.objects.filter(
            finished_at__gte=start,
            status__in=(ImportRun.Status.SUCCEEDED, ImportRun.Status.FAILED),
        )
        .annotate(day=TruncDate("finished_at"))
        .values("day")
        .annotate(
            succeeded=Count("id", filter=Q(status=ImportRun.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status=ImportRun.Status.FAILED)),
        )
    )
    by_day = {row["day"]: row for row in rows}
    result = []
    for offset in range(days):
        day = first + datetime.timedelta(days=offset)
        row = by_day.get(day, {})
        result.append(
            DayCount(
                day=day,
                succeeded=row.get("succeeded", 0),
                failed=row.get("failed", 0),
            )
        )
    return result


def runs_in_progress():
    """Active runs, oldest first, with their projects and connectors."""
    return (
        ImportRun.objects.active()
        .select_related("project", "project__connector")
        .order_by("created_at", "id")
    )


def connector_slots_in_use(connector: Connector) -> int | None:
    """Live slot leases of a connector, or None when Redis cannot tell."""
    try:
        return connector_slots(connector).count()
    except LockingUnavailable:
        return None


def project_lock_holder(*, project_id: int) -> tuple[str | None, bool]:
    """Who holds a project's Redis lock (its token, or None when free), and
    whether Redis could tell: ``(None, False)`` when it cannot be reached."""
    try:
        return project_lock_owner(project_id), True
    except LockingUnavailable:
        return None, False


@dataclass(frozen=True)
class LockHolder:
    """Who holds a project's lock, in an operator's terms: the run whose
    token it is and the worker (host, pid) that started its attempt."""

    token: str
    run: ImportRun | None
    host: str | None = None
    pid: int | None = None


def lock_holder_describe(*, project_id: int, token: str) -> LockHolder:
    """The run that owns ``token`` on the project, and its worker, if known."""
    run = (
        ImportRun.objects.filter(project_id=project_id, lock_token=token)
        .order_by("-id")
        .first()
    )
    if run is None:
        return LockHolder(token=token, run=None)
    started = (
        run.events.filter(kind=ImportRunEvent.Kind.STARTED)
        .order_by("-at", "-id")
        .first()
    )
    worker = (started.data or {}).get("worker") or {} if started else {}
    return LockHolder(
        token=token, run=run, host=worker.get("host"), pid=worker.get("pid")
    )


def connector_waiting_runs(connector: Connector):
    """Runs of the connector's projects waiting for a slot, first come first."""
    return (
        ImportRun.objects.filter(
            project__connector=connector, status=ImportRun.Status.WAITING
        )
        .select_related("project")
        .order_by("created_at", "id")
    )


@dataclass(frozen=True)
class ConnectorUse:
    connector: Connector
    in_use: int | None
    limit: int
    waiting: int
    active: int


def connector_usage() -> list[ConnectorUse]:
    """Every connector with its slots in use (None: unknown) and its queue."""
    connectors = Connector.objects.annotate(
        waiting=Count(
            "projects__runs",
            filter=Q(projects__runs__status=ImportRun.Status.WAITING),
        ),
        active=Count(
            "projects__runs",
            filter=Q(projects__runs__status__in=ImportRun.ACTIVE_STATUSES),
        ),
    ).order_by("name")
    return [
        ConnectorUse(
            connector=connector,
            in_use=connector_slots_in_use(connector),
            limit=connector.max_concurrent_imports,
            waiting=connector.waiting,
            active=connector.active,
        )
        for connector in connectors
    ]


def slowest_projects(*, since: datetime.datetime, limit: int = 10):
    """Projects by their average duration of succeeded runs since ``since``.

    Each row has ``project_id``, ``project__name``, ``runs``, ``average`` and
    ``longest`` (timedeltas), slowest first.
    """
    duration = ExpressionWrapper(
        F("finished_at") - F("started_at"), output_field=DurationField()
    )
    return list(
        ImportRun.objects.filter(
            status=ImportRun.Status.SUCCEEDED,
            finished_at__gte=since,
            started_at__isnull=False,
        )
        .values("project_id", "project__name")
        .annotate(runs=Count("id"), average=Avg(duration), longest=Max(duration))
        .order_by("-average", "project__name")[:limit]
    )


class ErrorStage:
    BEFORE_START = "before_start"
    EXTRACT = "extract"
    LOAD = "load"


def run_error_stage(run: ImportRun) -> str | None:
    """Where a failed run stopped, from its event log.

    ``before_start`` (never started: dispatch failed, reaped, unlocked while
    queued), ``extract`` (reading the source) or ``load`` (writing the
    records); None for a run without an error.
    """
    if not run.error_class:
        return None
    kinds = set(run.events.values_list("kind", flat=True))
    if ImportRunEvent.Kind.EXTRACTED in kinds:
        return ErrorStage.LOAD
    if ImportRunEvent.Kind.STARTED in kinds:
        return ErrorStage.EXTRACT
    return ErrorStage.BEFORE_START
