"""A project's table settings: derived names, identifiers, declared types."""

import pytest
from django.core.exceptions import ValidationError

from imports.models import Project
from imports.models.projects import table_name_derive

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("name", "pk", "expected"),
    [
        ("Клиенты", 1, "klienty_1"),
        ("Sales EU (daily)", 12, "sales_eu_daily_12"),
        ("2024 orders", 3, "p_2024_orders_3"),
        ("!!!", 4, "project_4"),
        ("x" * 200, 5, "x" * 50 + "_5"),
    ],
)
def test_table_names_are_derived_readable_and_valid(name, pk, expected):
    assert table_name_derive(name, pk) == expected


def test_a_new_project_gets_a_table_name_once(make_project):
    project = make_project(name="Заказы", layout=Project.Layout.TABLE)
    assert project.table_name == f"zakazy_{project.pk}"
    project.name = "Orders"
    project.save()
    project.refresh_from_db()
    assert project.table_name == f"zakazy_{project.pk}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("table_name", "Bad-Name"),
        ("table_name", "x; DROP TABLE y"),
        ("column_types", {"amount": "money"}),
        ("column_types", ["amount"]),
        ("null_markers", "NA"),
    ],
)
def test_bad_table_settings_are_refused(make_project, field, value):
    project = make_project(layout=Project.Layout.TABLE)
    setattr(project, field, value)
    with pytest.raises(ValidationError) as caught:
        project.full_clean()
    assert field in caught.value.message_dict


def test_two_projects_cannot_share_a_table(make_project):
    first = make_project(layout=Project.Layout.TABLE)
    second = make_project(layout=Project.Layout.TABLE)
    second.table_name = first.table_name
    with pytest.raises(ValidationError, match="Another project"):
        second.full_clean()
