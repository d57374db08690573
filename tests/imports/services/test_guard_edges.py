"""The guard at the edges: a run just ended, a deletion confirmed."""

import pytest
from django.core.exceptions import ValidationError

from imports.exceptions import ProjectBusy
from imports.locks import project_lock, project_lock_owner
from imports.models import ImportRun, Project
from imports.services.guard import import_run_request
from imports.services.slots import run_slot_release
from imports.services.transitions import FAIL, START
from tests.conftest import end_run

pytestmark = pytest.mark.django_db(transaction=True)


def request_import(project, **kwargs):
    return import_run_request(
        project=project, requested_by="tester", trigger="command", **kwargs
    )


def test_a_run_ended_but_not_released_is_named_until_its_lock_frees(make_project):
    """The run is final but its worker has not released the lock yet (the
    few milliseconds between the two). A refusal reads no database, so the
    request is refused naming that run, from the lock's value alone; once
    the worker releases the lock, the next request is accepted."""
    project = make_project()
    first = request_import(project)
    START.apply(first, actor="worker", fencing_token=first.fencing_token)
    FAIL.apply(first, actor="worker", error_class="X", error_message="boom")
    assert project_lock_owner(project.pk) == first.lock_token  # not released
    with pytest.raises(ProjectBusy) as refused:
        request_import(project)
    assert refused.value.active_run_id == first.pk
    assert project_lock(project.pk, token=first.lock_token).release()
    run_slot_release(connector_id=project.connector_id, token=first.lock_token)
    second = request_import(project)
    assert second.status == ImportRun.Status.QUEUED
    assert project_lock_owner(project.pk) == second.lock_token


def test_a_lock_in_flight_is_not_taken_as_free(make_project):
    """A lock whose run is not written yet (a request between its take and
    its commit) names no finished run: the project stays busy."""
    project = make_project()
    project_lock(project.pk, token="a request in flight", ttl=30).acquire()
    with pytest.raises(ProjectBusy):
        request_import(project)
    assert project_lock_owner(project.pk) == "a request in flight"


def test_a_confirmed_request_is_recorded(make_project):
    project = make_project()
    run = request_import(project, confirm_deletions=True)
    assert ImportRun.objects.get(pk=run.pk).deletions_confirmed
    requested = run.events.get(kind="requested")
    assert requested.data["confirm_deletions"] is True
    end_run(run, ImportRun.Status.SUCCEEDED)
    assert not request_import(project).deletions_confirmed


class TestProjectValidation:
    """The model refuses what the admin's form refuses, whoever saves."""

    @pytest.mark.parametrize(
        ("fields", "field"),
        [
            ({"key_fields": "id"}, "key_fields"),
            ({"key_fields": ["id", ""]}, "key_fields"),
            ({"key_fields": [1]}, "key_fields"),
            ({"key_fields": ["id", "id"]}, "key_fields"),
            ({"key_fields": [], "mode": "upsert"}, "key_fields"),
            ({"source": {}}, "source"),
            ({"source": ["path"]}, "source"),
        ],
    )
    def test_full_clean_refuses(self, make_connector, fields, field):
        project = Project(
            name="p",
            connector=make_connector(),
            source=fields.pop("source", {"path": "/tmp/x.csv"}),
            key_fields=fields.pop("key_fields", ["id"]),
            **fields,
        )
        with pytest.raises(ValidationError) as excinfo:
            project.full_clean()
        assert field in excinfo.value.message_dict

    def test_full_clean_accepts_a_valid_project(self, make_connector):
        Project(
            name="p",
            connector=make_connector(),
            source={"path": "/tmp/x.csv"},
            key_fields=["id"],
        ).full_clean()
