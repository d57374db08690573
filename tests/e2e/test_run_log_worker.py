"""End to end: a real worker keeps the run's log lines with the run."""

import logging

import pytest

from connectors.secrets import MASK
from imports.models import ImportRun, ImportRunLogLine
from imports.services.guard import import_run_request
from tests.conftest import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

TOKEN = "tok-5b3d2f9c1e7a"


def test_a_workers_run_log_is_kept_and_masked(
    celery_worker, make_connector, make_project, write_csv
):
    """A worker's lines at INFO and above (Celery's logging set up, its level
    WARNING) land in the run's log; a secret in a message is masked."""
    path = write_csv([(i, f"name {i}", i) for i in range(1, 51)])
    ok = make_project(source={"path": str(path)})
    # The project's source holds the path; the connector a token which the
    # missing file's path repeats (the error message would show it).
    connector = make_connector(config={"auth_token": TOKEN})
    failing = make_project(connector=connector, source={"path": f"/tmp/{TOKEN}.csv"})
    runs = [
        import_run_request(project=p, requested_by="tester", trigger="command")
        for p in (ok, failing)
    ]
    for run in runs:
        wait_for(
            lambda run=run: ImportRun.objects.finished().filter(pk=run.pk).exists(),
            timeout=60,
            message="the run did not finish",
        )
    # A task's lines are written when it ends, a moment after the run's.
    wait_for(
        lambda: all(
            ImportRunLogLine.objects.filter(run=run, message__contains=last).exists()
            for run, last in zip(runs, ("succeeded", "stopped"), strict=True)
        ),
        timeout=30,
        message="the runs' last lines were not kept",
    )
    succeeded, failed = (
        list(ImportRunLogLine.objects.filter(run=run).order_by("at", "id"))
        for run in runs
    )
    assert any("started" in line.message for line in succeeded)
    assert any(
        line.level == logging.INFO and "succeeded" in line.message for line in succeeded
    )
    [stopped] = [line for line in failed if "stopped" in line.message]
    assert stopped.level == logging.WARNING
    assert MASK in stopped.message and TOKEN not in stopped.message
