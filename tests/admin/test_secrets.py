"""Secrets never reach an admin page: forms, read-only pages, page source,
history. A secret is a connector's ``password`` (and the password in its SQL
URL) or a CSV/HTTP ``auth_token``, in a connector's config or a project's
source."""

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse

from connectors.secrets import MASK

pytestmark = pytest.mark.django_db(transaction=True)

URL_PASSWORD = "url-pa55word-9f3"
PASSWORD = "separate-pa55word-7c1"
TOKEN = "Bearer t0ken-4d2e-secret"
SECRETS = (URL_PASSWORD, PASSWORD, TOKEN, "t0ken-4d2e-secret")


def assert_no_secret(html: str) -> None:
    for secret in SECRETS:
        assert secret not in html


@pytest.fixture
def sql_connector(make_connector):
    return make_connector(
        kind="sql",
        config={
            "url": f"postgresql://reader:{URL_PASSWORD}@db.example.com:5432/sales",
            "password": PASSWORD,
            "statement_timeout_ms": 1000,
        },
    )


@pytest.fixture
def token_project(make_project):
    """A CSV project whose source carries its own auth token."""
    return make_project(
        source={
            "url": "https://files.example.com/export.csv",
            "auth_header": "Authorization",
            "auth_token": TOKEN,
        }
    )


def connector_url(connector) -> str:
    return reverse("admin:connectors_connector_change", args=[connector.pk])


def project_url(project) -> str:
    return reverse("admin:imports_project_change", args=[project.pk])


def history_url(obj) -> str:
    opts = obj._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[obj.pk])


def connector_form_data(connector, **config_changes) -> dict:
    return {
        "name": connector.name,
        "kind": connector.kind,
        "config": json.dumps({**MASKED_SQL_CONFIG, **config_changes}),
        "max_concurrent_imports": connector.max_concurrent_imports,
        "when_busy": connector.when_busy,
        "is_enabled": "on",
    }


MASKED_SQL_CONFIG = {
    "url": f"postgresql://reader:{MASK}@db.example.com:5432/sales",
    "password": MASK,
    "statement_timeout_ms": 1000,
}


def project_form_data(project, source) -> dict:
    return {
        "name": project.name,
        "connector": project.connector_id,
        "source": json.dumps(source),
        "key_fields": json.dumps(project.key_fields),
        "mode": project.mode,
        "replace_delete_limit": project.replace_delete_limit,
        "on_bad_row": project.on_bad_row,
        "is_active": "on",
        "max_retries": project.max_retries,
        "layout": project.layout,
        "destination": project.destination_id or "",
        "table_name": project.table_name,
        "schema_policy": project.schema_policy,
        "column_types": json.dumps(project.column_types),
        "null_markers": json.dumps(project.null_markers),
    }


class TestConnector:
    def test_editor_and_viewer_pages(
        self, admin_client, view_only_client, sql_connector
    ):
        """The form shows placeholders; the viewer's page a masked copy."""
        for client in (admin_client, view_only_client):
            html = client.get(connector_url(sql_connector)).content.decode()
            assert_no_secret(html)
            assert MASK in html
        listing = admin_client.get(reverse("admin:connectors_connector_changelist"))
        assert_no_secret(listing.content.decode())

    def test_an_edit_keeps_the_secrets_and_history_names_no_value(
        self, admin_client, sql_connector
    ):
        """Placeholders sent back keep the stored secrets; the history entry
        and its page name the changed field, never a value."""
        response = admin_client.post(
            connector_url(sql_connector),
            connector_form_data(sql_connector, statement_timeout_ms=2000),
        )
        assert response.status_code == 302, response.content.decode()
        sql_connector.refresh_from_db()
        assert sql_connector.config["password"] == PASSWORD
        assert URL_PASSWORD in sql_connector.config["url"]
        assert sql_connector.config["statement_timeout_ms"] == 2000
        entry = LogEntry.objects.get(object_id=str(sql_connector.pk))
        assert_no_secret(entry.change_message + entry.object_repr)
        html = admin_client.get(history_url(sql_connector)).content.decode()
        assert "Config" in html or "config" in html
        assert_no_secret(html)

    def test_a_refused_edit_shows_no_secret(self, admin_client, sql_connector):
        """A form sent back with an error still shows only placeholders."""
        data = connector_form_data(sql_connector)
        data["max_concurrent_imports"] = "0"
        response = admin_client.post(connector_url(sql_connector), data)
        assert response.status_code == 200
        html = response.content.decode()
        assert "errornote" in html
        assert_no_secret(html)


class TestProjectSource:
    def test_editor_and_viewer_pages(
        self, admin_client, view_only_client, token_project
    ):
        """A source's token is masked on the form and on the read-only page."""
        for client in (admin_client, view_only_client):
            html = client.get(project_url(token_project)).content.decode()
            assert_no_secret(html)
            assert MASK in html
            assert "files.example.com/export.csv" in html

    def test_the_placeholder_keeps_the_token(self, admin_client, token_project):
        source = {**token_project.source, "auth_token": MASK, "delimiter": ";"}
        response = admin_client.post(
            project_url(token_project), project_form_data(token_project, source)
        )
        assert response.status_code == 302, response.content.decode()
        token_project.refresh_from_db()
        assert token_project.source["auth_token"] == TOKEN
        assert token_project.source["delimiter"] == ";"
        entry = LogEntry.objects.get(object_id=str(token_project.pk))
        assert_no_secret(entry.change_message)
        assert_no_secret(admin_client.get(history_url(token_project)).content.decode())

    def test_a_placeholder_with_nothing_stored_is_refused(
        self, admin_client, make_project
    ):
        project = make_project(source={"url": "https://files.example.com/a.csv"})
        source = {**project.source, "auth_token": MASK}
        response = admin_client.post(
            project_url(project), project_form_data(project, source)
        )
        assert response.status_code == 200
        assert "no secret is stored for the placeholder" in response.content.decode()
        project.refresh_from_db()
        assert "auth_token" not in project.source


class TestListLookups:
    """A list filtered on a secret would answer "does it start with…?", one
    character at a time, to anyone who may view the list."""

    @pytest.mark.parametrize(
        ("changelist", "lookup"),
        [
            ("admin:connectors_connector_changelist", "config__password__startswith"),
            ("admin:connectors_connector_changelist", "config__url__contains"),
            ("admin:imports_project_changelist", "source__auth_token__startswith"),
            ("admin:imports_importrun_changelist", "project__source__auth_token"),
            (
                "admin:imports_importrun_changelist",
                "project__connector__config__password",
            ),
        ],
    )
    def test_are_refused(
        self, view_only_client, sql_connector, token_project, changelist, lookup
    ):
        response = view_only_client.get(reverse(changelist), {lookup: "s"})
        assert response.status_code == 400

    def test_other_lookups_still_work(self, view_only_client, sql_connector):
        response = view_only_client.get(
            reverse("admin:connectors_connector_changelist"), {"kind__exact": "sql"}
        )
        assert response.status_code == 200
        assert response.context["cl"].result_count == 1
