"""End to end, traced: a request here, the attempt on a prefork worker that
exports over OTLP/HTTP, one trace from the request to the merge."""

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

from imports import tracing
from imports.models import ImportRun
from imports.services.guard import import_run_request
from tests.conftest import wait_for
from tests.e2e.otlp import OtlpReceiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SECRET = "s3cr3t-token-value-42"


@pytest.fixture
def receiver():
    server = OtlpReceiver().start()
    yield server
    server.stop()


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.tracing_configure(
        process="test", exporter=exporter, instrument=("celery",), batch=False
    )
    yield exporter
    tracing.tracing_shutdown()


def _hex(number: int, width: int) -> str:
    return f"{number:0{width}x}"


def test_one_trace_from_the_request_to_the_merge(
    receiver, spans, start_worker, make_connector, make_project, write_csv
):
    """The request's span (this process) is the ancestor of the attempt's
    span in the worker's child process, through the message headers; the
    lock, extract (with its stage) and merge spans are the attempt's, all
    in one trace, with the database's and Redis's spans inside it and no
    connector secret anywhere."""
    start_worker(
        pool="prefork",
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
        },
    )
    path = write_csv([(i, f"name {i}", i) for i in range(1, 51)])
    connector = make_connector(
        kind="csv", config={"auth_header": "Authorization", "auth_token": SECRET}
    )
    project = make_project(connector=connector, source={"path": str(path)})
    run = import_run_request(project=project, requested_by="t", trigger="api")
    wait_for(
        lambda: ImportRun.objects.finished().filter(pk=run.pk).exists(),
        timeout=60,
        message="the run did not finish",
    )
    run.refresh_from_db()
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    # The consume span ends after the task returns, a moment after the run's
    # row shows it finished and after the merge span was exported.
    wait_for(
        lambda: (
            receiver.named("importhub.merge")
            and receiver.named("run/imports.import_run_execute")
        ),
        timeout=30,
        message="the worker's spans did not arrive",
    )
    (request,) = [
        s for s in spans.get_finished_spans() if s.name == "importhub.request"
    ]
    (publish,) = [s for s in spans.get_finished_spans() if s.name.startswith("apply_")]
    trace_id = _hex(request.context.trace_id, 32)

    (consume,) = receiver.named("run/imports.import_run_execute")
    (attempt,) = receiver.named("importhub.attempt")
    assert consume["parent_id"] == _hex(publish.context.span_id, 16)
    assert attempt["parent_id"] == consume["span_id"]
    assert attempt["service"] == "importhub-worker"
    assert attempt["attributes"]["importhub.run_id"] == run.pk
    assert attempt["attributes"]["importhub.project_id"] == project.pk
    assert attempt["attributes"]["importhub.attempt"] == 1
    for name in ("importhub.lock", "importhub.extract", "importhub.merge"):
        (child,) = receiver.named(name)
        assert child["parent_id"] == attempt["span_id"], name
    (extract,) = receiver.named("importhub.extract")
    (stage,) = receiver.named("importhub.stage")
    assert stage["parent_id"] == extract["span_id"]
    (merge,) = receiver.named("importhub.merge")
    assert merge["attributes"]["importhub.rows_inserted"] == 50
    in_trace = [s for s in receiver.spans if s["trace_id"] == trace_id]
    assert {consume["span_id"], attempt["span_id"], stage["span_id"]} <= {
        s["span_id"] for s in in_trace
    }
    systems = {s["attributes"].get("db.system") for s in in_trace}
    assert {"postgresql", "redis"} <= systems
    assert SECRET not in repr(receiver.spans)
