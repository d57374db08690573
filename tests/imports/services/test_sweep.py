"""The sweep: lost workers are reaped, orphaned locks and stages freed."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from imports.loading import Stage
from imports.locks import project_lock, project_lock_force_release, project_lock_owner
from imports.models import ImportRun, ImportRunEvent
from imports.services.attempt import Attempt
from imports.services.guard import import_run_request
from imports.services.orphans import locks_release_orphaned, stages_drop_orphaned
from imports.services.sweep import runs_reap_lost, runs_redispatch_queued
from imports.services.transitions import SUCCEED

pytestmark = pytest.mark.django_db(transaction=True)


def running(project, *, heartbeat_age: float) -> ImportRun:
    """A run that a worker started and then stopped renewing."""
    run = import_run_request(project=project, requested_by="t", trigger="command")
    ImportRun.objects.filter(pk=run.pk).update(
        status=ImportRun.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age),
    )
    run.refresh_from_db()
    return run


def test_lost_worker_is_reaped_and_retried_with_a_new_token(make_project, settings):
    """Stale heartbeat and no lock: retried, under a token of its own."""
    project = make_project(max_retries=1)
    run = running(project, heartbeat_age=settings.IMPORTHUB_LEASE_SECONDS + 1)
    project_lock_force_release(project.pk)  # the lease ran out with the worker
    assert runs_reap_lost() == 1
    reaped = ImportRun.objects.get(pk=run.pk)
    assert reaped.status == ImportRun.Status.RETRYING
    assert reaped.attempt == 2
    assert reaped.lock_token != run.lock_token
    assert reaped.error_class == "WorkerLost"
    event = reaped.events.get(kind=ImportRunEvent.Kind.REAPED)
    assert event.actor == "reaper" and "Worker lost" in event.message


def test_lost_worker_without_attempts_left_fails(make_project, settings):
    """With no retry left, a lost worker's run fails with "worker lost"."""
    project = make_project(max_retries=0)
    run = running(project, heartbeat_age=settings.IMPORTHUB_LEASE_SECONDS + 1)
    project_lock_force_release(project.pk)
    assert runs_reap_lost() == 1
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert run.error_message.startswith("Worker lost")


def test_a_live_lock_means_a_live_worker(make_project, settings):
    """A stale heartbeat with the lock still renewed is not reaped."""
    project = make_project()
    run = running(project, heartbeat_age=settings.IMPORTHUB_LEASE_SECONDS + 1)
    assert project_lock_owner(project.pk) == run.lock_token
    assert runs_reap_lost() == 0
    run.refresh_from_db()
    assert run.status == ImportRun.Status.RUNNING


def test_a_reaped_attempt_can_no_longer_write_its_run(make_project, settings):
    """The lost worker, waking up, cannot overwrite what followed the reap."""
    project = make_project(max_retries=1)
    run = running(project, heartbeat_age=settings.IMPORTHUB_LEASE_SECONDS + 1)
    old = Attempt(
        run=run,
        fence=run.fencing_token,
        connector_id=project.connector_id,
        lock=project_lock(project.pk, token=run.lock_token),
    )
    project_lock_force_release(project.pk)
    runs_reap_lost()
    assert not SUCCEED.apply(old.run, guards=old.guards, actor="worker")
    assert not old.record(ImportRunEvent.Kind.EXTRACTED)
    assert not old.update(rows_read=5)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.RETRYING


def test_orphaned_lock_is_released_but_a_fresh_one_is_not(make_project, settings):
    """A lock no active run owns is freed once it is past the dispatch grace."""
    settings.IMPORTHUB_DISPATCH_LOCK_SECONDS = 3600
    stale = make_project()
    project_lock(stale.pk, token="nobody", ttl=3600).acquire()
    fresh = make_project()
    project_lock(fresh.pk, token="a request in flight", ttl=30).acquire()
    owned = make_project()
    run = import_run_request(project=owned, requested_by="t", trigger="command")
    assert locks_release_orphaned() == 1
    assert project_lock_owner(stale.pk) is None
    assert project_lock_owner(fresh.pk) == "a request in flight"
    assert project_lock_owner(owned.pk) == run.lock_token


def test_stage_of_a_finished_run_is_dropped(make_project):
    """A staging table left by a killed worker is dropped once its run ended."""
    run = import_run_request(
        project=make_project(), requested_by="t", trigger="command"
    )
    stage = Stage(run.pk)
    stage.create()
    stages_drop_orphaned()
    assert stage.table in connection.introspection.table_names()  # still active
    ImportRun.objects.filter(pk=run.pk).update(status=ImportRun.Status.FAILED)
    assert stages_drop_orphaned() >= 1
    assert stage.table not in connection.introspection.table_names()


def test_queued_run_whose_message_was_lost_is_sent_again(
    make_project, published, task_queue, settings
):
    """A queued run nobody started after the redispatch delay is sent again."""
    import redis

    run = import_run_request(
        project=make_project(), requested_by="t", trigger="command"
    )
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(task_queue)  # the broker lost the message
    assert published() == 0
    assert runs_redispatch_queued() == 0  # not yet: it may just be slow
    ImportRun.objects.filter(pk=run.pk).update(
        dispatched_at=timezone.now()
        - timedelta(seconds=settings.IMPORTHUB_REDISPATCH_SECONDS + 1)
    )
    assert runs_redispatch_queued() == 1
    assert published() == 1
    assert runs_redispatch_queued() == 0  # at most once per period
    event = run.events.filter(kind=ImportRunEvent.Kind.DISPATCHED).last()
    assert event.actor == "reaper"
