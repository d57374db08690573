"""A run's log lines, kept with the run: a handler on the workers' loggers.

``RunLogHandler`` keeps each record that names a run (``run_id``, set by
``imports.logging``'s context) at INFO and above as an ``ImportRunLogLine``,
with the traceback of an exception, the run's connector secrets masked.
The lines are written on a connection of the handler's own, in autocommit:
a line logged inside the load's transaction stays when that transaction
rolls back, which is when it matters most.

Bounded: at most ``IMPORTHUB_RUN_LOG_LINES`` lines per run (the count is
read from the database the first time a process logs for a run, so every
attempt on every worker shares the cap); past it one line says the log was
cut and the rest is dropped. Lines are buffered and written in batches: at
once for a warning or worse, after ``FLUSH_LINES`` lines, and when the
execution of a run ends (``run_log_flush()``). On SQLite, whose writers
exclude each other, lines wait for the end of the execution; a worker
killed in between loses those lines, never its warnings on PostgreSQL.
"""

import logging
import threading
import traceback
from contextlib import contextmanager, suppress

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone

from connectors.registry import connector_secret_fields
from connectors.secrets import redact

FLUSH_LINES = 50
MESSAGE_LIMIT = 4000
TRACEBACK_LIMIT = 20_000
# The line that says the log was cut: rendered in the reader's language
# (the number is its last word).
TRUNCATED_LOGGER = "importhub.run_log"
TRUNCATED_MESSAGE = "log limit reached: %s"

# A line of a run deleted since it was logged is skipped, not refused: it
# would fail the whole batch (its last parameter repeats the run's id).
_INSERT = (
    "INSERT INTO imports_importrunlogline "
    "(run_id, at, attempt, level, logger, message, traceback) "
    "SELECT %s, %s, %s, %s, %s, %s, %s "
    "WHERE EXISTS (SELECT 1 FROM imports_importrun WHERE id = %s)"
)


def run_log_cap() -> int:
    return int(getattr(settings, "IMPORTHUB_RUN_LOG_LINES", 500))


class _Secrets:
    """What a run's lines must not show: its connector's config and source."""

    def __init__(self, config, source, kind):
        self.config, self.source = config or {}, source or {}
        self.fields = connector_secret_fields(kind)

    def mask(self, text: str) -> str:
        text = redact(text, self.config, secret_fields=self.fields)
        return redact(text, self.source)


