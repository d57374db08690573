"""The bulk endpoint: many projects in one request, each answered on its own."""

import pytest

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.models import ImportRun
from imports.services.guard import import_run_request
from tests.api.http import http
from tests.api.test_api import make_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def api(live_server):
    return f"{live_server.url}/api/imports"


def test_each_project_gets_its_own_answer(api, make_project, make_connector, published):
    token = make_token("bulk", "imports.add_importrun")
    idle, busy, inactive = make_project(), make_project(), make_project(is_active=False)
    first = import_run_request(project=busy, requested_by="first", trigger="command")
    ids = [idle.pk, busy.pk, 999999, inactive.pk, idle.pk]
    response = http("POST", api, token=token, body={"projects": ids, "reason": "r"})
    assert response.status == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 3)
    results = {result["project"]: result for result in body["results"]}
    assert [result["project"] for result in body["results"]] == ids[:4]
    run = ImportRun.objects.get(project=idle)
    assert results[idle.pk]["status"] == "accepted"
    assert results[idle.pk]["run"]["id"] == run.pk
    assert results[idle.pk]["run"]["trigger"] == "api"
    assert results[busy.pk] == {
        "project": busy.pk,
        "status": "busy",
        "detail": PROJECT_BUSY_MESSAGE.format(project_id=busy.pk),
        "active_run": first.pk,
    }
    assert results[999999]["status"] == "not_found"
    assert results[inactive.pk]["status"] == "rejected"
    assert results[inactive.pk]["code"] == "project_not_importable"
    assert run.events.get(kind="requested").data["reason"] == "r"
    assert published() == 2  # the first request's and the idle project's


def test_bad_bodies_are_400_and_start_nothing(api, make_project, published):
    token = make_token("bulk", "imports.add_importrun")
    project = make_project()
    for body in ({}, {"projects": []}, {"projects": ["x"]}, {"projects": [0]}):
        response = http("POST", api, token=token, body=body)
        assert response.status == 400, body
    too_many = {"projects": [project.pk] * 1001}
    assert http("POST", api, token=token, body=too_many).status == 400
    assert not ImportRun.objects.exists()
    assert published() == 0


def test_the_permission_to_start_imports_is_needed(api, make_project, published):
    token = make_token("viewer", "imports.view_importrun")
    project = make_project()
    response = http("POST", api, token=token, body={"projects": [project.pk]})
    assert response.status == 403
    assert not ImportRun.objects.exists()
