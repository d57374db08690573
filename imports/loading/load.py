"""The load: merge a run's stage if it still runs and holds the newest fence."""

from collections.abc import Callable

from django.db import connection
from django.db.models import Max

from imports.models import ImportRun, Project

from .merge import stage_merge
from .results import FenceRejected, ImportInterrupted, LoadResult
from .safety import DeletionLimit
from .stage import Stage
from .table_load import table_load
from .table_stage import TableStage


def import_run_load(
    *,
    run: ImportRun,
    stage: Stage | TableStage,
    result: LoadResult,
    finish: Callable[[list[dict]], None] | None = None,
) -> LoadResult:
    """Merge the staged rows, if the run is still running and its fence newest.

    Must be called inside the transaction that also records the run's end,
    so that a cancel or a reaper either lands before the load (and nothing
    is written) or finds the run finished. ``finish(schema_changes)``
    records that end: it is called inside the data's own transaction (a
    destination's, for a table in another database), so the data commits
    only if the end can be recorded.

    A replace checks the project's deletion limit first; the run's
    ``deletions_confirmed`` is read under the run's row lock, so a
    confirmation given while the run extracted counts.

    Raises:
        ImportInterrupted: the run was cancelled or reaped meanwhile.
        FenceRejected: a newer run of the project holds a larger fence.
        DeletionLimitExceeded: a replace would delete more of the project's
            rows than its limit allows, and the run is not confirmed.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("import_run_load() must run inside a transaction")
    project = run.project
    # Lock order, everywhere: the run row, then the project row.
    status, confirmed = (
        ImportRun.objects.select_for_update()
        .filter(pk=run.pk)
        .values_list("status", "deletions_confirmed")
        .first()
    ) or (None, False)
    if status != ImportRun.Status.RUNNING:
        raise ImportInterrupted(f"run {run.pk} is {status}")
    # Serialise loads of one project and check the fence under the lock:
    # a paused worker whose lease expired finds a newer token here.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    newest = ImportRun.objects.filter(project_id=project.pk).aggregate(
        top=Max("fencing_token")
    )["top"]
    if run.fencing_token is None or (newest or 0) > run.fencing_token:
        raise FenceRejected(
            f"run {run.pk} holds fencing token {run.fencing_token}, "
            f"but the project's newest is {newest}"
        )
    replace = project.mode == Project.Mode.REPLACE
    limit = DeletionLimit(percent=project.replace_delete_limit, confirmed=confirmed)
    finish = finish or (lambda changes: None)
    if isinstance(stage, TableStage):
        return table_load(
            project=project,
            run_id=run.pk,
            fence=run.fencing_token,
            stage=stage,
            result=result,
            replace=replace,
            deletion_limit=limit,
            finish=finish,
        )
    counts = stage_merge(
        stage=stage,
        project_id=project.pk,
        run_id=run.pk,
        replace=replace,
        deletion_limit=limit,
    )
    result.rows_inserted = counts.inserted
    result.rows_updated = counts.updated
    result.rows_deleted = counts.deleted
    staged = result.rows_read - result.rows_rejected - result.duplicates
    result.rows_unchanged = staged - result.rows_inserted - result.rows_updated
    finish([])
    return result
