"""End to end: a command dispatches, a real worker imports, the run succeeds."""

import pytest
from django.core.management import call_command

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.locks import project_lock_owner
from imports.models import ImportRun, ImportRunEvent, Record
from tests.conftest import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.brokers,
]


def final_run(project, timeout=60) -> ImportRun:
    return wait_for(
        lambda: ImportRun.objects.finished().filter(project=project).first(),
        timeout=timeout,
        message="the run did not finish",
    )


def wait_until_unlocked(project) -> None:
    """The worker frees the lock a moment after it recorded the run's end."""
    wait_for(
        lambda: project_lock_owner(project.pk) is None,
        timeout=10,
        message="the run's lock was not freed",
    )


def test_command_to_worker_to_succeeded(celery_worker, make_project, write_csv, capsys):
    """import_projects -> worker -> succeeded, with the right record count."""
    path = write_csv([(i, f"name {i}", i * 10) for i in range(1, 251)])
    project = make_project(source={"path": str(path)}, key_fields=["id"])
    call_command("import_projects", "--project", str(project.pk))
    assert capsys.readouterr().out.startswith(f"accepted {project.pk} run ")
    run = final_run(project)
    assert run.status == ImportRun.Status.SUCCEEDED, (
        run.error_class,
        run.error_message,
    )
    assert (run.rows_read, run.rows_inserted, run.rows_updated) == (250, 250, 0)
    assert Record.objects.filter(project=project).count() == 250
    assert Record.objects.get(project=project, key="7").data == {
        "id": "7",
        "name": "name 7",
        "amount": "70",
    }
    kinds = list(run.events.values_list("kind", flat=True))
    assert kinds[:2] == [
        ImportRunEvent.Kind.REQUESTED,
        ImportRunEvent.Kind.STARTED,
    ]
    assert kinds[-1] == ImportRunEvent.Kind.SUCCEEDED
    # The lock is gone with the run; the next request is accepted and
    # re-importing unchanged data writes nothing.
    wait_until_unlocked(project)
    call_command("import_projects", "--project", str(project.pk))
    second = wait_for(
        lambda: (
            ImportRun.objects.finished()
            .filter(project=project)
            .exclude(pk=run.pk)
            .first()
        ),
        timeout=60,
    )
    assert second.status == ImportRun.Status.SUCCEEDED
    assert (second.rows_inserted, second.rows_updated, second.rows_unchanged) == (
        0,
        0,
        250,
    )


def test_busy_while_the_worker_runs(celery_worker, make_project, write_csv, capsys):
    """While a run is active, a second request is rejected with the message."""
    path = write_csv([(i, "x", i) for i in range(1, 50001)])
    project = make_project(source={"path": str(path)})
    call_command("import_projects", "--project", str(project.pk))
    with pytest.raises(SystemExit) as excinfo:
        call_command("import_projects", "--project", str(project.pk))
    assert excinfo.value.code == 3
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == (
        f"rejected {project.pk}: {PROJECT_BUSY_MESSAGE.format(project_id=project.pk)}"
    )
    run = final_run(project)
    assert run.status == ImportRun.Status.SUCCEEDED
    assert ImportRun.objects.filter(project=project).count() == 1
    assert Record.objects.filter(project=project).count() == 50000


def test_failed_import_reports_the_reason(celery_worker, make_project, tmp_path):
    """A missing file fails the run with a message an operator understands."""
    project = make_project(source={"path": str(tmp_path / "missing.csv")})
    call_command("import_projects", "--project", str(project.pk))
    run = final_run(project)
    assert run.status == ImportRun.Status.FAILED
    assert run.error_class == "PermanentSourceError"
    assert "not found" in run.error_message
    wait_until_unlocked(project)
