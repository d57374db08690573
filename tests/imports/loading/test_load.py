"""The load: one transaction, under the newest fence, or nothing at all."""

import pytest
from django.db import transaction

from imports.loading import FenceRejected, LoadResult, Stage, import_run_load
from imports.models import ImportRun, Project, Record
from imports.services.guard import import_run_request

from .helpers import records, run_import

pytestmark = pytest.mark.django_db(transaction=True)


def test_failed_import_leaves_the_records_as_they_were(make_project, write_csv):
    """A run that fails after staging leaves the last good import's records."""
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    project = make_project(source={"path": str(path)}, mode=Project.Mode.REPLACE)
    run_import(project)
    before = records(project)
    write_csv([(1, "changed", 1)] * 3 + [(9, "broken")], name=path.name)
    failed = run_import(project)
    assert failed.status == ImportRun.Status.FAILED
    assert records(project) == before


def test_a_newer_fence_refuses_the_commit(make_project):
    """If a newer run of the project holds a larger fence, nothing is written."""
    project = make_project()
    run = import_run_request(project=project, requested_by="t", trigger="command")
    stage = Stage(run.pk)
    stage.create(parse_json=False)
    try:
        stage.write([(1, "1", '{"id": "1"}', "c0ffee")])
        stage.seal()
        # A newer run was given a larger fence after this one's lease ran out.
        ImportRun.objects.create(
            project=project,
            status=ImportRun.Status.FAILED,
            trigger="command",
            fencing_token=run.fencing_token + 1,
        )
        ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING)
        with pytest.raises(FenceRejected), transaction.atomic():
            import_run_load(run=run, stage=stage, result=LoadResult(rows_read=1))
    finally:
        stage.drop()
    assert not Record.objects.filter(project=project).exists()


def test_the_load_needs_a_transaction(make_project):
    """Outside a transaction the load refuses to start."""
    run = import_run_request(
        project=make_project(), requested_by="t", trigger="command"
    )
    with pytest.raises(RuntimeError, match="inside a transaction"):
        import_run_load(run=run, stage=Stage(run.pk), result=LoadResult())
