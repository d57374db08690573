"""Tracing: the guard's request span, its context in the message headers,
and the attempt's spans, recorded by the SDK's in-memory exporter."""

import json
import os
import subprocess
import sys

import pytest
import redis
from django.db import transaction
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

from imports import tracing
from imports.models import ImportRun
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.conftest import MISSING_CSV, ROOT

# The guard publishes after the commit: tests commit.
pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "s3cr3t-token-value-42"


@pytest.fixture
def spans():
    """Tracing on in this process (Celery instrumented, so that a publish
    injects the context), every span exported as it ends."""
    exporter = InMemorySpanExporter()
    assert tracing.tracing_configure(
        process="test", exporter=exporter, instrument=("celery",), batch=False
    )
    yield exporter
    tracing.tracing_shutdown()


def _messages(settings, queue) -> list[dict]:
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        return [json.loads(raw) for raw in broker.lrange(queue, 0, -1)]
    finally:
        broker.close()


def _traceparent(message: dict) -> tuple[str, str]:
    """(trace id, parent span id) of a message's W3C traceparent header."""
    _, trace_id, span_id, _ = message["headers"]["traceparent"].split("-")
    return trace_id, span_id


def _by_name(exporter, name):
    return [span for span in exporter.get_finished_spans() if span.name == name]


