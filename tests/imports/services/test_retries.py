"""Transient failures retry with backoff; permanent ones fail at once."""

import pytest

from imports.locks import connector_slots, project_lock_owner
from imports.models import ImportRun, ImportRunEvent, Record
from imports.services.backoff import retry_delay
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = pytest.mark.django_db(transaction=True)

CSV = b"id,name\n1,a\n2,b\n"


@pytest.fixture
def server():
    server = LocalHttpServer().start()
    yield server
    server.stop()


def url_project(make_project, server, **fields):
    return make_project(source={"url": server.url("/data.csv")}, **fields)


def test_5xx_retries_then_succeeds(make_project, server):
    """A 500 schedules attempt 2 with a backoff; the retry imports the data."""
    server.route("/data.csv", Reply(status=500), Reply(body=CSV))
    project = url_project(make_project, server, max_retries=2)
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.RETRYING
    assert run.attempt == 2
    assert run.next_attempt_at is not None
    assert "500" in run.error_message
    # The run keeps its project's lock during the backoff, not its slot.
    assert project_lock_owner(project.pk) == run.lock_token
    assert connector_slots(project.connector).count() == 0
    event = run.events.get(kind=ImportRunEvent.Kind.RETRY_SCHEDULED)
    assert event.data["attempt"] == 2

    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED
    assert (run.attempt, run.rows_inserted, run.error_message) == (2, 2, "")
    assert Record.objects.filter(project=project).count() == 2
    assert project_lock_owner(project.pk) is None


def test_429_honours_retry_after(make_project, server):
    """A 429's Retry-After is the least delay before the next attempt."""
    server.route("/data.csv", Reply(status=429, headers={"Retry-After": "2"}))
    project = url_project(make_project, server, max_retries=1)
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    delay = run.events.get(kind=ImportRunEvent.Kind.RETRY_SCHEDULED).data["delay"]
    assert delay >= 2


def test_attempts_run_out_and_the_run_fails(make_project, server):
    """After max_retries the run fails, saying how many attempts it made."""
    server.route("/data.csv", Reply(status=503))
    project = url_project(make_project, server, max_retries=1)
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert "gave up after 2 attempts" in run.error_message
    assert project_lock_owner(project.pk) is None


def test_permanent_error_fails_at_once(make_project, server):
    """A 404 is permanent: no retry, whatever max_retries says."""
    server.route("/data.csv", Reply(status=404))
    project = url_project(make_project, server, max_retries=5)
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert run.attempt == 1
    assert "404" in run.error_message


def test_backoff_grows_and_is_capped(settings):
    """Backoff doubles per attempt (with jitter) and never passes the cap."""
    settings.IMPORTHUB_RETRY_BASE_SECONDS = 10
    settings.IMPORTHUB_RETRY_MAX_SECONDS = 60
    assert 5 <= retry_delay(attempt=1) <= 10
    assert 20 <= retry_delay(attempt=3) <= 40
    assert 30 <= retry_delay(attempt=10) <= 60
    assert retry_delay(attempt=1, retry_after=45) >= 45
