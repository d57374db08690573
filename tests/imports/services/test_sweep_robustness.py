"""The sweep goes on past a bad row, and never waits on a stalled worker."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from imports.locks import project_lock_force_release
from imports.models import ImportRun, ImportRunEvent
from imports.services.guard import import_run_request
from imports.services.sweep import runs_reap_lost, runs_sweep

pytestmark = pytest.mark.django_db(transaction=True)


def lost_run(project, settings, **fields) -> ImportRun:
    """A running run whose worker stopped renewing and whose lock is gone."""
    run = import_run_request(project=project, requested_by="t", trigger="command")
    ImportRun.objects.filter(pk=run.pk).update(
        status=ImportRun.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now()
        - timedelta(seconds=settings.IMPORTHUB_LEASE_SECONDS + 1),
        **fields,
    )
    project_lock_force_release(project.pk)
    run.refresh_from_db()
    return run


def test_a_run_without_a_lock_token_is_reaped(make_project, settings):
    """A run with an empty lock token (a row written by hand) has no lock to
    give back; it is reaped like any other."""
    run = lost_run(make_project(max_retries=1), settings, lock_token="")
    assert runs_reap_lost() == 1
    run.refresh_from_db()
    assert run.status == ImportRun.Status.RETRYING
    assert not run.events.filter(kind=ImportRunEvent.Kind.SWEEP_FAILED).exists()


def test_one_bad_run_does_not_stop_the_sweep(make_project, settings, monkeypatch):
    """A run the reaper cannot handle (here its project's lock check fails
    with a bug) is recorded and skipped; the next run is still reaped, and
    the failure is recorded once, not once per tick."""
    from imports.services import sweep

    bad = lost_run(make_project(max_retries=1), settings)
    good = lost_run(make_project(max_retries=1), settings)
    real_check = sweep.project_lock_held_by

    def broken_for_bad(project_id, token):
        if project_id == bad.project_id:
            raise ValueError("a row this code cannot read")
        return real_check(project_id, token)

    monkeypatch.setattr(sweep, "project_lock_held_by", broken_for_bad)
    assert runs_reap_lost() == 1
    good.refresh_from_db()
    assert good.status == ImportRun.Status.RETRYING
    bad.refresh_from_db()
    assert bad.status == ImportRun.Status.RUNNING
    runs_sweep()
    runs_sweep()
    failures = bad.events.filter(kind=ImportRunEvent.Kind.SWEEP_FAILED)
    assert failures.count() == 1
    assert "reap" in failures.get().message


def test_the_sweep_skips_a_row_a_stalled_transaction_holds(make_project, settings):
    """A worker paused inside its load transaction holds its run's row; the
    sweep does not wait for it, reaps the other runs, and comes back to that
    one when the row is free."""
    held = lost_run(make_project(max_retries=1), settings)
    other = lost_run(make_project(max_retries=1), settings)
    locked, release = threading.Event(), threading.Event()

    def stalled_worker():
        try:
            with transaction.atomic():
                ImportRun.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=stalled_worker)
    thread.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        assert runs_reap_lost() == 1
        assert time.monotonic() - started < 5
        held.refresh_from_db()
        other.refresh_from_db()
        assert held.status == ImportRun.Status.RUNNING
        assert other.status == ImportRun.Status.RETRYING
    finally:
        release.set()
        thread.join()
    assert runs_reap_lost() == 1
    held.refresh_from_db()
    assert held.status == ImportRun.Status.RETRYING


def test_sessions_bound_a_stalled_transaction():
    """Every PostgreSQL session of the app ends a transaction left idle."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        (value,) = cursor.fetchone()
    assert value not in ("0", "")
