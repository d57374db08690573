"""Domain errors of imports, each with the message an operator sees."""

from connectors.messages import Message, gettext_noop

# The exact text every entry point shows for a project that is importing.
# Not translated: other systems match on it.
PROJECT_BUSY_MESSAGE = "Проект/источник с id {project_id} уже обновляется"


class ImportRequestError(Exception):
    """Base class of the errors a request to import can end with."""

    status_code = 400
    default_code = "import_error"


class ProjectBusy(ImportRequestError):
    """The project already has an active import; nothing was dispatched."""

    status_code = 409
    default_code = "project_busy"

    def __init__(self, project_id: int, *, active_run_id: int | None = None):
        self.project_id = project_id
        self.active_run_id = active_run_id
        super().__init__(PROJECT_BUSY_MESSAGE.format(project_id=project_id))


class ConnectorBusy(ImportRequestError):
    """Every slot of a connector whose policy is to reject is taken."""

    status_code = 409
    default_code = "connector_busy"

    def __init__(self, connector, *, limit: int):
        self.connector_id = connector.pk
        super().__init__(
            Message(
                gettext_noop(
                    "Connector “%(name)s” (id %(id)s) is busy: all %(limit)s of "
                    "its slots are taken, and it rejects imports when busy."
                ),
                name=connector.name,
                id=connector.pk,
                limit=limit,
            )
        )


class ProjectNotImportable(ImportRequestError):
    """The project or its connector is switched off."""

    status_code = 409
    default_code = "project_not_importable"


class ProjectPaused(ProjectNotImportable):
    """The project was paused after failing too often; an operator resumes it."""

    default_code = "project_paused"

    def __init__(self, project):
        self.project_id = project.pk
        super().__init__(
            Message(
                gettext_noop(
                    "Project %(id)s is paused after %(count)s failed runs in a "
                    "row and accepts no imports; resume it on its page."
                ),
                id=project.pk,
                count=project.pause_details.get("failures", "?"),
            )
        )


class LockServiceUnavailable(ImportRequestError):
    """Redis, which holds the project locks, cannot be reached."""

    status_code = 503
    default_code = "lock_service_unavailable"


class DispatchFailed(ImportRequestError):
    """The run was written but the broker refused the task; the run failed."""

    status_code = 503
    default_code = "dispatch_failed"

    def __init__(self, message: str, *, run=None):
        self.run = run
        super().__init__(message)


class RunNotRetryable(ImportRequestError):
    """Only a failed or cancelled run can be retried."""

    status_code = 409
    default_code = "run_not_retryable"


class RunNotCancellable(ImportRequestError):
    """Only a queued, waiting, running or retrying run can be cancelled."""

    status_code = 409
    default_code = "run_not_cancellable"


class ImportRunFailed(Exception):
    """Raised by the execute task after its run was marked failed.

    The run's own state is already written; the exception only makes the
    Celery task end in FAILURE with the run's error, so that Celery's own
    tools (Flower, django-celery-results) count the failure. The task lists
    it in ``throws``: the worker logs it on one line, without a traceback.
    The only argument is the text, so that a result backend can rebuild it.
    """

    @classmethod
    def for_run(cls, run) -> "ImportRunFailed":
        return cls(_run_error_text(run))


class ImportRunRetrying(Exception):
    """The error a retrying run's attempt ended with, as the cause of the
    task's RETRY state (the next attempt is a message of its own)."""

    @classmethod
    def for_run(cls, run) -> "ImportRunRetrying":
        return cls(_run_error_text(run))


def _run_error_text(run) -> str:
    # Not translated: Celery's result backends store it for any reader.
    text = f"run {run.pk}: {run.error_class or 'Error'}"
    return f"{text}: {run.error_message}" if run.error_message else text
