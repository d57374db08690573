"""Operators' services: retry, cancel and force-unlock."""

import pytest

from imports.exceptions import (
    PROJECT_BUSY_MESSAGE,
    ProjectBusy,
    RunNotCancellable,
    RunNotRetryable,
)
from imports.locks import project_lock_owner, run_cancel_requested
from imports.models import ImportRun, ImportRunEvent, ProjectEvent, Record
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from imports.services.operations import (
    import_run_cancel,
    import_run_retry,
    project_force_unlock,
)
from tests.conftest import end_run

pytestmark = pytest.mark.django_db(transaction=True)


def request(project):
    return import_run_request(project=project, requested_by="t", trigger="command")


class TestRetry:
    def test_failed_run_is_retried_as_a_linked_run(self, make_project):
        """Retrying a failed run starts a new run that points back to it."""
        project = make_project()
        failed = request(project)
        import_run_execute(run_id=failed.pk)  # the file does not exist
        failed.refresh_from_db()
        assert failed.status == ImportRun.Status.FAILED
        retry = import_run_retry(run=failed, requested_by="operator")
        assert retry.retry_of == failed
        assert retry.trigger == ImportRun.Trigger.RETRY
        assert list(failed.retries.all()) == [retry]

    def test_retry_of_a_busy_project_is_rejected_with_the_message(self, make_project):
        """A retry goes through the guard: a busy project is rejected."""
        project = make_project()
        failed = end_run(request(project), ImportRun.Status.FAILED)
        active = request(project)  # someone else started it meanwhile
        with pytest.raises(ProjectBusy) as excinfo:
            import_run_retry(run=failed, requested_by="operator")
        assert str(excinfo.value) == PROJECT_BUSY_MESSAGE.format(project_id=project.pk)
        assert excinfo.value.active_run_id == active.pk

    def test_active_run_is_not_retryable(self, make_project):
        """An active run cannot be retried."""
        run = request(make_project())
        with pytest.raises(RunNotRetryable):
            import_run_retry(run=run, requested_by="operator")


class TestCancel:
    def test_queued_run_is_cancelled_and_the_project_freed(self, make_project):
        """Cancelling a queued run frees its lock; it never starts later."""
        project = make_project()
        run = request(project)
        cancelled = import_run_cancel(run=run, cancelled_by="op", reason="wrong file")
        assert cancelled.status == ImportRun.Status.CANCELLED
        assert cancelled.error_message == "Cancelled by op: wrong file"
        assert project_lock_owner(project.pk) is None
        event = run.events.get(kind=ImportRunEvent.Kind.CANCELLED)
        assert (event.actor, event.message, event.data) == (
            "op",
            "wrong file",
            {"from": "queued"},
        )
        # The queued message, delivered later, does nothing.
        assert import_run_execute(run_id=run.pk) is None
        run.refresh_from_db()
        assert run.status == ImportRun.Status.CANCELLED
        assert request(project).status == ImportRun.Status.QUEUED

    def test_running_run_is_told_to_stop(self, make_project):
        """A running run is marked cancelled and flagged for its worker."""
        project = make_project()
        run = request(project)
        ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING)
        import_run_cancel(run=run, cancelled_by="op")
        assert run_cancel_requested(run.pk)
        # Its worker still holds the lock until it stops at a batch boundary.
        assert project_lock_owner(project.pk) == run.lock_token

    def test_finished_run_is_not_cancellable(self, make_project):
        """A finished run cannot be cancelled."""
        run = request(make_project())
        ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.SUCCEEDED)
        with pytest.raises(RunNotCancellable):
            import_run_cancel(run=run, cancelled_by="op")

    def test_cancel_before_the_load_writes_nothing(self, make_project, write_csv):
        """A run cancelled before its load transaction leaves no records."""
        from django.db import transaction

        from imports.loading import (
            ImportInterrupted,
            LoadResult,
            Stage,
            import_run_load,
        )

        project = make_project(source={"path": str(write_csv([(1, "a", 1)]))})
        run = request(project)
        stage = Stage(run.pk)
        stage.create()
        try:
            stage.write([(1, "1", '{"id": "1"}', "00")])
            stage.seal()
            ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.RUNNING)
            import_run_cancel(run=run, cancelled_by="op")
            run.refresh_from_db()
            with pytest.raises(ImportInterrupted), transaction.atomic():
                import_run_load(run=run, stage=stage, result=LoadResult(rows_read=1))
        finally:
            stage.drop()
        assert not Record.objects.filter(project=project).exists()


class TestForceUnlock:
    def test_stuck_project_is_freed_and_audited(self, make_project):
        """Force-unlock fails the active run, frees the lock and records who/why."""
        project = make_project()
        run = request(project)
        outcome = project_force_unlock(
            project=project, unlocked_by="admin", reason="worker host died"
        )
        assert outcome == {"run": outcome["run"], "lock_released": True}
        run.refresh_from_db()
        assert run.status == ImportRun.Status.FAILED
        assert run.error_class == "ForceUnlocked"
        event = ProjectEvent.objects.get(project=project)
        assert (event.kind, event.actor, event.message) == (
            ProjectEvent.Kind.UNLOCKED,
            "admin",
            "worker host died",
        )
        assert request(project).status == ImportRun.Status.QUEUED

    def test_a_reason_is_required(self, make_project):
        """Force-unlock without a reason is refused."""
        with pytest.raises(ValueError):
            project_force_unlock(project=make_project(), unlocked_by="a", reason=" ")