class RunLogHandler(logging.Handler):
    """Keeps the records of runs (INFO and above) in ``ImportRunLogLine``."""

    def __init__(self, level=logging.INFO):
        super().__init__(level)
        self._buffer: list[tuple] = []
        # run id -> (lines kept so far, attempt, secrets)
        self._runs: dict[int, list] = {}
        self._local = threading.local()

    # Writing.

    def emit(self, record: logging.LogRecord) -> None:
        run_id = getattr(record, "run_id", None)
        if run_id is None or getattr(self._local, "busy", False):
            return
        self._local.busy = True
        try:
            with self.lock:
                self._keep(run_id, record)
                if len(self._buffer) >= FLUSH_LINES or (
                    record.levelno >= logging.WARNING and self._writes_at_once()
                ):
                    self._flush_locked()
        except Exception:
            # A log line must never break an import; nor log about itself.
            self._buffer.clear()
        finally:
            self._local.busy = False

    def _keep(self, run_id: int, record: logging.LogRecord) -> None:
        state = self._runs.get(run_id)
        if state is None:
            state = self._run_state(run_id)
            # A run not written yet is not remembered as unknown: run ids are
            # reserved before their rows exist (imports/services/run_rows.py),
            # so a line may name one a moment before its run is committed.
            if state[1] is not None:
                self._runs[run_id] = state
                if len(self._runs) > 1024:
                    self._runs.pop(next(iter(self._runs)))
        kept, attempt, secrets, cap = state
        if kept > cap:
            return
        state[0] += 1
        at = timezone.now()
        if kept == cap:
            line = (run_id, at, attempt, logging.WARNING, TRUNCATED_LOGGER)
            self._buffer.append((*line, TRUNCATED_MESSAGE % cap, ""))
            return
        message = secrets.mask(record.getMessage())[:MESSAGE_LIMIT]
        trace = ""
        if record.exc_info:
            trace = "".join(traceback.format_exception(*record.exc_info))
            trace = secrets.mask(trace)[-TRACEBACK_LIMIT:]
        self._buffer.append(
            (run_id, at, attempt, record.levelno, record.name[:200], message, trace)
        )

    def _run_state(self, run_id: int) -> list:
        with self._cursor() as cursor:
            cursor.execute(
                "SELECT r.attempt, c.config, p.source, c.kind, "
                "(SELECT COUNT(*) FROM imports_importrunlogline l "
                "WHERE l.run_id = r.id) "
                "FROM imports_importrun r "
                "JOIN imports_project p ON p.id = r.project_id "
                "JOIN connectors_connector c ON c.id = p.connector_id "
                "WHERE r.id = %s",
                [run_id],
            )
            row = cursor.fetchone()
        if row is None:
            # An unknown run: nothing to keep, nothing to mask against.
            return [run_log_cap() + 1, None, _Secrets({}, {}, None), run_log_cap()]
        attempt, config, source, kind, kept = row
        config, source = _json(config), _json(source)
        return [kept, attempt, _Secrets(config, source, kind), run_log_cap()]

    def _writes_at_once(self) -> bool:
        return connections["default"].vendor != "sqlite"

    def flush(self) -> None:
        with self.lock:
            try:
                self._flush_locked()
            except Exception:
                self._buffer.clear()

    def _flush_locked(self) -> None:
        if not self._buffer:
            return
        rows = [(*line, line[0]) for line in self._buffer]
        self._buffer = []
        try:
            with self._cursor() as cursor:
                cursor.executemany(_INSERT, rows)
        except DatabaseError:
            # A run deleted between the check and the insert must not take
            # the other lines with it: one at a time, the refused ones
            # dropped. On a new connection: psycopg runs executemany as a
            # pipeline, which a failure leaves unusable (every later
            # statement on it would fail too).
            with self._cursor() as cursor:
                for row in rows:
                    with suppress(DatabaseError):
                        cursor.execute(_INSERT, row)

    def forget(self, run_id: int | None = None) -> None:
        """Drop what the handler remembers of a run (its attempt may change),
        or of every run."""
        with self.lock:
            if run_id is None:
                self._runs.clear()
            else:
                self._runs.pop(run_id, None)

    # A connection of the handler's own, in autocommit, opened for each
    # write and closed after it (a flush is at most every FLUSH_LINES lines,
    # a warning, or the end of a run): none is left open between runs, and
    # no thread shares one.

    @contextmanager
    def _cursor(self):
        wrapper = connections.create_connection("default")
        try:
            with wrapper.cursor() as cursor:
                yield cursor
        finally:
            wrapper.close()

    def close(self) -> None:
        self.flush()
        super().close()


def _json(value):
    if isinstance(value, str):
        import json

        try:
            return json.loads(value)
        except ValueError:
            return {}
    return value


def run_log_handlers() -> list[RunLogHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, RunLogHandler)]


def run_log_flush(run_id: int | None = None) -> None:
    """Write the buffered lines now (the end of a run's execution)."""
    for handler in run_log_handlers():
        handler.flush()
        handler.forget(run_id)


def install_handler(**_) -> None:
    """``after_setup_logger``: Celery's own logging setup replaces the root
    logger's handlers and sets its level; the workers keep their runs'
    INFO lines all the same, and Celery's handlers their level."""
    from imports.logging import RunContextFilter

    root = logging.getLogger()
    if root.level > logging.INFO:
        for handler in root.handlers:
            if handler.level == logging.NOTSET:
                handler.setLevel(root.level)
        root.setLevel(logging.INFO)
    if not run_log_handlers():
        handler = RunLogHandler()
        handler.addFilter(RunContextFilter())
        root.addHandler(handler)


def flush_after_task(**_) -> None:
    """``task_postrun``: what a task logged is written when it ends."""
    run_log_flush()


def connect_signals() -> None:
    from celery import signals
    from django.core.signals import request_finished

    # What a web request logged about runs (the guard's lines) is written
    # when the request ends.
    request_finished.connect(
        flush_after_task, weak=False, dispatch_uid="importhub.run_log.request"
    )
    signals.after_setup_logger.connect(
        install_handler, weak=False, dispatch_uid="importhub.run_log.install"
    )
    # Django may be set up after Celery configured its logging (then the
    # signal above came too early): a worker's first task installs it.
    signals.task_prerun.connect(
        install_handler, weak=False, dispatch_uid="importhub.run_log.prerun"
    )
    signals.task_postrun.connect(
        flush_after_task, weak=False, dispatch_uid="importhub.run_log.flush"
    )
