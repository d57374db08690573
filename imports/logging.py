"""Structured logs: JSON lines, and a run's ids on every line about it.

``run_log_context(run)`` puts a run's id and its project's id in a context
variable; ``RunContextFilter`` copies them onto every log record made inside
it (a record that already names them, with ``extra=``, keeps its own). In
Celery workers the context is set for each task that takes a ``run_id``
(``task_prerun``/``task_postrun``), so every line the execute task, the
pipeline and the connectors log carries both ids without passing them
around. ``JsonFormatter`` writes one JSON object per line; settings turn it
on with ``LOG_FORMAT=json``.
"""

import datetime
import json
import logging
import re
from contextlib import contextmanager
from contextvars import ContextVar

from celery import signals

_run_context: ContextVar[tuple[int | None, int | None]] = ContextVar(
    "importhub_run_log_context", default=(None, None)
)

# LogRecord attributes that are not "extra" fields.
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def run_log_context_ids() -> tuple[int | None, int | None]:
    return _run_context.get()


@contextmanager
def run_log_context(run=None, *, run_id=None, project_id=None):
    """Every log line inside names the run and its project."""
    if run is not None:
        run_id, project_id = run.pk, run.project_id
    token = _run_context.set((run_id, project_id))
    try:
        yield
    finally:
        _run_context.reset(token)


_KWARGS_RUN_ID = re.compile(r"['\"]run_id['\"]:\s*(\d+)")
_project_ids: dict[int, int | None] = {}


def _project_of_run(run_id: int) -> int | None:
    """The run's project, for Celery's own lines; cached, never raises."""
    if run_id not in _project_ids:
        try:
            from imports.models import ImportRun

            _project_ids[run_id] = (
                ImportRun.objects.filter(pk=run_id)
                .values_list("project_id", flat=True)
                .first()
            )
        except Exception:
            return None
        if len(_project_ids) > 4096:
            _project_ids.pop(next(iter(_project_ids)))
    return _project_ids[run_id]


def _celery_task_run_id(record: logging.LogRecord) -> int | None:
    """The run_id of a Celery "Task ... received" line (logged by the
    consumer, outside any task) from the task's kwargs."""
    args = record.args
    if isinstance(args, dict) and "kwargs" in args:
        match = _KWARGS_RUN_ID.search(str(args["kwargs"]))
        if match:
            return int(match.group(1))
    return None


class RunContextFilter(logging.Filter):
    """Adds ``run_id`` and ``project_id`` from the context to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        run_id, project_id = _run_context.get()
        if run_id is None and record.name.startswith("celery."):
            run_id = _celery_task_run_id(record)
            if run_id is not None:
                project_id = _project_of_run(run_id)
        if getattr(record, "run_id", None) is None:
            record.run_id = run_id
        if getattr(record, "project_id", None) is None:
            record.project_id = project_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, run_id,
    project_id, any other ``extra`` fields, and exc_info when present."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.datetime.fromtimestamp(
                record.created, tz=datetime.UTC
            ).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "run_id": getattr(record, "run_id", None),
            "project_id": getattr(record, "project_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


# Celery: a task that takes a run_id logs inside that run's context.
_task_tokens: dict[str, object] = {}


def enter_run_context(task_id=None, task=None, kwargs=None, **_):
    """``task_prerun``: a task that takes a run_id logs in its run's context."""
    run_id = (kwargs or {}).get("run_id")
    if run_id is None:
        return
    from imports.models import ImportRun

    project_id = (
        ImportRun.objects.filter(pk=run_id).values_list("project_id", flat=True).first()
    )
    _task_tokens[task_id] = _run_context.set((run_id, project_id))


def leave_run_context(task_id=None, **_):
    """``task_postrun``: leave the context ``enter_run_context`` entered."""
    token = _task_tokens.pop(task_id, None)
    if token is not None:
        _run_context.reset(token)


def connect_signals() -> None:
    """Register the receivers (``ImportsConfig.ready()`` calls this)."""
    signals.task_prerun.connect(
        enter_run_context, weak=False, dispatch_uid="importhub.enter_run_context"
    )
    signals.task_postrun.connect(
        leave_run_context, weak=False, dispatch_uid="importhub.leave_run_context"
    )
