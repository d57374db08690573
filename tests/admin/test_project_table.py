"""The project page's destination settings and its Table panel: where the
table is, its rows, columns, schema changes and first rows, read only."""

import os
import subprocess
import sys

import psycopg
import pytest
from django.db import connection, transaction
from django.urls import reverse

from imports.loading import Target
from imports.models import Destination, ImportRun, Project
from imports.services import tables
from tests.conftest import ROOT

from .test_secrets import project_form_data

pytestmark = pytest.mark.django_db(transaction=True)

#: Set by the SQLite re-run of the panel's tests (the standalone mode).
ON_SQLITE = os.environ.get("IMPORTHUB_ADMIN_ON_SQLITE") == "1"
postgresql_only = pytest.mark.skipif(ON_SQLITE, reason="PostgreSQL's own means")


def change_url(project) -> str:
    return reverse("admin:imports_project_change", args=[project.pk])


def page(client, project) -> str:
    response = client.get(change_url(project))
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def table_project(make_project, write_csv):
    """A typed-table project reading a CSV of ``rows`` (id, name, amount)."""

    def make(rows=((1, "a", 10), (2, "b", 20), (3, "c", 30)), **fields):
        fields.setdefault("layout", Project.Layout.TABLE)
        return make_project(source={"path": str(write_csv(list(rows)))}, **fields)

    return make


def succeeded(run: ImportRun) -> ImportRun:
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    return run


class TestSettings:
    def test_the_destination_fieldset(self, admin_client, table_project):
        """The form groups where the data lands; the table in use is shown."""
        project = table_project()
        response = admin_client.get(change_url(project))
        fieldsets = response.context["adminform"].fieldsets
        assert fieldsets[1] == (
            "Destination table",
            {
                "fields": [
                    "layout",
                    "destination",
                    "table_name",
                    "table_label",
                    "schema_policy",
                    "column_types",
                    "null_markers",
                ]
            },
        )
        html = response.content.decode()
        assert f"importhub_data.{project.table_name}" in html
        assert "Empty to derive one from the name and id." in html

    def test_the_add_page_has_the_fieldset_and_no_panel(self, admin_client):
        response = admin_client.get(reverse("admin:imports_project_add"))
        fields = response.context["adminform"].fieldsets[1][1]["fields"]
        assert "table_label" not in fields and "layout" in fields
        assert 'id="project-table"' not in response.content.decode()

    def test_an_empty_table_name_is_derived(
        self, admin_client, make_connector, write_csv
    ):
        """Saved without a table name, a project gets one from its name."""
        response = admin_client.post(
            reverse("admin:imports_project_add"),
            {
                "name": "Sales EU",
                "connector": make_connector().pk,
                "source": '{"path": "/tmp/in.csv"}',
                "key_fields": '["id"]',
                "mode": "upsert",
                "replace_delete_limit": 50,
                "on_bad_row": "fail",
                "is_active": "on",
                "max_retries": 3,
                "layout": "table",
                "destination": "",
                "table_name": "",
                "schema_policy": "freeze",
                "column_types": '{"amount": "numeric"}',
                "null_markers": '["", "-"]',
            },
        )
        assert response.status_code == 302, response.content.decode()
        project = Project.objects.get(name="Sales EU")
        assert project.table_name == f"sales_eu_{project.pk}"
        assert project.schema_policy == "freeze"
        assert project.column_types == {"amount": "numeric"}
        assert project.null_markers == ["", "-"]

    def test_a_bad_table_name_is_refused(self, admin_client, table_project):
        project = table_project()
        data = project_form_data(project, project.source)
        data["table_name"] = 'x"; DROP TABLE y'
        response = admin_client.post(change_url(project), data)
        assert response.status_code == 200
        assert "table_name" in response.context["adminform"].form.errors


