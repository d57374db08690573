"""The project form refuses settings that would fail on a worker."""

import pytest

from imports.admin.forms import ProjectAdminForm
from imports.exceptions import ProjectNotImportable
from imports.models import ImportRun, Project
from imports.services.guard import import_run_request

pytestmark = pytest.mark.django_db


def form_data(connector, **overrides):
    data = {
        "name": "p",
        "connector": connector.pk,
        "source": '{"path": "/data/in.csv"}',
        "key_fields": '["id"]',
        "mode": Project.Mode.UPSERT,
        "replace_delete_limit": 50,
        "on_bad_row": Project.OnBadRow.FAIL,
        "is_active": True,
        "max_retries": 3,
        "layout": Project.Layout.TABLE,
        "destination": "",
        "table_name": "",
        "schema_policy": Project.SchemaPolicy.EVOLVE,
        "column_types": "{}",
        "null_markers": '["", "NA"]',
    }
    data.update(overrides)
    return data


def test_valid_project_is_accepted(make_connector):
    """A CSV project with a path and a key field is valid."""
    form = ProjectAdminForm(data=form_data(make_connector()))
    assert form.is_valid(), form.errors


def test_missing_source_path_is_a_form_error(make_connector):
    """A CSV project with no path gets an error on its source."""
    form = ProjectAdminForm(data=form_data(make_connector(), source="{}"))
    assert not form.is_valid()
    assert "path" in " ".join(form.errors["source"])


def test_keyless_project_must_replace(make_connector):
    """Without key fields, only the replace mode is allowed."""
    connector = make_connector()
    form = ProjectAdminForm(data=form_data(connector, key_fields="[]"))
    assert form.errors["key_fields"] == [
        "A project without key fields must use the replace mode."
    ]
    form = ProjectAdminForm(
        data=form_data(connector, key_fields="[]", mode=Project.Mode.REPLACE)
    )
    assert form.is_valid(), form.errors


@pytest.mark.parametrize("key_fields", ['"id"', "[1, 2]", '["id", "id"]', '[""]'])
def test_malformed_key_fields_are_refused(make_connector, key_fields):
    """Key fields must be a list of distinct, non-empty column names."""
    form = ProjectAdminForm(data=form_data(make_connector(), key_fields=key_fields))
    assert "key_fields" in form.errors


def test_the_guard_refuses_settings_saved_past_the_form(make_project):
    """A project saved with an invalid source is refused before dispatch."""
    project = make_project(source={}, key_fields=["id"])
    with pytest.raises(ProjectNotImportable) as excinfo:
        import_run_request(project=project, requested_by="t", trigger="command")
    assert "path" in str(excinfo.value)
    assert not ImportRun.objects.exists()


@pytest.mark.parametrize(("limit", "valid"), [(0, True), (100, True), (101, False)])
def test_the_deletion_limit_is_a_share(make_connector, limit, valid):
    """The replace deletion limit is a percentage, 0 to 100."""
    form = ProjectAdminForm(
        data=form_data(
            make_connector(), mode=Project.Mode.REPLACE, replace_delete_limit=limit
        )
    )
    assert form.is_valid() is valid, form.errors
    if not valid:
        assert "replace_delete_limit" in form.errors
