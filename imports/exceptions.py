"""Domain errors of imports, each with the message an operator sees."""

from django.utils.translation import gettext_lazy as _

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
            _(
                "Connector “%(name)s” (id %(id)s) is busy: all %(limit)s of its "
                "slots are taken, and it rejects imports when busy."
            )
            % {"name": connector.name, "id": connector.pk, "limit": limit}
        )


class ProjectNotImportable(ImportRequestError):
    """The project or its connector is switched off."""

    status_code = 409
    default_code = "project_not_importable"


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
