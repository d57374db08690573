"""A broker's redelivery of a running import's message starts nothing."""

import pytest

from imports.models import ImportRun, ImportRunEvent, Record
from imports.services.guard import import_run_request
from tests.conftest import wait_for
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


@pytest.mark.brokers("redis")
def test_visibility_timeout_redelivery_is_refused_by_the_claim(
    start_worker, make_project
):
    """A visibility timeout shorter than an import (misconfigured): Redis
    hands the running import's message to a second worker, whose claim
    refuses it; the import ends once, with its data."""
    rows = "".join(f"{i},x,{i}\n" for i in range(100))
    server = LocalHttpServer().start()
    server.route("/slow.csv", Reply(body="id,name,amount\n" + rows, delay=12))
    project = make_project(source={"url": server.url("/slow.csv")})
    short = {"CELERY_VISIBILITY_TIMEOUT": "2", "CELERY_UNACKED_RESTORE_SECONDS": "1"}
    try:
        start_worker(env=short)
        start_worker(env=short)
        run = import_run_request(project=project, requested_by="t", trigger="command")
        wait_for(
            lambda: run.events.filter(kind=ImportRunEvent.Kind.STALE_MESSAGE).exists(),
            timeout=30,
            interval=0.2,
            message="the message was not redelivered while the import ran",
        )
        assert ImportRun.objects.get(pk=run.pk).status == ImportRun.Status.RUNNING
        run = wait_for(
            lambda: ImportRun.objects.finished().filter(pk=run.pk).first(),
            timeout=60,
        )
    finally:
        server.stop()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    kinds = list(run.events.values_list("kind", flat=True))
    assert kinds.count(ImportRunEvent.Kind.STARTED) == 1
    assert run.attempt == 1
    assert Record.objects.filter(project=project).count() == 100
