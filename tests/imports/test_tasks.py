"""The Celery tasks: names pinned, thin, and routed through the guard."""

import ast
from pathlib import Path

from config.celery import app
from imports import tasks

# A renamed task strands every message of the old name still in a broker
# queue (and every beat schedule that names it): these never change.
PINNED_NAMES = {
    "import_run_execute_task": "imports.import_run_execute",
    "project_import_task": "imports.project_import",
    "runs_sweep_task": "imports.runs_sweep",
    "project_import_scheduled_task": "imports.project_import_scheduled",
    "notification_deliver_task": "imports.notification_deliver",
    "notifications_deliver_due_task": "imports.notifications_deliver_due",
}


def test_task_names_are_pinned():
    """Each task keeps the name messages already queued carry."""
    for attribute, name in PINNED_NAMES.items():
        assert getattr(tasks, attribute).name == name
        assert name in app.tasks


def test_no_unpinned_task():
    """Every task of the module is pinned above."""
    from celery import Task

    declared = {name for name, value in vars(tasks).items() if isinstance(value, Task)}
    assert declared == set(PINNED_NAMES)


def test_execute_task_limits_its_runtime(settings):
    """A hung import cannot hold its worker (and lock) for ever."""
    task = tasks.import_run_execute_task
    assert task.soft_time_limit == settings.IMPORTHUB_MAX_RUNTIME_SECONDS
    assert task.time_limit > task.soft_time_limit
    assert task.acks_late


def test_tasks_module_imports_no_service_at_load_time():
    """Services import the tasks; the tasks import services in their bodies."""
    tree = ast.parse(Path(tasks.__file__).read_text())
    top_level = [
        node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module
    ]
    assert not [m for m in top_level if m.startswith("imports.services")]
