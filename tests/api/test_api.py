"""The HTTP API, exercised over real HTTP against a live server."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.models import ImportRun
from imports.services.guard import import_run_request
from tests.api.http import http

pytestmark = pytest.mark.django_db(transaction=True)


def make_token(username: str, *perms: str) -> str:
    user = get_user_model().objects.create_user(username=username)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return Token.objects.create(user=user).key


@pytest.fixture
def api(live_server):
    def url(path: str) -> str:
        return f"{live_server.url}/api/{path}"

    return url


@pytest.fixture
def token(db):
    return make_token("importer", "imports.add_importrun")


class TestStartImport:
    def test_idle_project_is_accepted_with_202_and_the_run(
        self, api, token, make_project, published
    ):
        """POST starts one run and answers 202 with it and a Location."""
        project = make_project()
        response = http("POST", api(f"projects/{project.pk}/imports"), token=token)
        assert response.status == 202, response.text
        body = response.json()
        run = ImportRun.objects.get(project=project)
        assert body["id"] == run.pk
        assert body["project"] == project.pk
        assert body["status"] == "queued"
        assert body["trigger"] == "api"
        assert body["requested_by"] == "importer"
        assert body["attempt"] == 1
        assert body["counts"] == {
            "read": 0,
            "inserted": 0,
            "updated": 0,
            "unchanged": 0,
            "deleted": 0,
            "rejected": 0,
            "duplicates": 0,
        }
        assert body["links"]["self"] == f"/api/runs/{run.pk}"
        assert response.headers["Location"] == f"/api/runs/{run.pk}"
        assert run.trigger == ImportRun.Trigger.API
        assert run.requested_by == "importer"
        assert published() == 1

    def test_busy_project_is_409_with_the_message_and_the_active_run(
        self, api, token, make_project, published
    ):
        """A busy project answers 409 with the exact message; nothing is sent."""
        project = make_project()
        first = import_run_request(
            project=project, requested_by="first", trigger="command"
        )
        response = http("POST", api(f"projects/{project.pk}/imports"), token=token)
        assert response.status == 409
        assert response.json() == {
            "detail": PROJECT_BUSY_MESSAGE.format(project_id=project.pk),
            "active_run": first.pk,
        }
        # The exact bytes: UTF-8 Cyrillic, not \u escapes.
        assert "уже обновляется".encode() in response.body
        assert ImportRun.objects.filter(project=project).count() == 1
        assert published() == 1

    def test_unknown_project_is_404(self, api, token, published):
        """An unknown project answers 404 and starts nothing."""
        response = http("POST", api("projects/999999/imports"), token=token)
        assert response.status == 404
        assert "detail" in response.json()
        assert published() == 0

    def test_inactive_project_is_refused_with_its_code(
        self, api, token, make_project, published
    ):
        """Other refusals carry the error's status, message and code."""
        project = make_project(is_active=False)
        response = http("POST", api(f"projects/{project.pk}/imports"), token=token)
        assert response.status == 409
        body = response.json()
        assert body["code"] == "project_not_importable"
        assert str(project.pk) in body["detail"]
        assert published() == 0

    def test_a_body_is_not_needed_but_json_is_accepted(self, api, token, make_project):
        """A JSON body (ignored) does not change the outcome."""
        project = make_project()
        response = http(
            "POST", api(f"projects/{project.pk}/imports"), token=token, body={}
        )
        assert response.status == 202

    def test_a_full_refresh_is_requested_with_its_reason(
        self, api, token, make_project
    ):
        project = make_project()
        response = http(
            "POST",
            api(f"projects/{project.pk}/imports"),
            token=token,
            body={"full_refresh": True, "reason": "the source was rebuilt"},
        )
        assert response.status == 202
        run = ImportRun.objects.get(project=project)
        assert run.full_refresh
        event = run.events.get(kind="requested")
        assert event.data["reason"] == "the source was rebuilt"


