"""View-only staff change nothing; each operation needs its own permission;
every operation is CSRF-protected."""

import pytest
from django.contrib.auth.models import Permission
from django.middleware.csrf import get_token
from django.test import Client
from django.urls import reverse

from imports.models import ImportRun, ProjectEvent

from .conftest import VIEW_ONLY

pytestmark = pytest.mark.django_db(transaction=True)


def run_url(run) -> str:
    return reverse("admin:imports_importrun_change", args=[run.pk])


def project_url(project) -> str:
    return reverse("admin:imports_project_change", args=[project.pk])


def action_names(client) -> set[str]:
    response = client.get(reverse("admin:imports_importrun_changelist"))
    form = response.context["action_form"]
    if form is None:  # no action at all: the admin renders no form
        return set()
    return {name for name, _ in form.fields["action"].choices if name}


class TestViewOnly:
    def test_sees_everything(
        self, view_only_client, failed_run, make_project, request_run
    ):
        """Runs, the run page, projects, connectors and the dashboard open."""
        failed = failed_run()
        active = request_run(make_project())
        urls = [
            reverse("admin:index"),
            reverse("admin:imports_importrun_changelist") + "?view=active",
            run_url(failed),
            run_url(active),
            project_url(active.project),
            reverse(
                "admin:connectors_connector_change", args=[active.project.connector_id]
            ),
            reverse("admin:importhub_dashboard"),
        ]
        for url in urls:
            assert view_only_client.get(url).status_code == 200, url

    def test_no_buttons_and_no_actions(
        self, view_only_client, failed_run, make_project, request_run
    ):
        """No Retry, Cancel, Import now or Force unlock; no bulk actions."""
        failed = failed_run()
        active = request_run(make_project())
        assert (
            'id="run-retry"'
            not in view_only_client.get(run_url(failed)).content.decode()
        )
        assert (
            'id="run-cancel"'
            not in view_only_client.get(run_url(active)).content.decode()
        )
        html = view_only_client.get(project_url(active.project)).content.decode()
        assert 'id="project-import-now"' not in html
        assert 'id="project-force-unlock"' not in html
        assert action_names(view_only_client) == set()

    def test_every_post_is_forbidden(
        self, view_only_client, failed_run, make_project, request_run
    ):
        """Retry, cancel, import and force-unlock answer 403 and change nothing."""
        failed = failed_run()
        active = request_run(make_project())
        posts = [
            reverse("admin:imports_importrun_retry", args=[failed.pk]),
            reverse("admin:imports_importrun_retry_deletions", args=[failed.pk]),
            reverse("admin:imports_importrun_cancel", args=[active.pk]),
            reverse("admin:imports_project_import", args=[failed.project_id]),
            reverse("admin:imports_project_force_unlock", args=[active.project_id]),
        ]
        for url in posts:
            response = view_only_client.post(url, {"reason": "x"})
            assert response.status_code == 403, url
        assert view_only_client.get(posts[-1]).status_code == 403
        assert ImportRun.objects.count() == 2
        active.refresh_from_db()
        assert active.is_active
        assert not ProjectEvent.objects.exists()

    def test_bulk_actions_do_nothing(
        self, view_only_client, failed_run, make_project, request_run
    ):
        """Forged posts of every bulk action change nothing."""
        failed = failed_run()
        active = request_run(make_project())
        idle = make_project()
        posts = [
            ("importrun", "retry_selected", failed),
            ("importrun", "cancel_selected", active),
            ("project", "import_now", idle),
        ]
        for model, action, obj in posts:
            response = view_only_client.post(
                reverse(f"admin:imports_{model}_changelist"),
                {"action": action, "_selected_action": [obj.pk]},
            )
            assert response.status_code in (200, 302, 403), action
        assert not ImportRun.objects.filter(retry_of=failed).exists()
        active.refresh_from_db()
        assert active.is_active
        assert not ImportRun.objects.filter(project=idle).exists()


