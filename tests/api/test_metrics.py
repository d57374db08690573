"""GET /metrics over real HTTP: figures from the database and Redis."""

import datetime

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from imports.locks import connector_slots, stat_incr
from imports.models import ImportRun, ProjectEvent
from imports.services.guard import import_run_request
from tests.api.http import http
from tests.conftest import end_run

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(url: str, **kwargs) -> dict:
    response = http("GET", f"{url}/metrics", headers={"Accept": "text/plain"}, **kwargs)
    assert response.status == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            samples[key] = sample.value
    return samples


def finished_run(project, *, waited: float, took: float, **counts):
    run = import_run_request(project=project, requested_by="t", trigger="command")
    created = timezone.now() - datetime.timedelta(seconds=waited + took + 1)
    started = created + datetime.timedelta(seconds=waited)
    return end_run(
        run,
        ImportRun.Status.SUCCEEDED,
        created_at=created,
        started_at=started,
        finished_at=started + datetime.timedelta(seconds=took),
        **{f"rows_{k}": v for k, v in counts.items()},
    )


def test_metrics_from_the_database_and_redis(live_server, make_project, make_connector):
    """Runs by status, durations, waits, rows, busy rejections and slots."""
    connector = make_connector(name="shared", max_concurrent_imports=3)
    project = make_project(connector=connector)
    finished_run(project, waited=0.3, took=2, inserted=10, updated=2)
    finished_run(project, waited=20, took=100, inserted=5, deleted=1)
    import_run_request(project=project, requested_by="t", trigger="command")
    other = make_project()
    waiting = import_run_request(project=other, requested_by="t", trigger="command")
    ImportRun.objects.filter(pk=waiting.pk).update(status=ImportRun.Status.WAITING)
    ProjectEvent.objects.create(project=project, kind="skipped_busy")
    stat_incr("rejected_busy", 4)
    slots = connector_slots(connector)
    slots.acquire("holder-1")

    samples = scrape(live_server.url)
    assert samples[("importhub_runs", (("status", "succeeded"),))] == 2
    assert samples[("importhub_runs", (("status", "queued"),))] == 1
    assert samples[("importhub_runs", (("status", "waiting"),))] == 1
    assert samples[("importhub_runs", (("status", "failed"),))] == 0
    assert samples[("importhub_waiting_runs", ())] == 1
    duration = "importhub_run_duration_seconds"
    assert samples[(f"{duration}_bucket", (("le", "5.0"),))] == 1
    assert samples[(f"{duration}_bucket", (("le", "120.0"),))] == 2
    assert samples[(f"{duration}_bucket", (("le", "+Inf"),))] == 2
    assert samples[(f"{duration}_gsum", ())] == pytest.approx(102, abs=0.01)
    wait = "importhub_lock_wait_seconds"
    assert samples[(f"{wait}_bucket", (("le", "0.5"),))] == 1
    assert samples[(f"{wait}_bucket", (("le", "30.0"),))] == 2
    assert samples[("importhub_rows_imported_total", (("kind", "inserted"),))] == 15
    assert samples[("importhub_rows_imported_total", (("kind", "updated"),))] == 2
    assert samples[("importhub_rows_imported_total", (("kind", "deleted"),))] == 1
    assert samples[("importhub_rejected_busy_total", ())] == 4
    assert samples[("importhub_project_events_total", (("kind", "skipped_busy"),))] == 1
    labels = (("connector", str(connector.pk)), ("name", "shared"))
    # holder-1 and the queued run's slot.
    assert samples[("importhub_connector_slots_in_use", labels)] == 2
    assert samples[("importhub_connector_slots_limit", labels)] == 3
    assert samples[("importhub_redis_up", ())] == 1


def test_a_busy_rejection_over_the_api_is_counted(live_server, make_project):
    """The counter lives in Redis, so every process sees the same figure."""
    project = make_project()
    import_run_request(project=project, requested_by="t", trigger="command")
    before = scrape(live_server.url)[("importhub_rejected_busy_total", ())]
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_superuser("root")
    token = Token.objects.create(user=user).key
    response = http(
        "POST", f"{live_server.url}/api/projects/{project.pk}/imports", token=token
    )
    assert response.status == 409
    after = scrape(live_server.url)[("importhub_rejected_busy_total", ())]
    assert after == before + 1


def test_metrics_token(live_server, settings):
    """With IMPORTHUB_METRICS_TOKEN set, a bearer token is required."""
    settings.IMPORTHUB_METRICS_TOKEN = "s3cret"
    assert http("GET", f"{live_server.url}/metrics").status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert http("GET", f"{live_server.url}/metrics", headers=wrong).status == 401
    good = {"Authorization": "Bearer s3cret", "Accept": "text/plain"}
    response = http("GET", f"{live_server.url}/metrics", headers=good)
    assert response.status == 200
    assert "importhub_runs" in response.text