class TestAuthentication:
    def test_no_token_is_401(self, api, make_project, published):
        """Without a token the answer is 401 and names the scheme."""
        project = make_project()
        response = http("POST", api(f"projects/{project.pk}/imports"))
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Token"
        assert published() == 0
        assert not ImportRun.objects.exists()

    def test_bad_token_is_401(self, api, make_project):
        """An unknown token is 401."""
        project = make_project()
        response = http("POST", api(f"projects/{project.pk}/imports"), token="nope")
        assert response.status == 401

    def test_token_without_the_permission_is_403(self, api, make_project, published):
        """A user without imports.add_importrun may not start imports."""
        project = make_project()
        reader = make_token("reader", "imports.view_importrun")
        response = http("POST", api(f"projects/{project.pk}/imports"), token=reader)
        assert response.status == 403
        assert published() == 0
        assert not ImportRun.objects.exists()

    def test_reading_needs_a_permission(self, api, make_project):
        """A user with no permission at all cannot read runs (403)."""
        project = make_project()
        run = import_run_request(project=project, requested_by="x", trigger="command")
        nobody = make_token("nobody")
        assert http("GET", api(f"runs/{run.pk}"), token=nobody).status == 403
        assert http("GET", api(f"runs/{run.pk}")).status == 401

    def test_session_login_does_not_authenticate_the_api(
        self, api, admin_client, make_project, live_server
    ):
        """Only tokens authenticate: an admin's session cookie is not enough."""
        project = make_project()
        cookie = admin_client.cookies["sessionid"].value
        response = http(
            "POST",
            api(f"projects/{project.pk}/imports"),
            headers={"Cookie": f"sessionid={cookie}"},
        )
        assert response.status == 401


class TestReadRuns:
    def test_run_detail(self, api, token, make_project):
        """GET /api/runs/<id> shows the run."""
        project = make_project()
        run = import_run_request(project=project, requested_by="x", trigger="command")
        response = http("GET", api(f"runs/{run.pk}"), token=token)
        assert response.status == 200
        body = response.json()
        assert (body["id"], body["project"], body["status"]) == (
            run.pk,
            project.pk,
            "queued",
        )
        assert http("GET", api("runs/999999"), token=token).status == 404

    def test_project_runs_newest_first_paged_by_cursor(self, api, token, make_project):
        """GET /api/projects/<id>/runs lists the runs newest first, paged."""
        from imports.services.operations import import_run_cancel

        project = make_project()
        other = make_project()
        ids = []
        for _ in range(3):
            run = import_run_request(
                project=project, requested_by="x", trigger="command"
            )
            import_run_cancel(run=run, cancelled_by="test")
            ids.append(run.pk)
        import_run_request(project=other, requested_by="x", trigger="command")
        response = http(
            "GET", api(f"projects/{project.pk}/runs?page_size=2"), token=token
        )
        assert response.status == 200
        page = response.json()
        assert [r["id"] for r in page["results"]] == ids[::-1][:2]
        assert page["next"]
        rest = http("GET", page["next"], token=token).json()
        assert [r["id"] for r in rest["results"]] == ids[:1]
        assert rest["next"] is None
        filtered = http(
            "GET", api(f"projects/{project.pk}/runs?status=queued"), token=token
        ).json()
        assert filtered["results"] == []
        assert http("GET", api("projects/999999/runs"), token=token).status == 404


class TestSchema:
    def test_openapi_schema_lists_the_three_paths(self, api):
        """The OpenAPI schema is served at /api/schema/ without a token."""
        accept = {"Accept": "application/vnd.oai.openapi+json"}
        response = http("GET", api("schema/"), headers=accept)
        assert response.status == 200
        schema = json.loads(response.body)
        assert schema["openapi"].startswith("3.")
        paths = schema["paths"]
        assert {
            "/api/projects/{project_id}/imports",
            "/api/runs/{id}",
            "/api/projects/{project_id}/runs",
        } <= set(paths)
        post = paths["/api/projects/{project_id}/imports"]["post"]
        assert {"202", "404", "409"} <= set(post["responses"])
        assert "tokenAuth" in schema["components"]["securitySchemes"]

    def test_schema_yaml(self, api):
        """The default rendering is YAML."""
        import yaml

        response = http("GET", api("schema/"), headers={"Accept": "*/*"})
        assert response.status == 200
        assert "/api/runs/{id}" in yaml.safe_load(response.body)["paths"]
