"""A connector's secret never shows in what a run records or serves."""

import json

import pytest

from imports.api.serializers import ImportRunSerializer
from imports.logging import JsonFormatter
from imports.models import ImportRun
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cr3t-token-value-42"


def test_a_source_echoing_the_secret_leaves_no_trace(make_connector, make_project):
    """A source that fails and echoes the token back (a bad proxy, a debug
    page) fails the run; the error, the events, the API's view of the run
    and a JSON log line of the error show the secret masked."""
    server = LocalHttpServer().start()
    try:
        server.route(
            "/data.csv", Reply(status=404, body=f"no such file for token {SECRET}")
        )
        connector = make_connector(
            kind="csv",
            config={
                "url": server.url("/data.csv"),
                "auth_header": "Authorization",
                "auth_token": SECRET,
            },
        )
        project = make_project(
            connector=connector, source={"url": server.url("/data.csv")}
        )
        run = import_run_request(project=project, requested_by="t", trigger="command")
        import_run_execute(run_id=run.pk)
    finally:
        server.stop()
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    assert server.requests[0].headers.get("Authorization") == SECRET
    recorded = [run.error_message, *run.events.values_list("message", flat=True)]
    recorded += [json.dumps(data) for data in run.events.values_list("data", flat=True)]
    recorded.append(json.dumps(ImportRunSerializer(run).data, default=str))
    assert all(SECRET not in text for text in recorded), recorded
    import logging

    record = logging.LogRecord(
        "imports.x", logging.ERROR, __file__, 1, run.error_message, (), None
    )
    assert SECRET not in JsonFormatter().format(record)
