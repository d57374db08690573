"""The guard: one active import per project, rejected before dispatch."""

import subprocess
import sys

import pytest
from django.db import transaction

from imports.exceptions import (
    PROJECT_BUSY_MESSAGE,
    LockServiceUnavailable,
    ProjectBusy,
    ProjectNotImportable,
)
from imports.locks import project_lock, project_lock_force_release, project_lock_owner
from imports.models import ImportRun, ImportRunEvent, Project
from imports.services.guard import import_run_request
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def request_import(project, **kwargs):
    kwargs.setdefault("requested_by", "tester")
    kwargs.setdefault("trigger", ImportRun.Trigger.COMMAND)
    return import_run_request(project=project, **kwargs)


def busy_message(project) -> str:
    return PROJECT_BUSY_MESSAGE.format(project_id=project.pk)


class TestImportRunRequest:
    def test_accepts_writes_a_queued_run_and_publishes_once(
        self, make_project, published
    ):
        """An idle project is accepted: one queued run, its lock, one message."""
        project = make_project()
        run = request_import(project)
        run.refresh_from_db()
        assert run.status == ImportRun.Status.QUEUED
        assert run.fencing_token >= 1
        assert project_lock_owner(project.pk) == run.lock_token
        assert published() == 1
        # The request's event is written with the run, in one statement;
        # the publish is recorded on the run (dispatched_at), not as a row.
        assert list(run.events.values_list("kind", flat=True)) == [
            ImportRunEvent.Kind.REQUESTED,
        ]
        assert run.dispatched_at is not None

    def test_busy_project_is_rejected_before_dispatch(self, make_project, published):
        """A second request for a busy project is rejected with the exact text."""
        project = make_project()
        first = request_import(project)
        with pytest.raises(ProjectBusy) as excinfo:
            request_import(project)
        assert str(excinfo.value) == busy_message(project)
        assert excinfo.value.active_run_id == first.pk
        assert excinfo.value.status_code == 409
        assert ImportRun.objects.filter(project=project).count() == 1
        assert published() == 1

    @pytest.mark.parametrize(
        "final", [ImportRun.Status.SUCCEEDED, ImportRun.Status.FAILED]
    )
    def test_next_request_is_accepted_after_the_run_ends(self, make_project, final):
        """Once the active run has ended and freed its lock, a new one starts."""
        project = make_project()
        run = request_import(project)
        ImportRun.objects.filter(pk=run.pk).update(status=final)
        project_lock(project.pk, token=run.lock_token).release()
        second = request_import(project)
        assert second.pk != run.pk
        assert second.fencing_token > run.fencing_token

    def test_database_refuses_when_the_redis_key_is_gone(self, make_project, published):
        """With the lock deleted by hand, the partial unique index still refuses."""
        project = make_project()
        run = request_import(project)
        assert project_lock_force_release(project.pk)
        with pytest.raises(ProjectBusy) as excinfo:
            request_import(project)
        assert str(excinfo.value) == busy_message(project)
        assert excinfo.value.active_run_id == run.pk
        assert ImportRun.objects.filter(project=project).count() == 1
        assert published() == 1
        # The failed request gave back the lock it took for a moment.
        assert project_lock_owner(project.pk) is None

    def test_fence_stays_monotonic_when_redis_loses_its_counter(
        self, make_project, redis_prefix
    ):
        """A flushed fence counter is raised to the database's highest fence."""
        from imports.locks import redis_client

        project = make_project()
        first = request_import(project)
        ImportRun.objects.filter(pk=first.pk).update(status=ImportRun.Status.SUCCEEDED)
        client = redis_client()
        client.delete(*client.keys(f"{redis_prefix}*"))
        second = request_import(project)
        assert second.fencing_token > first.fencing_token

    def test_inactive_project_is_refused(self, make_project, published):
        """An inactive project accepts no import and nothing is written."""
        project = make_project(is_active=False)
        with pytest.raises(ProjectNotImportable):
            request_import(project)
        assert not ImportRun.objects.exists()
        assert published() == 0
        assert project_lock_owner(project.pk) is None

    def test_settings_saved_past_the_form_are_refused_and_free_the_lock(
        self, make_project, published
    ):
        """Invalid settings (written by a shell, not the admin's form) are
        checked once the lock is taken: refused with the reason, the lock
        and the slot given back, nothing written or published."""
        from imports.locks import connector_slots

        project = make_project()
        Project.objects.filter(pk=project.pk).update(source={"path": 42})
        project.refresh_from_db()
        with pytest.raises(ProjectNotImportable, match="cannot be imported"):
            request_import(project)
        assert not ImportRun.objects.exists()
        assert published() == 0
        assert project_lock_owner(project.pk) is None
        assert connector_slots(project.connector).count() == 0

    def test_redis_unreachable_refuses_and_writes_nothing(
        self, make_project, published, settings
    ):
        """No lock store, no import: refused with the reason, no row, no
        message (and a bulk request answers each project the same way)."""
        from imports.services.guard import RunRequest, import_runs_request

        project, other = make_project(), make_project()
        shared, settings.REDIS_URL = settings.REDIS_URL, "redis://127.0.0.1:1/0"
        try:
            with pytest.raises(LockServiceUnavailable, match="unreachable"):
                request_import(project)
            outcomes = import_runs_request(
                requests=[RunRequest(project), RunRequest(other)],
                requested_by="t",
                trigger="command",
            )
        finally:
            settings.REDIS_URL = shared  # the prefix's clean-up needs it
        assert all(isinstance(o.error, LockServiceUnavailable) for o in outcomes)
        assert not ImportRun.objects.exists()
        assert published() == 0

    def test_broker_down_fails_the_run_and_frees_the_project(
        self, make_project, worker_env, redis_prefix
    ):
        """If publishing fails, the run is failed with the reason, no lock remains.

        The request comes from a separate process whose broker is a closed
        port, as when RabbitMQ or Redis is down at dispatch.
        """
        project = make_project()
        env = {
            **worker_env,
            "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
            "IMPORTHUB_REDIS_PREFIX": redis_prefix,
        }
        result = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "import_projects",
                "--project",
                str(project.pk),
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, result.stderr
        run = ImportRun.objects.get(project=project)
        assert run.status == ImportRun.Status.FAILED
        assert run.error_class == "DispatchFailed"
        assert "broker" in run.error_message
        assert f"rejected {project.pk}: {run.error_message}" in result.stdout
        assert project_lock_owner(project.pk) is None
        assert ImportRunEvent.objects.filter(
            run=run, kind=ImportRunEvent.Kind.DISPATCH_FAILED
        ).exists()
        # And the project is importable again at once.
        assert request_import(project).status == ImportRun.Status.QUEUED

    def test_rolled_back_request_publishes_nothing(self, make_project, published):
        """A request inside a transaction that rolls back leaves no run, no message."""
        project = make_project()

        class Abort(Exception):
            pass

        with pytest.raises(Abort), transaction.atomic():
            request_import(project)
            raise Abort
        assert not ImportRun.objects.exists()
        assert published() == 0
        # The lock was taken with a short grace TTL; it frees itself.
        lock = project_lock(project.pk)
        assert 0 < lock.ttl_remaining() <= 60
