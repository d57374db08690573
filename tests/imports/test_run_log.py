"""A run's log lines: kept per run, bounded, secrets masked, on the run page."""

import logging

import pytest
from django.db import transaction
from django.urls import reverse

from connectors.csv import CsvConnector
from connectors.secrets import MASK
from imports.logging import run_log_context
from imports.models import ImportRun, ImportRunLogLine
from imports.run_log import RunLogHandler, run_log_flush, run_log_handlers
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "tok-9c1e7a5b3d2f"
logger = logging.getLogger("tests.run_log")


def request(project) -> ImportRun:
    return import_run_request(
        project=project, requested_by="tester", trigger=ImportRun.Trigger.COMMAND
    )


def lines(run) -> list[ImportRunLogLine]:
    return list(ImportRunLogLine.objects.filter(run=run).order_by("at", "id"))


def test_the_handler_is_installed_on_the_root_logger():
    assert len(run_log_handlers()) == 1


def test_a_failed_runs_attempt_is_logged(make_project):
    """The execution's own lines, the failure's among them, stay with the run."""
    run = request(make_project())
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    kept = lines(run)
    messages = [line.message for line in kept]
    assert f"attempt 1 of run {run.pk} started" in messages[0]
    assert any(
        line.level == logging.WARNING and "CSV file not found" in line.message
        for line in kept
    )
    assert {line.attempt for line in kept} == {1}


def test_lines_survive_the_rolled_back_transaction_they_were_logged_in(make_project):
    """Written on a connection of their own: a rollback keeps them."""
    run = request(make_project())
    with run_log_context(run):
        with pytest.raises(RuntimeError), transaction.atomic():
            logger.warning("inside the load")
            raise RuntimeError("rolled back")
    run_log_flush(run.pk)
    assert [line.message for line in lines(run)] == ["inside the load"]


def test_an_unexpected_error_keeps_its_traceback_secrets_masked(
    make_connector, make_project, write_csv, monkeypatch
):
    """The traceback of an unexpected error is kept; the connector's token
    appears in neither the line nor the traceback."""

    def explode(self):
        raise RuntimeError(f"boom with {TOKEN}")

    monkeypatch.setattr(CsvConnector, "iter_records", explode)
    monkeypatch.setattr(CsvConnector, "copy_source", lambda self: None)
    connector = make_connector(config={"auth_token": TOKEN})
    project = make_project(
        connector=connector, source={"path": str(write_csv([(1, "a", 1)]))}
    )
    run = request(project)
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    kept = lines(run)
    [failed] = [line for line in kept if line.traceback]
    assert "Traceback (most recent call last)" in failed.traceback
    assert f"RuntimeError: boom with {MASK}" in failed.traceback
    for line in kept:
        assert TOKEN not in line.message and TOKEN not in line.traceback


def test_info_and_above_only_and_not_other_runs(make_project):
    first, second = request(make_project()), request(make_project())
    with run_log_context(first):
        logger.debug("not kept")
        logger.info("kept for the first")
    with run_log_context(second):
        logger.error("kept for the second")
    logger.error("no run: not kept")
    run_log_flush()
    assert [line.message for line in lines(first)] == ["kept for the first"]
    assert [(line.message, line.level) for line in lines(second)] == [
        ("kept for the second", logging.ERROR)
    ]


def test_a_line_of_a_deleted_run_does_not_take_the_batch_with_it(make_project):
    """Lines buffered for a run deleted meanwhile are dropped; the other
    runs' lines of the same batch are kept (by the batch, and by the
    one-at-a-time fallback when a run goes between check and insert)."""
    gone, kept = request(make_project()), request(make_project())
    with run_log_context(gone):
        logger.info("of a run deleted before the flush")
    with run_log_context(kept):
        logger.info("kept")
    ImportRun.objects.filter(pk=gone.pk).delete()
    run_log_flush()
    assert [line.message for line in lines(kept)] == ["kept"]
    assert not ImportRunLogLine.objects.filter(run_id=gone.pk).exists()

    # A batch the database refuses as a whole (a line it cannot store) is
    # written again a line at a time on a new connection.
    (handler,) = run_log_handlers()
    with run_log_context(kept):
        logger.info("kept too")
    with handler.lock:
        handler._buffer.append((kept.pk, None, 1, logging.INFO, "x", "refused", ""))
    run_log_flush()
    assert [line.message for line in lines(kept)] == ["kept", "kept too"]


def test_the_log_is_bounded_per_run_across_processes(make_project, settings):
    """Past the cap one line says so and the rest is dropped, also for a
    handler (another worker) that starts counting later."""
    settings.IMPORTHUB_RUN_LOG_LINES = 5
    run = request(make_project())
    with run_log_context(run):
        for n in range(8):
            logger.info("line %s", n)
    run_log_flush(run.pk)
    kept = lines(run)
    assert [line.message for line in kept[:5]] == [f"line {n}" for n in range(5)]
    assert len(kept) == 6
    assert kept[5].logger == "importhub.run_log"
    other = RunLogHandler()
    record = logging.LogRecord("x", logging.ERROR, "", 0, "later", (), None)
    record.run_id = run.pk
    other.emit(record)
    other.close()
    assert len(lines(run)) == 6


def test_the_run_page_shows_the_log(admin_client, make_project, settings):
    settings.LANGUAGE_CODE = "en"
    settings.IMPORTHUB_RUN_LOG_LINES = 2
    run = request(make_project())
    with run_log_context(run):
        logger.info("first <b>line</b>")
        try:
            raise ValueError("broken")
        except ValueError:
            logger.exception("it broke")
        logger.info("dropped")
    run_log_flush(run.pk)
    html = admin_client.get(
        reverse("admin:imports_importrun_change", args=[run.pk])
    ).content.decode()
    assert 'id="run-log"' in html
    assert "first &lt;b&gt;line&lt;/b&gt;" in html
    assert "ValueError: broken" in html
    assert "reached its limit of 2 lines" in html