class TestPanel:
    def test_rows_columns_and_preview(self, admin_client, table_project, import_now):
        """After an import: the name, the exact count, typed columns (key
        and declared marked) and the first rows, system columns left out."""
        project = table_project(column_types={"amount": "numeric"})
        succeeded(import_now(project))
        html = page(admin_client, project)
        assert f'id="project-table-name">importhub_data.{project.table_name}<' in html
        assert "in the app's database" in html
        assert 'id="project-table-rows">3<' in html
        assert "<td><code>id</code></td><td>integer</td>" in html
        assert '<span class="importhub-tag importhub-key">key</span>' in html
        assert "declared: numeric" in html
        assert "<th>id</th><th>name</th><th>amount</th></tr>" in html
        assert "<tr><td>1</td><td>a</td><td>10</td></tr>" in html
        assert "_importhub_" not in html.split('id="project-table-preview"')[1]

    def test_a_viewer_sees_the_panel(self, view_only_client, table_project, import_now):
        project = table_project()
        succeeded(import_now(project))
        html = page(view_only_client, project)
        assert 'id="project-table-rows">3<' in html
        assert 'id="project-table-preview"' in html

    def test_values_and_names_are_escaped_and_quoted(
        self, admin_client, make_project, write_csv, import_now
    ):
        """Markup in a value or a column name shows as text; odd names are
        quoted in the preview's SELECT."""
        path = write_csv(
            [(1, "<script>alert(1)</script>", None)],
            header=("id", 'we"ird <b>name</b>', "select"),
        )
        project = make_project(source={"path": str(path)}, layout="table")
        succeeded(import_now(project))
        html = page(admin_client, project)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<th>we&quot;ird &lt;b&gt;name&lt;/b&gt;</th><th>select</th>" in html
        assert '<td class="importhub-null">NULL</td>' in html

    def test_before_the_first_import(self, admin_client, table_project):
        html = page(admin_client, table_project())
        assert 'id="project-table-missing"' in html
        assert "The table does not exist yet" in html
        assert 'id="project-table-preview"' not in html

    def test_a_records_project(self, admin_client, make_project):
        html = page(admin_client, make_project(layout="records"))
        assert 'id="project-table-records"' in html
        assert "<code>imports_record</code>" in html

    def test_schema_changes_newest_first(
        self, admin_client, table_project, import_now, write_csv
    ):
        """The last change links to its run; the history lists each."""
        project = table_project()
        succeeded(import_now(project))  # creates the table: no change
        runs = []
        for header in (("id", "name", "amount", "colour"), ("id", "size")):
            path = write_csv([(1, "a", "1.5", "x")[: len(header)]], header=header)
            project.source = {"path": str(path)}
            project.save(update_fields=["source"])
            runs.append(succeeded(import_now(project)))
        first, second = runs
        html = page(admin_client, project)
        last = html.split('id="project-table-last-change">')[1].split("</div>")[0]
        assert f'/admin/imports/importrun/{second.pk}/change/">run #{second.pk}' in last
        assert "column `size` added (text)" in last
        history = html.split('id="project-table-history">')[1].split("</ol>")[0]
        assert history.index(f"#{second.pk}</a>") < history.index(f"#{first.pk}</a>")
        assert "column `colour` added (text)" in history
        assert "column `amount` changed from integer to numeric" in history
        assert "<td><code>colour</code></td><td>text</td>" in html

    @postgresql_only
    def test_a_large_table_shows_an_estimate(
        self, admin_client, table_project, import_now, monkeypatch
    ):
        """Past the exact-count limit the planner's estimate is shown, as such."""
        project = table_project()
        succeeded(import_now(project))
        target = Target(project)
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {target.qualified(target.table)}")
        monkeypatch.setattr(tables, "EXACT_COUNT_LIMIT", 2)
        html = page(admin_client, project)
        assert 'data-estimated="true">about 3 (an estimate)<' in html

    @postgresql_only
    def test_the_read_leaves_no_read_only_transaction_behind(
        self, table_project, import_now
    ):
        """Inside a caller's transaction too, the read's settings end with it."""
        project = table_project()
        succeeded(import_now(project))
        with transaction.atomic():
            view = tables.project_table_view(project=project)
            Project.objects.filter(pk=project.pk).update(max_retries=7)
            with connection.cursor() as cursor:
                cursor.execute("SHOW statement_timeout")
                assert cursor.fetchone()[0] == "0"
        assert view.row_count == 3 and not view.problem
        project.refresh_from_db()
        assert project.max_retries == 7

    @postgresql_only
    def test_the_read_cannot_write(self, table_project, import_now):
        """The panel's transaction is read-only: a write in it fails."""
        project = table_project()
        succeeded(import_now(project))
        target = Target(project)
        with (
            pytest.raises(Exception, match="read-only transaction"),
            target.atomic(),
            target.cursor() as cursor,
        ):
            tables._read_only(cursor, target)
            cursor.execute(f"DELETE FROM {target.qualified(target.table)}")
        assert tables.project_table_view(project=project).row_count == 3


class TestDestination:
    def test_a_table_in_another_database(
        self, admin_client, table_project, import_now, destination_url
    ):
        destination = Destination.objects.create(
            name="warehouse", url=destination_url, schema="landing"
        )
        project = table_project(destination=destination)
        succeeded(import_now(project))
        html = page(admin_client, project)
        assert f'id="project-table-name">landing.{project.table_name}<' in html
        assert "in the destination “warehouse”" in html
        assert 'id="project-table-rows">3<' in html
        assert "<tr><td>3</td><td>c</td><td>30</td></tr>" in html
        # The page keeps no connection to the destination open.
        with psycopg.connect(destination_url) as other:
            [(count,)] = other.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        assert count == 0

    def test_an_unreachable_destination(
        self, admin_client, view_only_client, table_project
    ):
        """A clear message, no error page, no password; the database's own
        words only for those who may see destinations."""
        destination = Destination.objects.create(
            name="gone", url="postgresql://loader:pa55-w0rd-x@127.0.0.1:1/dwh"
        )
        project = table_project(destination=destination)
        project.table_columns = [{"name": "id", "type": "integer"}]
        project.save(update_fields=["table_columns"])
        for client, detail in ((admin_client, True), (view_only_client, False)):
            html = page(client, project)
            assert "pa55-w0rd-x" not in html
            problem = html.split('id="project-table-problem">')[1].split("</p>")[0]
            assert "The destination database cannot be reached" in problem
            assert ("127.0.0.1" in problem) is detail
            assert "<td><code>id</code></td><td>integer</td>" in html


def test_the_panel_speaks_russian(
    admin_client, table_project, import_now, write_csv, settings
):
    settings.LANGUAGE_CODE = "ru"
    project = table_project()
    succeeded(import_now(project))
    project.source = {"path": str(write_csv([(1, "x")], header=("id", "colour")))}
    project.save(update_fields=["source"])
    succeeded(import_now(project))
    html = page(admin_client, project)
    for text in (
        "Таблица назначения",
        "Используемая таблица",
        "Политика схемы",
        "в базе данных приложения",
        "Строк",
        "добавлен столбец `colour` (text)",
        "Первые 20 строк",
    ):
        assert text in html, text


@pytest.mark.skipif(ON_SQLITE, reason="this is the SQLite re-run itself")
def test_the_panel_works_on_sqlite(tmp_path, redis_prefix):
    """The settings and the panel's tests pass with the app on SQLite."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "IMPORTHUB_ADMIN_ON_SQLITE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        + [f"{__file__}::TestSettings", f"{__file__}::TestPanel"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
