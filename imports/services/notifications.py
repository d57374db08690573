"""Being told: what a run's end owes the notification channels (the outbox).

``run_end_record`` is called by the run's transitions inside the transaction
that writes a final status, so the outbox rows (and an auto-pause) commit
with that status or not at all: a notification is never lost, and never
sent for an end that rolled back. The rows are delivered after the commit
(``delivery.py``), and by beat until delivered or given up.

A run that fails counts the project's failed runs since its last success;
a channel is told of the failure once that streak reaches its threshold,
and of the recovery (the first success after it) if it was told of the
failures. A cancelled run neither breaks nor extends a streak.
"""

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from imports.models import (
    ImportRun,
    Notification,
    NotificationChannel,
    Project,
    ProjectEvent,
)
from imports.services.pause import project_pause_auto

logger = logging.getLogger(__name__)

Status = ImportRun.Status


def project_channels(project: Project):
    """The enabled channels that hear of ``project``: its own, its
    connector's and those of every project."""
    return NotificationChannel.objects.filter(is_enabled=True).filter(
        Q(project_id=project.pk)
        | Q(connector_id=project.connector_id)
        | Q(project__isnull=True, connector__isnull=True)
    )


def failures_in_a_row(
    *, project_id: int, ignore: int | None = None, since: datetime | None = None
) -> int:
    """How many runs of the project failed since its last success (other
    than run ``ignore``), or since ``since`` if that is later."""
    runs = ImportRun.objects.filter(project_id=project_id)
    last_success = (
        runs.filter(status=Status.SUCCEEDED, finished_at__isnull=False)
        .exclude(pk=ignore)
        .order_by("-finished_at")
        .values_list("finished_at", flat=True)
        .first()
    )
    starts = [at for at in (last_success, since) if at is not None]
    failed = runs.filter(status=Status.FAILED)
    if starts:
        failed = failed.filter(finished_at__gt=max(starts))
    return failed.count()


def run_end_record(*, run: ImportRun, status: str, changes: dict[str, Any]) -> None:
    """Write the outbox rows (and pause the project) for a run that ended.

    Must be called inside the transaction that writes the run's final
    status; ``changes`` are the fields that transaction writes.
    """
    if status not in (Status.FAILED, Status.SUCCEEDED):
        return
    project = run.project
    channels = list(project_channels(project))
    pause_after = project.auto_pause_after if status == Status.FAILED else 0
    if not channels and not pause_after:
        return
    streak = failures_in_a_row(project_id=project.pk, ignore=run.pk)
    paused = False
    if pause_after:
        resumed = (
            ProjectEvent.objects.filter(
                project_id=project.pk, kind=ProjectEvent.Kind.RESUMED
            )
            .values_list("at", flat=True)
            .first()
        )
        since_resume = (
            failures_in_a_row(project_id=project.pk, since=resumed)
            if resumed
            else streak
        )
        if since_resume >= pause_after:
            paused = project_pause_auto(
                project=project,
                run=run,
                failures=since_resume,
                error=changes.get("error_message", run.error_message),
            )
    rows = []
    for channel in channels:
        if status == Status.FAILED and streak >= channel.failure_threshold:
            event = Notification.Event.FAILED
        elif (
            status == Status.SUCCEEDED
            and channel.notify_recovery
            and streak >= channel.failure_threshold
        ):
            event = Notification.Event.RECOVERED
        else:
            continue
        rows.append(
            Notification(
                channel=channel,
                run=run,
                event=event,
                payload=run_payload(
                    run, status=status, changes=changes, failures=streak, paused=paused
                ),
            )
        )
    if rows:
        Notification.objects.bulk_create(rows)
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: notifications_dispatch(ids))


def run_end_guarded(*, run: ImportRun, status: str, changes: dict[str, Any]) -> None:
    """``run_end_record`` in a savepoint: a fault of the notifications is
    logged and never keeps a run from ending."""
    if status not in (Status.FAILED, Status.SUCCEEDED):
        return  # a cancel: nobody is told, no savepoint
    try:
        with transaction.atomic():
            run_end_record(run=run, status=status, changes=changes)
    except Exception:
        logger.exception("notifications of run %s not recorded", run.pk)


def admin_url(name: str, *args) -> str:
    """An admin page's address, absolute when ``IMPORTHUB_BASE_URL`` is set."""
    return settings.IMPORTHUB_BASE_URL.rstrip("/") + reverse(name, args=args)


def run_payload(
    run: ImportRun,
    *,
    status: str,
    changes: dict[str, Any],
    failures: int,
    paused: bool = False,
) -> dict[str, Any]:
    """The facts of a notification, language-free (rendered when sent)."""
    project = run.project
    finished = changes.get("finished_at") or run.finished_at or timezone.now()
    return {
        "project": {
            "id": project.pk,
            "name": project.name,
            "url": admin_url("admin:imports_project_change", project.pk),
            "paused": paused,
        },
        "connector": {"id": project.connector_id, "name": project.connector.name},
        "run": {
            "id": run.pk,
            "status": status,
            "trigger": run.trigger,
            "attempt": run.attempt,
            "error_class": changes.get("error_class", run.error_class),
            "error_message": changes.get("error_message", run.error_message),
            # The message's id and parameters: the text is rendered again in
            # the channel's language when the notification is sent.
            "error_message_id": changes.get("error_message_id", run.error_message_id),
            "error_message_params": changes.get(
                "error_message_params", run.error_message_params
            ),
            "finished_at": finished.isoformat(),
            "url": admin_url("admin:imports_importrun_change", run.pk),
        },
        "consecutive_failures": failures,
    }


def notifications_dispatch(ids: list[int]) -> None:
    """Publish a delivery task for each outbox row (after the commit).

    A refused publish loses nothing: the row stays pending and beat's
    ``notifications_deliver_due`` delivers it.
    """
    from imports.tasks import notification_deliver_task

    for notification_id in ids:
        try:
            notification_deliver_task.apply_async(
                kwargs={"notification_id": notification_id},
                queue=settings.IMPORTHUB_TASK_QUEUE,
            )
        except Exception:
            logger.warning(
                "delivery of notification %s not dispatched; beat will",
                notification_id,
                exc_info=True,
            )
