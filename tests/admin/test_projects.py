"""The project page: Import now, last runs, schedule and Force unlock."""

import re

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.messages import get_messages
from django.urls import reverse

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.locks import project_lock_owner
from imports.models import ImportRun, ProjectEvent

pytestmark = pytest.mark.django_db(transaction=True)


def change_url(project) -> str:
    return reverse("admin:imports_project_change", args=[project.pk])


def shown_messages(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


class TestImportNow:
    def import_now(self, client, project):
        return client.post(
            reverse("admin:imports_project_import", args=[project.pk]), follow=True
        )

    def test_button_starts_an_import(self, admin_client, make_project, published):
        """The button starts one run through the guard and links to it."""
        project = make_project()
        html = admin_client.get(change_url(project)).content.decode()
        assert 'id="project-import-now"' in html
        response = self.import_now(admin_client, project)
        run = ImportRun.objects.get(project=project)
        assert run.trigger == ImportRun.Trigger.ADMIN
        [(level, text)] = shown_messages(response)
        assert level == "success"
        assert f"#{run.pk}" in text
        assert response.redirect_chain[-1][0] == change_url(project)
        assert published() == 1

    def test_twice_shows_the_russian_message(
        self, admin_client, make_project, published
    ):
        """The second press, while the first run is active, is rejected."""
        project = make_project()
        self.import_now(admin_client, project)
        response = self.import_now(admin_client, project)
        active = ImportRun.objects.get(project=project)
        # The contract's text exactly, the active run linked beside it.
        assert shown_messages(response) == [
            (
                "error",
                f'<span class="busy-message">'
                f"{PROJECT_BUSY_MESSAGE.format(project_id=project.pk)}</span> "
                f'<a class="busy-run" href="/admin/imports/importrun/{active.pk}'
                f'/change/">open the active run #{active.pk}</a>',
            )
        ]
        assert ImportRun.objects.filter(project=project).count() == 1
        assert published() == 1

    def test_inactive_project_is_refused(self, admin_client, make_project):
        project = make_project(is_active=False)
        response = self.import_now(admin_client, project)
        [(level, text)] = shown_messages(response)
        assert level == "error"
        assert "inactive" in text
        assert not ImportRun.objects.exists()


class TestImportNowAction:
    def act(self, client, projects):
        return client.post(
            reverse("admin:imports_project_changelist"),
            {"action": "import_now", "_selected_action": [p.pk for p in projects]},
            follow=True,
        )

    def test_idle_and_busy_projects(
        self, admin_client, make_project, request_run, published
    ):
        """The idle ones start; the summary names the busy one with its message."""
        busy, idle, other = make_project(), make_project(), make_project()
        request_run(busy)
        response = self.act(admin_client, [busy, idle, other])
        [(level, text)] = shown_messages(response)
        assert level == "warning"
        active = ImportRun.objects.get(project=busy)
        started = ImportRun.objects.filter(project__in=[idle, other]).order_by("pk")
        assert text == (
            "2 imports were started. 1 was not started: "
            '<span class="busy-message">'
            + PROJECT_BUSY_MESSAGE.format(project_id=busy.pk)
            + f'</span> <a class="busy-run" href="/admin/imports/importrun/'
            f'{active.pk}/change/">open the active run #{active.pk}</a> Started: '
            + ", ".join(
                f'<a class="started-run" href="/admin/imports/importrun/{run.pk}'
                f'/change/">#{run.pk}</a>'
                for run in started
            )
        )
        assert ImportRun.objects.filter(project__in=[idle, other]).count() == 2
        assert published() == 3

    def test_needs_the_change_permission(self, view_only_client, make_project):
        """A viewer is offered no Import now, and a forged post starts nothing."""
        project = make_project()
        response = view_only_client.get(reverse("admin:imports_project_changelist"))
        assert response.context["action_form"] is None
        self.act(view_only_client, [project])
        assert not ImportRun.objects.exists()


class TestDetails:
    def test_last_runs_and_lock(self, admin_client, make_project, request_run):
        """The page lists the newest ten runs and who holds the project."""
        project = make_project()
        for _ in range(11):
            run = request_run(project)
            ImportRun.objects.filter(pk=run.pk).update(status="failed")
            # Free the lock the way a finished run would.
            from imports.locks import project_lock_force_release

            project_lock_force_release(project.pk)
        active = request_run(project)
        html = admin_client.get(change_url(project)).content.decode()
        listed = re.findall(r"<tr><td><a href='/admin/imports/importrun/(\d+)/", html)
        newest = ImportRun.objects.filter(project=project).order_by(
            "-created_at", "-id"
        )
        assert [int(pk) for pk in listed] == [run.pk for run in newest[:10]]
        assert active.pk == int(listed[0])
        active_url = f"/admin/imports/importrun/{active.pk}/change/"
        active_link = f'Importing: <a href="{active_url}"'
        assert active_link in html
        assert "All runs of this project" in html

    def test_schedule_is_shown_and_linked(self, admin_client, make_project):
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        project = make_project()
        html = admin_client.get(change_url(project)).content.decode()
        assert "No schedule." in html
        every = IntervalSchedule.objects.create(every=15, period="minutes")
        task = PeriodicTask.objects.create(
            name=f"import project {project.pk}",
            task="imports.project_import_scheduled",
            interval=every,
            kwargs=f'{{"project_id": {project.pk}}}',
        )
        html = admin_client.get(change_url(project)).content.decode()
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        assert f'<a href="{url}">every 15 minutes</a> (enabled' in html

    def test_the_deletion_limit_is_edited_with_its_help(
        self, admin_client, make_project
    ):
        """The project form shows the replace deletion limit and explains it."""
        project = make_project(replace_delete_limit=20)
        html = admin_client.get(change_url(project)).content.decode()
        assert 'name="replace_delete_limit" value="20"' in html
        assert "unless an operator confirms that run" in html

    def test_add_page_has_no_details(self, admin_client, make_connector):
        response = admin_client.get(reverse("admin:imports_project_add"))
        assert response.status_code == 200
        assert "project-import-now" not in response.content.decode()


class TestForceUnlock:
    def url(self, project) -> str:
        return reverse("admin:imports_project_force_unlock", args=[project.pk])

    def test_confirmation_then_unlock_recorded_with_who_and_why(
        self, admin_client, make_project, request_run
    ):
        """A confirmation page; then the run fails, the lock goes, all audited."""
        project = make_project()
        run = request_run(project)
        assert (
            'id="project-force-unlock"'
            in admin_client.get(change_url(project)).content.decode()
        )
        page = admin_client.get(self.url(project))
        assert page.status_code == 200
        html = page.content.decode()
        assert 'id="force-unlock-form"' in html
        assert f"#{run.pk}" in html
        assert "held by" in html

        response = admin_client.post(
            self.url(project), {"reason": "worker host died"}, follow=True
        )
        assert response.redirect_chain[-1][0] == change_url(project)
        assert shown_messages(response) == [
            (
                "success",
                f"Project “{project}” was force-unlocked; run #{run.pk} was "
                "marked failed.",
            )
        ]
        run.refresh_from_db()
        assert run.status == ImportRun.Status.FAILED
        assert project_lock_owner(project.pk) is None
        event = ProjectEvent.objects.get(project=project)
        assert (event.kind, event.actor, event.message) == (
            ProjectEvent.Kind.UNLOCKED,
            "admin",
            "worker host died",
        )
        entry = LogEntry.objects.get(object_id=str(project.pk))
        assert entry.action_flag == CHANGE
        assert entry.user.username == "admin"
        assert entry.change_message.endswith("worker host died")
        assert f"run #{run.pk}" in entry.change_message

    def test_a_reason_is_required(self, admin_client, make_project, request_run):
        project = make_project()
        run = request_run(project)
        response = admin_client.post(self.url(project), {"reason": "  "})
        assert response.status_code == 200
        assert "This field is required." in response.content.decode()
        run.refresh_from_db()
        assert run.is_active
        assert not ProjectEvent.objects.exists()
        assert not LogEntry.objects.exists()

    def test_idle_project(self, admin_client, make_project):
        project = make_project()
        response = admin_client.post(
            self.url(project), {"reason": "stale lock"}, follow=True
        )
        assert shown_messages(response) == [
            (
                "success",
                f"Project “{project}” was force-unlocked; it had no active run.",
            )
        ]


class TestFullRefresh:
    def test_the_action_requests_a_full_refresh_recorded_with_who(
        self, admin_client, make_project, published
    ):
        project = make_project()
        response = admin_client.post(
            reverse("admin:imports_project_changelist"),
            {"action": "full_refresh", "_selected_action": [project.pk]},
            follow=True,
        )
        assert response.status_code == 200
        run = ImportRun.objects.get(project=project)
        assert run.full_refresh and run.requested_by == "admin"
        requested = run.events.get(kind="requested")
        assert requested.data["full_refresh"] is True and requested.data["reason"]

    def test_the_run_page_shows_the_cursor(self, admin_client, make_project):
        project = make_project()
        run = ImportRun.objects.create(
            project=project,
            status=ImportRun.Status.SUCCEEDED,
            trigger="command",
            cursor_before={"field": "updated_at", "value": "2024-01-01"},
            cursor_after={"field": "updated_at", "value": "2024-02-01"},
        )
        url = reverse("admin:imports_importrun_change", args=[run.pk])
        html = admin_client.get(url).content.decode()
        assert "2024-01-01" in html and "2024-02-01" in html
        plain = ImportRun.objects.create(
            project=project, status=ImportRun.Status.FAILED, trigger="command"
        )
        url = reverse("admin:imports_importrun_change", args=[plain.pk])
        assert "cursor" not in admin_client.get(url).content.decode().lower()
