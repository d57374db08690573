"""Fixtures of the admin tests: operators with given permissions, runs."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from imports.models import ImportRun
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request


@pytest.fixture(autouse=True)
def _english(settings):
    """Admin tests read English labels unless a test asks for Russian."""
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def staff_client(db, django_user_model):
    """A logged-in staff user holding only the given permissions.

    ``staff_client("view_importrun", "retry_importrun")``
    """

    def make(*codenames: str, username: str = "operator") -> Client:
        user = django_user_model.objects.create_user(
            username=username, password="pw", is_staff=True
        )
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        client = Client()
        client.force_login(user)
        return client

    return make


VIEW_ONLY = (
    "view_importrun",
    "view_project",
    "view_connector",
    "view_importrunevent",
)


@pytest.fixture
def view_only_client(staff_client):
    return staff_client(*VIEW_ONLY, username="viewer")


@pytest.fixture
def request_run():
    def request(project, **kwargs) -> ImportRun:
        kwargs.setdefault("requested_by", "tester")
        kwargs.setdefault("trigger", ImportRun.Trigger.COMMAND)
        return import_run_request(project=project, **kwargs)

    return request


@pytest.fixture
def failed_run(make_project, request_run):
    """Make a failed run: its CSV file does not exist (the default source)."""

    def make(project=None) -> ImportRun:
        run = request_run(project or make_project())
        import_run_execute(run_id=run.pk)
        run.refresh_from_db()
        assert run.status == ImportRun.Status.FAILED, run.error_message
        return run

    return make


@pytest.fixture
def succeeded_run(make_project, request_run, write_csv):
    def make(project=None, rows=3) -> ImportRun:
        path = write_csv([(i, f"n{i}", i) for i in range(1, rows + 1)])
        project = project or make_project()
        project.source = {"path": str(path)}
        project.save(update_fields=["source"])
        run = request_run(project)
        import_run_execute(run_id=run.pk)
        run.refresh_from_db()
        assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
        return run

    return make


@pytest.fixture
def import_now():
    """Request and execute a run in-process (no broker); the run, refreshed."""

    def run(project) -> ImportRun:
        requested = import_run_request(
            project=project, requested_by="tester", trigger=ImportRun.Trigger.COMMAND
        )
        import_run_execute(run_id=requested.pk)
        requested.refresh_from_db()
        return requested

    return run


@pytest.fixture
def destination_url():
    """A PostgreSQL database of the test's own, to land tables in; dropped
    afterwards (as in the loading's destination tests)."""
    import contextlib
    import uuid

    import psycopg
    from django.conf import settings
    from django.db import connections
    from django.db.utils import ConnectionDoesNotExist

    from imports.models import Destination

    db = settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    user = db["USER"] or "postgres"
    name = f"importhub_dest_{uuid.uuid4().hex[:10]}"
    admin = f"postgresql://{user}@{host}:{port}/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://{user}@{host}:{port}/{name}"
    for destination in Destination.objects.all():
        with contextlib.suppress(ConnectionDoesNotExist):
            connections[f"importhub_destination_{destination.pk}"].close()
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
