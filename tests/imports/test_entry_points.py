"""Every entry point goes through the guard and shows the busy message."""

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.urls import reverse

from imports.exceptions import PROJECT_BUSY_MESSAGE, ProjectBusy
from imports.models import ImportRun
from imports.services.guard import import_run_request
from imports.tasks import import_run_execute_task, project_import_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def busy_project(make_project):
    project = make_project()
    run = import_run_request(project=project, requested_by="first", trigger="command")
    return project, run


def busy_message(project) -> str:
    return PROJECT_BUSY_MESSAGE.format(project_id=project.pk)


class TestAdminImportNow:
    def post_import_now(self, client, project):
        return client.post(
            reverse("admin:imports_project_changelist"),
            {"action": "import_now", "_selected_action": [project.pk]},
            follow=True,
        )

    def test_idle_project_is_imported(
        self, admin_client, make_project, published, settings
    ):
        """ "Import now" on an idle project starts one run and says so."""
        settings.LANGUAGE_CODE = "en"
        project = make_project()
        response = self.post_import_now(admin_client, project)
        messages = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
        run = ImportRun.objects.get(project=project)
        change = f"/admin/imports/importrun/{run.pk}/change/"
        assert messages == [
            (
                "success",
                "1 import was started. Started: "
                f'<a class="started-run" href="{change}">#{run.pk}</a>',
            )
        ]
        assert run.trigger == ImportRun.Trigger.ADMIN
        assert run.requested_by == "admin"
        assert published() == 1

    def test_busy_project_shows_the_message_as_an_error(
        self, admin_client, busy_project, published
    ):
        """ "Import now" on a busy project shows the Russian message as an error."""
        project, _ = busy_project
        response = self.post_import_now(admin_client, project)
        messages = [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]
        active = ImportRun.objects.get(project=project)
        # The contract's exact text, and a link to the run that holds it.
        assert [level for level, _text in messages] == ["error"]
        assert (
            f'<span class="busy-message">{busy_message(project)}</span>'
            in (messages[0][1])
        )
        assert f"/admin/imports/importrun/{active.pk}/change/" in messages[0][1]
        assert ImportRun.objects.filter(project=project).count() == 1
        assert published() == 1


class TestImportProjectsCommand:
    def test_accepts_and_prints_the_run(self, make_project, capsys):
        """The command prints 'accepted <project> run <run>' and exits 0."""
        project = make_project()
        call_command("import_projects", "--project", str(project.pk))
        run = ImportRun.objects.get(project=project)
        assert capsys.readouterr().out == f"accepted {project.pk} run {run.pk}\n"

    def test_busy_project_is_rejected_with_exit_3(
        self, busy_project, make_project, capsys
    ):
        """A busy project prints the message and the command exits 3."""
        project, _ = busy_project
        idle = make_project()
        with pytest.raises(SystemExit) as excinfo:
            call_command(
                "import_projects",
                "--project",
                str(project.pk),
                "--project",
                str(idle.pk),
            )
        assert excinfo.value.code == 3
        out = capsys.readouterr().out.splitlines()
        assert out[0] == f"rejected {project.pk}: {busy_message(project)}"
        assert out[1].startswith(f"accepted {idle.pk} run ")

    def test_unknown_project_exits_2(self, make_project, capsys):
        """Unknown ids are named, nothing is started, and the exit status is 2."""
        from django.core.management import CommandError

        project = make_project()
        with pytest.raises(CommandError) as excinfo:
            call_command(
                "import_projects", "--project", str(project.pk), "--project", "999999"
            )
        assert excinfo.value.returncode == 2
        assert "999999" in str(excinfo.value)
        assert not ImportRun.objects.exists()


class TestDirectTaskCalls:
    def test_delay_of_the_execute_task_goes_through_the_guard(
        self, busy_project, published
    ):
        """import_run_execute_task.delay() for a busy project raises ProjectBusy."""
        project, run = busy_project
        with pytest.raises(ProjectBusy) as excinfo:
            import_run_execute_task.delay(run_id=run.pk)
        assert str(excinfo.value) == busy_message(project)
        with pytest.raises(ProjectBusy):
            import_run_execute_task.apply_async(kwargs={"run_id": run.pk})
        assert ImportRun.objects.filter(project=project).count() == 1
        assert published() == 1

    def test_delay_of_the_project_task_goes_through_the_guard(
        self, busy_project, published
    ):
        """project_import_task.delay() for a busy project raises ProjectBusy."""
        project, _ = busy_project
        with pytest.raises(ProjectBusy) as excinfo:
            project_import_task.delay(project_id=project.pk)
        assert str(excinfo.value) == busy_message(project)
        assert published() == 1

    def test_delay_on_an_idle_project_dispatches_a_new_run(
        self, make_project, published
    ):
        """A direct call for an idle project is an ordinary, guarded request."""
        project = make_project()
        result = project_import_task.delay(project_id=project.pk)
        run = ImportRun.objects.get(project=project)
        assert result.id == run.celery_task_id
        assert run.trigger == ImportRun.Trigger.CODE
        assert published() == 1
