"""import_status, import_retry, import_cancel and import_unlock."""

import datetime
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.locks import project_lock_owner
from imports.models import ImportRun, ProjectEvent
from imports.services.guard import import_run_request
from tests.conftest import end_run

pytestmark = pytest.mark.django_db(transaction=True)


def run_command(name, *args):
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except CommandError as exc:
        return exc.returncode, out.getvalue().splitlines(), str(exc)
    return code, out.getvalue().splitlines(), err.getvalue()


def request(project):
    return import_run_request(project=project, requested_by="t", trigger="command")


def failed_run(project, *, ago=None):
    """A run of the project, failed (its lock freed, as a worker would)."""
    run = request(project)
    fields = {} if ago is None else {"created_at": timezone.now() - ago}
    return end_run(run, ImportRun.Status.FAILED, **fields)


class TestImportStatus:
    def test_json_active_and_failed(self, make_project):
        """--json lists runs; --active and --failed narrow them."""
        active = request(make_project())
        failed = failed_run(make_project())
        code, out, _ = run_command("import_status", "--json")
        assert code == 0
        rows = json.loads("\n".join(out))
        assert [r["id"] for r in rows] == [failed.pk, active.pk]
        _, out, _ = run_command("import_status", "--json", "--active")
        assert [r["id"] for r in json.loads("\n".join(out))] == [active.pk]
        _, out, _ = run_command("import_status", "--failed")
        assert out[0].split()[:3] == ["run", "project", "status"]
        assert [line.split()[0] for line in out[1:]] == [str(failed.pk)]

    def test_since(self, make_project):
        failed_run(make_project(), ago=datetime.timedelta(days=3))
        recent = failed_run(make_project())
        _, out, _ = run_command("import_status", "--json", "--since", "24h")
        assert [r["id"] for r in json.loads("\n".join(out))] == [recent.pk]

    @pytest.mark.parametrize(
        "args", [["--active", "--failed"], ["--since", "yesterday"], ["--limit", "-1"]]
    )
    def test_bad_arguments_exit_2(self, args):
        code, _, message = run_command("import_status", *args)
        assert code == 2
        assert message


class TestImportRetry:
    def test_retry_by_id(self, make_project, published):
        """Each RUN_ID is retried as a linked run."""
        run = failed_run(make_project())
        code, out, _ = run_command("import_retry", str(run.pk))
        new = ImportRun.objects.get(retry_of=run)
        assert code == 0
        assert out == [f"retried {run.pk} as run {new.pk} (project {run.project_id})"]
        assert new.trigger == ImportRun.Trigger.RETRY
        assert published() == 2

    def test_failed_since_retries_each_project_s_newest_failure(self, make_project):
        """--failed retries projects whose newest run failed, within --since."""
        recent = failed_run(make_project())
        old = failed_run(make_project(), ago=datetime.timedelta(days=10))
        superseded_project = make_project()
        failed_run(superseded_project)
        newer = request(superseded_project)  # a newer run: nothing to retry
        code, out, err = run_command("import_retry", "--failed", "--since", "7d")
        assert code == 0
        assert out == [
            f"retried {recent.pk} as run "
            f"{ImportRun.objects.get(retry_of=recent).pk} "
            f"(project {recent.project_id})"
        ]
        assert "retried 1, rejected as busy 0, refused 0" in err
        assert not ImportRun.objects.filter(retry_of=old).exists()
        assert newer.retries.count() == 0

    def test_busy_project_exits_3_and_active_run_exits_1(self, make_project):
        project = make_project()
        run = failed_run(project)
        request(project)
        code, out, _ = run_command("import_retry", str(run.pk))
        assert code == 3
        assert out == [
            f"rejected {run.pk}: {PROJECT_BUSY_MESSAGE.format(project_id=project.pk)}"
        ]
        active = request(make_project())
        code, out, _ = run_command("import_retry", str(active.pk))
        assert code == 1
        assert out[0].startswith(f"rejected {active.pk}: ")

    @pytest.mark.parametrize(
        "args, fragment",
        [
            ([], "RUN_ID ... or --failed"),
            (["1", "--failed"], "not both"),
            (["--since", "1d"], "--since goes with --failed"),
            (["--failed", "--since", "soon"], "--since 'soon'"),
            (["999999"], "Unknown run id(s): 999999"),
            (["abc"], "invalid int value"),
        ],
    )
    def test_bad_arguments_exit_2(self, args, fragment):
        code, _, message = run_command("import_retry", *args)
        assert code == 2
        assert fragment in message


class TestImportCancel:
    def test_cancel_active_runs_and_refuse_finished_ones(self, make_project):
        """Active runs are cancelled with the reason; a finished one exits 1."""
        run = request(make_project())
        finished = failed_run(make_project())
        code, out, _ = run_command(
            "import_cancel", str(run.pk), str(finished.pk), "--reason", "wrong file"
        )
        assert code == 1
        assert out[0] == f"cancelled {run.pk} (project {run.project_id})"
        assert out[1].startswith(f"rejected {finished.pk}: ")
        run.refresh_from_db()
        assert run.status == ImportRun.Status.CANCELLED
        assert "wrong file" in run.error_message
        assert project_lock_owner(run.project_id) is None

    def test_unknown_run_exits_2(self):
        code, _, message = run_command("import_cancel", "999999")
        assert (code, "999999" in message) == (2, True)


class TestImportUnlock:
    def test_unlock_is_recorded_as_an_event(self, make_project):
        """The active run fails, the lock goes, the project event says why."""
        project = make_project()
        run = request(project)
        code, out, _ = run_command(
            "import_unlock", str(project.pk), "--reason", "worker host lost"
        )
        assert code == 0
        assert out == [f"unlocked {project.pk}: run {run.pk} failed, lock released"]
        event = ProjectEvent.objects.get(project=project)
        assert event.kind == ProjectEvent.Kind.UNLOCKED
        assert (event.actor, event.message) == (
            "manage.py import_unlock",
            "worker host lost",
        )
        assert project_lock_owner(project.pk) is None

    @pytest.mark.parametrize(
        "args, fragment",
        [
            (["1"], "--reason"),
            (["1", "--reason", "  "], "--reason must say why"),
            (["999999", "--reason", "x"], "Unknown project id(s): 999999"),
        ],
    )
    def test_bad_arguments_exit_2(self, args, fragment):
        code, _, message = run_command("import_unlock", *args)
        assert code == 2
        assert fragment in message
