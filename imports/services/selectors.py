"""Read-only queries the services share: nothing here writes."""

from django.db.models import Max

from imports.models import ImportRun


def project_fence_floor(*, project_id: int) -> int:
    """The highest fencing token the database recorded for a project.

    The lock's counter is raised to it before issuing the next token, so the
    fence stays monotonic even when Redis lost its data.
    """
    value = ImportRun.objects.filter(project_id=project_id).aggregate(
        top=Max("fencing_token")
    )["top"]
    return value or 0


def project_active_run(*, project_id: int) -> ImportRun | None:
    """The project's active run, if it has one (at most one can exist)."""
    return ImportRun.objects.active().filter(project_id=project_id).first()


def run_for_execution(*, run_id: int) -> ImportRun | None:
    """A run with its project and connector, or None for an unknown id."""
    return (
        ImportRun.objects.select_related("project__connector").filter(pk=run_id).first()
    )


def connector_runs_holding_slots(*, connector_id: int) -> int:
    """How many runs of a connector hold a slot in the database's eyes."""
    return (
        ImportRun.objects.holding_slots()
        .filter(project__connector_id=connector_id)
        .count()
    )


def connector_runs_running(*, connector_id: int) -> int:
    return ImportRun.objects.filter(
        status=ImportRun.Status.RUNNING, project__connector_id=connector_id
    ).count()
