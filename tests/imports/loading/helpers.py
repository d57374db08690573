"""What the loading's tests share: run an import in-process, read its counts.

The tests call the worker's service in-process (no broker, no worker).
"""

from imports.models import ImportRun, Record
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request


def run_import(project, *, confirm_deletions: bool = False) -> ImportRun:
    """Request and execute a run; ``confirm_deletions`` confirms it first."""
    run = import_run_request(project=project, requested_by="test", trigger="command")
    if confirm_deletions:
        ImportRun.objects.filter(pk=run.pk).update(deletions_confirmed=True)
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def counts(run) -> tuple:
    """(read, inserted, updated, unchanged, deleted, rejected) of a run."""
    return (
        run.rows_read,
        run.rows_inserted,
        run.rows_updated,
        run.rows_unchanged,
        run.rows_deleted,
        run.rows_rejected,
    )


def records(project) -> dict:
    return {r.key: r.data for r in Record.objects.filter(project=project)}
