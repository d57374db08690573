"""import_projects --wait follows real runs on a real worker to their end."""

import io

import pytest
from django.core.management import call_command

from imports.management.progress import runs_wait
from imports.models import ImportRun
from imports.services.guard import import_run_request
from imports.services.operations import import_run_cancel

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.mark.e2e
def test_wait_exits_0_when_all_succeed(celery_worker, make_project, write_csv):
    """--wait returns 0 once every run succeeded, with plain progress lines."""
    projects = [
        make_project(source={"path": str(write_csv([(i, "n", i) for i in range(50)]))})
        for _ in range(2)
    ]
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_projects",
        "--projects",
        ",".join(str(p.pk) for p in projects),
        "--wait",
        "--poll-interval",
        "0.2",
        "--timeout",
        "60",
        stdout=out,
        stderr=err,
    )
    assert ImportRun.objects.filter(status="succeeded").count() == 2
    lines = err.getvalue().splitlines()
    assert lines[0] == "accepted 2, rejected as busy 0, rejected as invalid 0"
    assert lines[-1].startswith("2/2 finished")
    assert "\r" not in err.getvalue()  # not a terminal: plain lines


@pytest.mark.e2e
def test_wait_exits_1_when_a_run_fails(celery_worker, make_project, write_csv):
    """A failed run is named on stdout and the exit status is 1."""
    good = make_project(source={"path": str(write_csv([(1, "a", 1)]))})
    bad = make_project(source={"path": "/nonexistent/importhub-wait.csv"})
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(SystemExit) as excinfo:
        call_command(
            "import_projects",
            "--projects",
            f"{good.pk},{bad.pk}",
            "--wait",
            "--poll-interval",
            "0.2",
            "--timeout",
            "60",
            stdout=out,
            stderr=err,
        )
    assert excinfo.value.code == 1
    bad_run = ImportRun.objects.get(project=bad)
    assert bad_run.status == ImportRun.Status.FAILED
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith(f"failed {bad.pk} run {bad_run.pk}: ")
    )


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal(make_project):
    """On a terminal the bar is redrawn in place and ends with a newline."""
    runs = [
        import_run_request(project=make_project(), requested_by="t", trigger="command")
        for _ in range(2)
    ]
    for run in runs:
        import_run_cancel(run=run, cancelled_by="t")
    stream = FakeTerminal()
    tally = runs_wait([r.pk for r in runs], stream=stream, interval=0.05)
    assert tally["cancelled"] == 2
    assert stream.getvalue().startswith("\r[" + "#" * 30 + "] 2/2 finished")
    assert stream.getvalue().endswith("\n")


def test_wait_gives_up_after_the_timeout(make_project):
    """--timeout ends the wait with exit 1; the runs go on."""
    project = make_project()
    err = io.StringIO()
    with pytest.raises(SystemExit) as excinfo:
        call_command(
            "import_projects",
            "--project",
            str(project.pk),
            "--wait",
            "--poll-interval",
            "0.1",
            "--timeout",
            "0.3",
            stdout=io.StringIO(),
            stderr=err,
        )
    assert excinfo.value.code == 1
    assert "gave up waiting after 0.3 s" in err.getvalue()
    assert ImportRun.objects.get(project=project).status == "queued"