@pytest.mark.parametrize(
    ("environ", "requested"),
    [
        ({}, False),
        ({"IMPORTHUB_TRACING": "1"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "IMPORTHUB_TRACING": "0"}, False),
        ({"IMPORTHUB_TRACING": "1", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)  # fmt: skip
def test_tracing_is_switched_on_by_the_environment(environ, requested):
    """IMPORTHUB_TRACING or an OTLP endpoint turns tracing on; the switch at
    false or OTEL_SDK_DISABLED turns it off."""
    assert tracing.tracing_requested(environ) is requested


def test_tracing_off_makes_no_span_and_adds_no_header(make_project, settings):
    """With tracing off the helpers do nothing and a message carries no
    trace context."""
    assert not tracing.tracing_enabled()
    with tracing.span("importhub.request") as current:
        assert current is None
    import_run_request(project=make_project(), requested_by="t", trigger="command")
    (message,) = _messages(settings, settings.IMPORTHUB_TASK_QUEUE)
    assert "traceparent" not in message["headers"]


def test_the_request_span_is_the_parent_of_the_published_message(
    spans, make_project, settings
):
    """The guard's request span names the project and its run; the message
    it publishes carries its trace, with the publish span as the parent."""
    project = make_project()
    run = import_run_request(project=project, requested_by="t", trigger="command")
    (request,) = _by_name(spans, "importhub.request")
    assert request.attributes["importhub.project_id"] == project.pk
    assert request.attributes["importhub.run_id"] == run.pk
    assert request.attributes["importhub.trigger"] == "command"
    assert request.attributes["importhub.accepted"] == 1
    (publish,) = _by_name(spans, "apply_async/imports.import_run_execute")
    assert publish.parent.span_id == request.context.span_id
    (message,) = _messages(settings, settings.IMPORTHUB_TASK_QUEUE)
    trace_id, parent_id = _traceparent(message)
    assert trace_id == f"{request.context.trace_id:032x}"
    assert parent_id == f"{publish.context.span_id:016x}"


def test_a_request_inside_a_transaction_publishes_in_its_trace(
    spans, make_project, settings
):
    """Inside the caller's transaction the message is published after the
    commit, when the request's span has ended: it still carries its trace."""
    with transaction.atomic():
        import_run_request(project=make_project(), requested_by="t", trigger="admin")
        assert _messages(settings, settings.IMPORTHUB_TASK_QUEUE) == []
    (request,) = _by_name(spans, "importhub.request")
    (message,) = _messages(settings, settings.IMPORTHUB_TASK_QUEUE)
    assert _traceparent(message)[0] == f"{request.context.trace_id:032x}"


def test_a_busy_refusal_is_a_request_span_without_a_message(
    spans, make_project, settings
):
    """A refusal is an expected outcome: recorded on the span, not an error."""
    project = make_project()
    import_run_request(project=project, requested_by="t", trigger="command")
    with pytest.raises(Exception, match="уже обновляется"):
        import_run_request(project=project, requested_by="t", trigger="command")
    first, second = _by_name(spans, "importhub.request")
    assert second.attributes["importhub.refusal"] == "ProjectBusy"
    assert second.attributes["importhub.accepted"] == 0
    assert second.status.status_code is not StatusCode.ERROR
    assert len(_messages(settings, settings.IMPORTHUB_TASK_QUEUE)) == 1


@pytest.mark.parametrize("layout", ["records", "table"])
def test_an_attempt_has_lock_extract_stage_and_merge_spans(
    spans, make_project, write_csv, layout
):
    """An attempt's span holds the claim, the extraction (with the stage
    inside it) and the merge, with the run's ids and counts."""
    path = write_csv([(1, "a", "1.5"), (2, "b", "2.5")])
    project = make_project(source={"path": str(path)}, layout=layout)
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED
    (attempt,) = _by_name(spans, "importhub.attempt")
    assert attempt.attributes["importhub.run_id"] == run.pk
    assert attempt.attributes["importhub.project_id"] == project.pk
    assert attempt.attributes["importhub.attempt"] == 1
    assert attempt.attributes["importhub.status"] == "succeeded"
    children = {
        span.name: span
        for span in spans.get_finished_spans()
        if span.parent and span.parent.span_id == attempt.context.span_id
    }
    assert {"importhub.lock", "importhub.extract", "importhub.merge"} <= set(children)
    (stage,) = _by_name(spans, "importhub.stage")
    assert stage.parent.span_id == children["importhub.extract"].context.span_id
    assert children["importhub.extract"].attributes["importhub.rows_read"] == 2
    assert children["importhub.merge"].attributes["importhub.rows_inserted"] == 2
    order = ["importhub.lock", "importhub.extract", "importhub.merge"]
    starts = [children[name].start_time for name in order]
    assert starts == sorted(starts)


def test_a_failed_attempt_records_its_error_but_no_secret(
    spans, make_connector, make_project
):
    """A failure is recorded on the attempt span (status, exception), and no
    attribute or event holds the connector's secret."""
    connector = make_connector(
        kind="csv",
        config={"auth_header": "Authorization", "auth_token": SECRET},
    )
    project = make_project(connector=connector, source={"path": MISSING_CSV})
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    (attempt,) = _by_name(spans, "importhub.attempt")
    assert attempt.status.status_code is StatusCode.ERROR
    (event,) = [e for e in attempt.events if e.name == "exception"]
    assert event.attributes["exception.type"].endswith(run.error_class)
    dumped = "".join(span.to_json() for span in spans.get_finished_spans())
    assert SECRET not in dumped


def test_an_http_client_span_url_loses_its_query():
    """An HTTP connector's key may be in the query string: never recorded."""
    url = "https://user:pw@api.example.com:8443/v1/items?api_key=abc&page=2#x"
    assert tracing.url_without_query(url) == "https://api.example.com:8443/v1/items"


def test_the_app_runs_without_the_otel_extra():
    """With OpenTelemetry not importable, the web and Celery entry points,
    the guard and the worker's services import, and tracing switched on
    only logs that the extra is missing."""
    script = """
import importlib.abc, sys

class NoOtel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r}")

sys.meta_path.insert(0, NoOtel())
import config.wsgi, config.celery
import imports.services.guard, imports.services.execution
from imports import tracing
assert not tracing.tracing_configure(process="worker")
assert not tracing.tracing_enabled()
with tracing.span("importhub.attempt") as s:
    assert s is None
assert not [m for m in sys.modules if m.startswith("opentelemetry")]
print("ok")
"""
    env = {**os.environ, "IMPORTHUB_TRACING": "1", "PYTHONPATH": str(ROOT)}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "otel extra is not installed" in done.stderr
