"""Celery tasks: thin wrappers that load an id and call one service.

Both import tasks route a direct ``.delay()``/``.apply_async()`` through the
guard, so code that calls them cannot dispatch a second import of a busy
project: the call raises ``ProjectBusy`` before anything reaches the broker.
The guard's own messages are sent with ``ImportRunExecuteTask.publish``,
which only ``imports.services.dispatch`` calls.

This module imports no service at load time (each task imports its service
in its body), so the services may import the tasks and no cycle forms.

The task names are part of the broker's messages: renaming one strands the
messages already queued (``tests/imports/test_tasks.py`` pins them).
"""

from celery import Task, shared_task
from celery.exceptions import Retry
from django.conf import settings

from imports.exceptions import ImportRunFailed, ImportRunRetrying, ProjectBusy
from imports.models import ImportRun, Project


def _call_kwargs(args, kwargs, name: str):
    if kwargs and name in kwargs:
        return kwargs[name]
    if args:
        return args[0]
    raise TypeError(f"missing argument {name!r}")


class ImportRunExecuteTask(Task):
    """Publishes only the guard's own messages; other calls ask the guard."""

    def publish(
        self,
        *,
        run_id: int,
        task_id: str,
        countdown: float | None = None,
        producer=None,
    ):
        """Send the message of a run the guard accepted (dispatch's only);
        ``producer`` shares one broker connection among many messages."""
        return super().apply_async(
            kwargs={"run_id": run_id},
            task_id=task_id,
            countdown=countdown,
            queue=settings.IMPORTHUB_TASK_QUEUE,
            producer=producer,
        )

    def apply_async(self, args=None, kwargs=None, task_id=None, **options):
        from imports.services.guard import import_run_request

        # Someone called the task directly for a run: that is a request to
        # import the run's project, and it goes through the guard.
        run_id = _call_kwargs(args, kwargs, "run_id")
        run = ImportRun.objects.select_related("project__connector").get(pk=run_id)
        new_run = import_run_request(
            project=run.project,
            requested_by="code",
            trigger=ImportRun.Trigger.CODE,
        )
        return self.AsyncResult(new_run.celery_task_id)


class ProjectImportTask(Task):
    """``project_import_task.delay(project_id=...)`` is the guard, called."""

    def apply_async(self, args=None, kwargs=None, task_id=None, **options):
        from imports.services.guard import import_run_request

        project_id = _call_kwargs(args, kwargs, "project_id")
        project = Project.objects.select_related("connector").get(pk=project_id)
        run = import_run_request(
            project=project,
            requested_by=(kwargs or {}).get("requested_by") or "code",
            trigger=ImportRun.Trigger.CODE,
        )
        return self.AsyncResult(run.celery_task_id)


@shared_task(
    base=ImportRunExecuteTask,
    name="imports.import_run_execute",
    bind=True,
    acks_late=True,
    soft_time_limit=settings.IMPORTHUB_MAX_RUNTIME_SECONDS,
    time_limit=settings.IMPORTHUB_MAX_RUNTIME_SECONDS + 60,
    ignore_result=False,
    # A failed run ends its task in FAILURE: an expected outcome, logged by
    # the worker on one line (the run's own log has the details). Celery
    # never retries it by itself: the run's retries are the app's.
    throws=(ImportRunFailed,),
)
def import_run_execute_task(self, run_id: int) -> str | None:
    from imports.services.execution import import_run_execute

    run = import_run_execute(run_id=run_id)
    return task_outcome(run)


def task_outcome(run: ImportRun | None) -> str | None:
    """The execute task's end in Celery's terms, from the run as it is now.

    Failed: FAILURE with the run's error. Retrying: RETRY (the next attempt
    was already published as a message of its own, with its countdown, by
    the run's transition; ``Retry`` only records the state, as
    ``Task.retry`` does after publishing). Anything else: SUCCESS with the
    run's status.
    """
    if run is None:
        return None
    if run.status == ImportRun.Status.FAILED:
        raise ImportRunFailed.for_run(run)
    if run.status == ImportRun.Status.RETRYING:
        raise Retry(exc=ImportRunRetrying.for_run(run), when=run.next_attempt_at)
    return run.status


@shared_task(base=ProjectImportTask, name="imports.project_import")
def project_import_task(project_id: int, requested_by: str = "") -> dict:
    """Reached only by a message sent by name (``send_task``) from elsewhere.

    Runs the guard on the worker. A busy project is an expected outcome, so
    it is returned (and logged by the guard), not raised.
    """
    from imports.services.guard import import_run_request

    project = Project.objects.select_related("connector").get(pk=project_id)
    try:
        run = import_run_request(
            project=project,
            requested_by=requested_by or "remote",
            trigger=ImportRun.Trigger.CODE,
        )
    except ProjectBusy as exc:
        return {"accepted": False, "detail": str(exc)}
    return {"accepted": True, "run_id": run.pk}


@shared_task(name="imports.runs_sweep", ignore_result=True)
def runs_sweep_task() -> dict:
    """Reap lost workers, dispatch due retries, start waiting runs."""
    from imports.services.sweep import runs_sweep

    return runs_sweep()


class ProjectImportScheduledTask(Task):
    """A beat tick runs the guard in the beat process itself.

    Accepted: the run's execute task is the only message published.
    Refused (busy or otherwise): a project event is recorded and nothing at
    all is published. So a second beat process running the same schedule
    adds no run and no broker message: its guard call is refused first.
    """

    def apply_async(self, args=None, kwargs=None, task_id=None, **options):
        from imports.services.schedules import project_import_scheduled

        project_id = _call_kwargs(args, kwargs, "project_id")
        run = project_import_scheduled(project_id=project_id)
        if run is not None:
            return self.AsyncResult(run.celery_task_id)
        # Skipped: nothing was sent; an id that names no message.
        return self.AsyncResult(task_id or f"skipped-{project_id}")


@shared_task(
    base=ProjectImportScheduledTask,
    name="imports.project_import_scheduled",
    ignore_result=True,
)
def project_import_scheduled_task(project_id: int) -> int | None:
    """Reached only by a message sent by name from elsewhere: the same tick,
    guarded on the worker."""
    from imports.services.schedules import project_import_scheduled

    run = project_import_scheduled(project_id=project_id)
    return run.pk if run is not None else None


@shared_task(name="imports.notification_deliver", ignore_result=True, acks_late=True)
def notification_deliver_task(notification_id: int) -> str | None:
    """Deliver one outbox row (sent after the commit that wrote it)."""
    from imports.services.delivery import notification_deliver

    return notification_deliver(notification_id=notification_id)


@shared_task(name="imports.notifications_deliver_due", ignore_result=True)
def notifications_deliver_due_task() -> int:
    """Beat's pass over the outbox: whatever is pending and due."""
    from imports.services.delivery import notifications_deliver_due

    return notifications_deliver_due()
