"""A run whose lock vanishes mid-extraction stops unwritten and is retried."""

import threading
import time

import pytest
from django.db import connections

from imports.locks import project_lock_force_release
from imports.models import ImportRun, ImportRunEvent, Record
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.conftest import wait_for
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = pytest.mark.django_db(transaction=True)


def slow_csv(rows: int, *, seconds: float):
    """A CSV streamed over ``seconds``, one chunk of rows at a time."""
    yield b"id,name\n"
    chunks = 40
    for chunk in range(chunks):
        time.sleep(seconds / chunks)
        start = chunk * rows // chunks
        yield b"".join(
            f"{i},x\n".encode() for i in range(start, (chunk + 1) * rows // chunks)
        )


def test_a_lost_lock_retries_the_run_and_writes_nothing(make_project, settings):
    """The lock disappears while the run extracts (Redis flushed or restarted
    without its data): the renewer sees it, the attempt stops before writing
    anything, and the run is retried as a transient failure of Redis."""
    settings.IMPORTHUB_BATCH_SIZE = 50
    server = LocalHttpServer().start()
    server.route("/slow.csv", Reply(body=slow_csv(4000, seconds=12)))
    project = make_project(source={"url": server.url("/slow.csv")}, max_retries=2)
    run = import_run_request(project=project, requested_by="t", trigger="command")

    def lose_the_lock():
        try:
            wait_for(
                lambda: ImportRun.objects.get(pk=run.pk).rows_read > 0,
                timeout=30,
                interval=0.05,
            )
            project_lock_force_release(project.pk)
        finally:
            connections.close_all()

    thief = threading.Thread(target=lose_the_lock)
    thief.start()
    try:
        import_run_execute(run_id=run.pk)
    finally:
        thief.join()
        server.stop()
    run.refresh_from_db()
    assert run.status == ImportRun.Status.RETRYING, run.error_message
    assert run.attempt == 2
    assert run.error_class == "LockLost"
    assert "lost its project lock" in run.error_message
    assert Record.objects.filter(project=project).count() == 0
    assert run.events.filter(kind=ImportRunEvent.Kind.RETRY_SCHEDULED).exists()
