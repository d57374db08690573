"""The connector page: slots in use out of the limit, waiting runs, secrets."""

import pytest
from django.urls import reverse

from imports.locks import connector_slots
from imports.models import ImportRun
from imports.services.dashboard import connector_slots_in_use

pytestmark = pytest.mark.django_db(transaction=True)


def change_url(connector) -> str:
    return reverse("admin:connectors_connector_change", args=[connector.pk])


def test_slots_and_waiting_runs(
    admin_client, make_connector, make_project, request_run
):
    """Slots in use / limit from Redis, and the runs waiting for one."""
    connector = make_connector(max_concurrent_imports=3)
    slots = connector_slots(connector)
    slots.acquire("run-a")
    slots.acquire("run-b")
    first = request_run(make_project(connector=connector))  # takes the last slot
    run = request_run(make_project(connector=connector))
    assert (first.status, run.status) == (
        ImportRun.Status.QUEUED,
        ImportRun.Status.WAITING,
    )
    html = admin_client.get(change_url(connector)).content.decode()
    assert '<span class="connector-slots">3 / 3</span>' in html
    assert f'<a href="/admin/imports/importrun/{run.pk}/change/">#{run.pk}</a>' in html
    listing = admin_client.get(reverse("admin:connectors_connector_changelist"))
    assert '<span class="connector-slots">3 / 3</span>' in listing.content.decode()


@pytest.fixture
def redis_down(settings):
    """Point the locks at a port nobody listens on, until the test ends.

    Restored here, before the per-test prefix's cleanup needs Redis again.
    """
    saved = settings.REDIS_URL, settings.IMPORTHUB_REDIS_SOCKET_TIMEOUT
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.IMPORTHUB_REDIS_SOCKET_TIMEOUT = 0.5
    yield
    settings.REDIS_URL, settings.IMPORTHUB_REDIS_SOCKET_TIMEOUT = saved


def test_slots_unknown_without_redis(admin_client, make_connector, redis_down):
    """When Redis cannot be reached the page says "unknown" and still renders."""
    connector = make_connector(max_concurrent_imports=2)
    assert connector_slots_in_use(connector) is None
    response = admin_client.get(change_url(connector))
    assert response.status_code == 200
    assert '<span class="connector-slots">unknown / 2</span>' in (
        response.content.decode()
    )


def test_secrets_are_masked(admin_client, view_only_client, make_connector):
    """Neither an editor nor a viewer ever sees a stored secret."""
    connector = make_connector(
        kind="http_json",
        config={"base_url": "https://api.example.com", "token": "s3cr3t-t0ken"},
    )
    for client in (admin_client, view_only_client):
        html = client.get(change_url(connector)).content.decode()
        assert "s3cr3t-t0ken" not in html
        assert "••••••" in html
