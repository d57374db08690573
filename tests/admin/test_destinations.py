"""Destinations in the admin: their password is never shown back, and
whoever may edit projects but not destinations picks one by name only."""

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from connectors.secrets import MASK
from imports.models import Destination

from .test_secrets import project_form_data

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "dest-pa55word-e81"
URL = f"postgresql://loader:{PASSWORD}@dwh.example.com:5432/warehouse"
MASKED_URL = f"postgresql://loader:{MASK}@dwh.example.com:5432/warehouse"


@pytest.fixture
def destination():
    return Destination.objects.create(name="warehouse", url=URL, schema="landing")


def change_url(destination) -> str:
    return reverse("admin:imports_destination_change", args=[destination.pk])


def form_data(**changes) -> dict:
    return {"name": "warehouse", "url": MASKED_URL, "schema": "landing", **changes}


class TestList:
    def test_names_masked_urls_schemas_and_projects(
        self, admin_client, destination, make_project
    ):
        make_project(destination=destination)
        make_project(destination=destination)
        Destination.objects.create(name="lake", url="postgresql://u@lake/db")
        response = admin_client.get(reverse("admin:imports_destination_changelist"))
        html = response.content.decode()
        assert PASSWORD not in html
        assert MASKED_URL in html
        assert "importhub_data (default)" in html
        rows = {d.name: (d.projects_count,) for d in response.context["cl"].result_list}
        assert rows == {"warehouse": (2,), "lake": (0,)}

    def test_no_lookup_on_the_url(self, admin_client, destination):
        """A list filtered on the URL would spell out the password."""
        response = admin_client.get(
            reverse("admin:imports_destination_changelist"),
            {"url__contains": PASSWORD[:4]},
        )
        assert response.status_code == 400


class TestChangeForm:
    def test_the_form_shows_the_url_masked(self, admin_client, destination):
        html = admin_client.get(change_url(destination)).content.decode()
        assert PASSWORD not in html
        assert f'value="{MASKED_URL}"' in html

    def test_the_placeholder_keeps_the_password(self, admin_client, destination):
        response = admin_client.post(
            change_url(destination), form_data(schema="landing2")
        )
        assert response.status_code == 302, response.content.decode()
        destination.refresh_from_db()
        assert destination.url == URL
        assert destination.schema == "landing2"
        entry = LogEntry.objects.get(object_id=str(destination.pk))
        assert PASSWORD not in entry.change_message
        assert "url" not in entry.change_message.lower()

    def test_a_new_password_replaces_it(self, admin_client, destination):
        url = "postgresql://loader:n3w-pass@dwh.example.com:5432/warehouse"
        response = admin_client.post(change_url(destination), form_data(url=url))
        assert response.status_code == 302
        destination.refresh_from_db()
        assert destination.url == url

    @pytest.mark.parametrize(
        "url",
        [
            f"postgresql://loader:{MASK}@evil.example.com:5432/warehouse",
            f"postgresql://loader:{MASK}@dwh.example.com:6543/warehouse",
            f"postgresql://admin:{MASK}@dwh.example.com:5432/warehouse",
        ],
    )
    def test_the_password_does_not_follow_a_new_host(
        self, admin_client, destination, url
    ):
        """The stored password is kept for the same host, port and user only."""
        response = admin_client.post(change_url(destination), form_data(url=url))
        assert response.status_code == 200
        errors = response.context["adminform"].form.errors["url"]
        assert "enter the password again" in errors[0]
        destination.refresh_from_db()
        assert destination.url == URL

    def test_a_placeholder_with_nothing_stored_is_refused(self, admin_client):
        response = admin_client.post(
            reverse("admin:imports_destination_add"), form_data()
        )
        assert response.status_code == 200
        assert "No password is stored" in str(
            response.context["adminform"].form.errors["url"]
        )
        assert not Destination.objects.exists()

    def test_the_page_lists_its_projects(self, admin_client, destination, make_project):
        project = make_project(destination=destination)
        html = admin_client.get(change_url(destination)).content.decode()
        url = reverse("admin:imports_project_change", args=[project.pk])
        assert f'<a href="{url}">{project.name}</a>' in html


class TestPermissions:
    def test_a_viewer_sees_the_url_masked(self, staff_client, destination):
        client = staff_client("view_destination")
        response = client.get(change_url(destination))
        assert response.status_code == 200
        html = response.content.decode()
        assert PASSWORD not in html
        assert MASKED_URL in html
        assert 'name="url"' not in html

    def test_a_project_editor_picks_a_destination_by_name(
        self, staff_client, destination, make_project
    ):
        """May edit projects, not destinations: the select offers names, no
        page of the destination opens, and nothing shows its URL."""
        client = staff_client("view_project", "change_project", "view_connector")
        project = make_project()
        page = client.get(reverse("admin:imports_project_change", args=[project.pk]))
        html = page.content.decode()
        assert f'<option value="{destination.pk}">warehouse</option>' in html
        assert "dwh.example.com" not in html and PASSWORD not in html
        assert reverse("admin:imports_destination_add") not in html
        assert change_url(destination) not in html
        for url in (
            change_url(destination),
            reverse("admin:imports_destination_changelist"),
        ):
            assert client.get(url).status_code == 403
        response = client.post(
            reverse("admin:imports_project_change", args=[project.pk]),
            {
                **project_form_data(project, project.source),
                "destination": destination.pk,
            },
        )
        assert response.status_code == 302, response.content.decode()
        project.refresh_from_db()
        assert project.destination == destination
        page = client.get(reverse("admin:imports_project_change", args=[project.pk]))
        assert PASSWORD not in page.content.decode()
        assert "dwh.example.com" not in page.content.decode()

    def test_no_destination_rights_no_edit(self, staff_client, destination):
        client = staff_client("view_destination")
        response = client.post(change_url(destination), form_data(schema="other"))
        assert response.status_code == 403
        destination.refresh_from_db()
        assert destination.schema == "landing"