class TestOwnPermissions:
    def test_retry_only(self, staff_client, failed_run, make_project, request_run):
        """retry_importrun allows Retry, not Cancel."""
        client = staff_client(*VIEW_ONLY, "retry_importrun")
        failed = failed_run()
        active = request_run(make_project())
        assert 'id="run-retry"' in client.get(run_url(failed)).content.decode()
        assert 'id="run-cancel"' not in client.get(run_url(active)).content.decode()
        assert action_names(client) == {"retry_selected"}
        cancel = reverse("admin:imports_importrun_cancel", args=[active.pk])
        assert client.post(cancel).status_code == 403
        client.post(
            reverse("admin:imports_importrun_changelist"),
            {"action": "cancel_selected", "_selected_action": [active.pk]},
        )
        active.refresh_from_db()
        assert active.is_active
        retry = reverse("admin:imports_importrun_retry", args=[failed.pk])
        assert client.post(retry).status_code == 302
        assert ImportRun.objects.filter(retry_of=failed).exists()

    def test_cancel_only(self, staff_client, failed_run, make_project, request_run):
        """cancel_importrun allows Cancel, not Retry."""
        client = staff_client(*VIEW_ONLY, "cancel_importrun")
        failed = failed_run()
        active = request_run(make_project())
        assert 'id="run-retry"' not in client.get(run_url(failed)).content.decode()
        assert 'id="run-cancel"' in client.get(run_url(active)).content.decode()
        assert action_names(client) == {"cancel_selected"}
        retry = reverse("admin:imports_importrun_retry", args=[failed.pk])
        assert client.post(retry).status_code == 403
        client.post(
            reverse("admin:imports_importrun_changelist"),
            {"action": "retry_selected", "_selected_action": [failed.pk]},
        )
        assert not ImportRun.objects.filter(retry_of=failed).exists()
        cancel = reverse("admin:imports_importrun_cancel", args=[active.pk])
        assert client.post(cancel).status_code == 302
        active.refresh_from_db()
        assert active.status == ImportRun.Status.CANCELLED

    def test_force_unlock_needs_its_own_permission(
        self, staff_client, make_project, request_run
    ):
        """Changing projects is not enough to force-unlock one."""
        editor = staff_client(*VIEW_ONLY, "change_project", username="editor")
        project = make_project()
        request_run(project)
        url = reverse("admin:imports_project_force_unlock", args=[project.pk])
        html = editor.get(project_url(project)).content.decode()
        assert 'id="project-import-now"' in html
        assert 'id="project-force-unlock"' not in html
        assert editor.post(url, {"reason": "x"}).status_code == 403

        unlocker = staff_client(*VIEW_ONLY, "force_unlock_project", username="ops")
        html = unlocker.get(project_url(project)).content.decode()
        assert 'id="project-force-unlock"' in html
        assert 'id="project-import-now"' not in html
        assert unlocker.post(url, {"reason": "stuck"}).status_code == 302
        assert ProjectEvent.objects.get(project=project).actor == "ops"

    def test_the_permissions_exist(self):
        codenames = set(Permission.objects.values_list("codename", flat=True))
        assert {
            "retry_importrun",
            "cancel_importrun",
            "force_unlock_project",
        } <= codenames


class TestCsrf:
    @pytest.fixture
    def csrf_client(self, admin_user):
        client = Client(enforce_csrf_checks=True)
        client.force_login(admin_user)
        return client

    def test_every_post_needs_the_token(
        self, csrf_client, failed_run, make_project, request_run
    ):
        """Without the CSRF token every operation is refused with 403."""
        failed = failed_run()
        active = request_run(make_project())
        idle = make_project()
        posts = [
            (reverse("admin:imports_importrun_retry", args=[failed.pk]), {}),
            (reverse("admin:imports_importrun_cancel", args=[active.pk]), {}),
            (reverse("admin:imports_project_import", args=[idle.pk]), {}),
            (
                reverse("admin:imports_project_force_unlock", args=[active.project_id]),
                {"reason": "x"},
            ),
            (
                reverse("admin:imports_importrun_changelist"),
                {"action": "retry_selected", "_selected_action": [failed.pk]},
            ),
            (
                reverse("admin:imports_importrun_changelist"),
                {"action": "cancel_selected", "_selected_action": [active.pk]},
            ),
            (
                reverse("admin:imports_project_changelist"),
                {"action": "import_now", "_selected_action": [idle.pk]},
            ),
            (reverse("admin:imports_importrun_retry_deletions", args=[failed.pk]), {}),
            (
                reverse("admin:imports_project_change", args=[idle.pk]),
                {"name": "renamed", "_save": "Save"},
            ),
            (
                reverse("admin:connectors_connector_change", args=[idle.connector_id]),
                {"name": "renamed", "_save": "Save"},
            ),
        ]
        for url, data in posts:
            response = csrf_client.post(url, data)
            assert response.status_code == 403, url
            assert b"CSRF" in response.content
        assert ImportRun.objects.count() == 2
        active.refresh_from_db()
        assert active.is_active
        idle.refresh_from_db()
        assert idle.name != "renamed" and idle.connector.name != "renamed"

    def test_with_the_token_it_works(self, csrf_client, failed_run):
        failed = failed_run()
        page = csrf_client.get(run_url(failed))
        token = get_token(page.wsgi_request)
        response = csrf_client.post(
            reverse("admin:imports_importrun_retry", args=[failed.pk]),
            {"csrfmiddlewaretoken": token},
        )
        assert response.status_code == 302
        assert ImportRun.objects.filter(retry_of=failed).exists()
