"""Structured logs: JSON lines carrying the run's and the project's ids."""

import json
import logging
import uuid

import pytest

from imports.logging import JsonFormatter, RunContextFilter, run_log_context
from imports.models import ImportRun
from imports.services.guard import import_run_request
from tests.conftest import LOGS, WorkerProcess, wait_for


def format_record(message, **extra):
    record = logging.LogRecord(
        "imports.x", logging.INFO, __file__, 1, message, (), None
    )
    record.__dict__.update(extra)
    RunContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_json_line_with_context():
    """Inside run_log_context every record names the run and project."""
    with run_log_context(run_id=7, project_id=3):
        line = format_record("started")
    assert line["message"] == "started"
    assert (line["run_id"], line["project_id"], line["level"]) == (7, 3, "INFO")
    assert line["logger"] == "imports.x" and line["time"].endswith("+00:00")
    assert format_record("outside")["run_id"] is None


def test_extra_ids_win_and_exceptions_are_included():
    with run_log_context(run_id=1, project_id=2):
        line = format_record("x", run_id=9)
    assert (line["run_id"], line["project_id"]) == (9, 2)
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord(
            "imports.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in line["exc_info"]


@pytest.mark.django_db(transaction=True)
def test_worker_log_lines_of_a_run_carry_its_ids(
    worker_env, settings, make_project, write_csv, tmp_path
):
    """A real worker with LOG_FORMAT=json: every line is JSON, and the lines
    about the run carry its run_id and project_id."""
    env = dict(worker_env)
    env.update(
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        IMPORTHUB_TASK_QUEUE=settings.IMPORTHUB_TASK_QUEUE,
        IMPORTHUB_REDIS_PREFIX=settings.IMPORTHUB_REDIS_PREFIX,
    )
    log_path = LOGS / f"json-worker-{uuid.uuid4().hex[:8]}.log"
    worker = WorkerProcess(env=env, log_path=log_path, concurrency=1).start()
    try:
        project = make_project(source={"path": str(write_csv([(1, "a", 2)]))})
        run = import_run_request(project=project, requested_by="t", trigger="command")
        wait_for(
            lambda: ImportRun.objects.finished().filter(pk=run.pk).exists(),
            timeout=60,
        )
    finally:
        worker.stop()
    entries = []
    for text in log_path.read_text().splitlines():
        if text.startswith("{"):
            entries.append(json.loads(text))
    assert entries, "no JSON log lines"
    about_run = [e for e in entries if e["run_id"] == run.pk]
    assert len(about_run) >= 2
    assert {e["project_id"] for e in about_run} == {project.pk}
    succeeded = [e for e in entries if "succeeded in" in e["message"]]
    assert succeeded and all(e["run_id"] == run.pk for e in succeeded)
