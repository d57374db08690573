"""Per-project schedules: the service, the command and the guarded tick."""

import io
import json
import logging

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.models import ImportRun, ProjectEvent
from imports.scheduler import tick_window_seconds
from imports.services.schedules import (
    project_schedule_clear,
    project_schedule_set,
)
from imports.tasks import project_import_scheduled_task

pytestmark = pytest.mark.django_db(transaction=True)


class TestScheduleService:
    def test_crontab_schedule_is_a_named_periodic_task(self, make_project):
        """One periodic task per project, running the scheduled task."""
        project = make_project()
        task = project_schedule_set(project=project, crontab="*/5 * * * *")
        assert task.name == f"import project {project.pk}"
        assert task.task == "imports.project_import_scheduled"
        assert json.loads(task.kwargs) == {"project_id": project.pk}
        assert (task.crontab.minute, task.crontab.hour) == ("*/5", "*")
        assert task.interval is None and task.enabled

    def test_setting_again_replaces_the_schedule(self, make_project):
        project = make_project()
        project_schedule_set(project=project, crontab="0 * * * *")
        task = project_schedule_set(project=project, every_seconds=300, enabled=False)
        assert PeriodicTask.objects.filter(name=task.name).count() == 1
        assert task.crontab is None
        assert task.interval.every == 300 and not task.enabled
        assert project_schedule_clear(project=project) is True
        assert project_schedule_clear(project=project) is False

    @pytest.mark.parametrize(
        "kwargs",
        [
            {},
            {"crontab": "* * * * *", "every_seconds": 5},
            {"crontab": "*/5 * *"},
            {"crontab": "99 * * * *"},
            {"every_seconds": 0},
        ],
    )
    def test_bad_schedules_are_refused(self, make_project, kwargs):
        project = make_project()
        with pytest.raises(ValidationError):
            project_schedule_set(project=project, **kwargs)
        assert not PeriodicTask.objects.filter(
            name=f"import project {project.pk}"
        ).exists()


class TestScheduleCommand:
    def test_set_show_clear(self, make_project):
        project = make_project()
        out = io.StringIO()
        call_command(
            "import_schedule", str(project.pk), "--cron", "*/5 * * * *", stdout=out
        )
        assert out.getvalue().startswith(f"project {project.pk}: cron */5 * * * *")
        out = io.StringIO()
        call_command("import_schedule", str(project.pk), stdout=out)
        assert "enabled" in out.getvalue()
        out = io.StringIO()
        call_command("import_schedule", str(project.pk), "--clear", stdout=out)
        assert out.getvalue() == f"project {project.pk}: schedule removed\n"

    @pytest.mark.parametrize(
        "args, fragment",
        [
            (["--cron", "* *"], "five fields"),
            (["--cron", "*/5 * * * *", "--every", "5"], "not allowed with"),
            (["--every", "0"], "at least one second"),
        ],
    )
    def test_bad_arguments_exit_2(self, make_project, args, fragment):
        project = make_project()
        with pytest.raises(CommandError) as excinfo:
            call_command("import_schedule", str(project.pk), *args)
        assert excinfo.value.returncode == 2
        assert fragment in str(excinfo.value)

    def test_unknown_project_exits_2(self):
        with pytest.raises(CommandError) as excinfo:
            call_command("import_schedule", "999999", "--every", "60")
        assert excinfo.value.returncode == 2


class TestScheduledTick:
    def test_tick_of_an_idle_project_publishes_only_the_run(
        self, make_project, published
    ):
        """The guard runs in the caller (beat): one message, the run's own."""
        project = make_project()
        result = project_import_scheduled_task.apply_async(
            kwargs={"project_id": project.pk}
        )
        run = ImportRun.objects.get(project=project)
        assert result.id == run.celery_task_id
        assert (run.trigger, run.requested_by) == ("schedule", "schedule")
        assert published() == 1

    def test_tick_of_a_busy_project_is_recorded_as_skipped(
        self, make_project, published, caplog
    ):
        """Busy: a 'skipped: busy' event, no message, no exception, no error."""
        project = make_project()
        first = project_import_scheduled_task.apply_async(
            kwargs={"project_id": project.pk}
        )
        caplog.set_level(logging.INFO)
        project_import_scheduled_task.apply_async(kwargs={"project_id": project.pk})
        project_import_scheduled_task.delay(project_id=project.pk)
        assert ImportRun.objects.filter(project=project).count() == 1
        assert published() == 1
        events = ProjectEvent.objects.filter(project=project)
        assert [e.kind for e in events] == ["skipped_busy", "skipped_busy"]
        event = events[0]
        assert event.actor == "schedule"
        assert event.message == PROJECT_BUSY_MESSAGE.format(project_id=project.pk)
        run = ImportRun.objects.get(project=project)
        assert run.celery_task_id == first.id
        assert event.data == {"code": "project_busy", "active_run": run.pk}
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    def test_tick_of_an_inactive_project_is_recorded_with_a_warning(
        self, make_project, published, caplog
    ):
        project = make_project(is_active=False)
        project_import_scheduled_task.apply_async(kwargs={"project_id": project.pk})
        event = ProjectEvent.objects.get(project=project)
        assert event.kind == ProjectEvent.Kind.SKIPPED_INVALID
        assert event.data == {"code": "project_not_importable"}
        assert published() == 0
        assert [
            r.levelname for r in caplog.records if r.name.startswith("imports")
        ] == ["WARNING"]

    def test_the_task_body_does_the_same_on_a_worker(self, make_project, published):
        """A message sent by name reaches the body: the same guarded tick."""
        project = make_project()
        assert project_import_scheduled_task.run(project_id=project.pk) is not None
        assert project_import_scheduled_task.run(project_id=project.pk) is None
        assert published() == 1
        assert ProjectEvent.objects.get(project=project).kind == "skipped_busy"


def test_tick_windows():
    from celery import schedules

    assert tick_window_seconds(schedules.crontab()) == 30
    assert tick_window_seconds(schedules.schedule(10)) == 5


class TestScheduledBatch:
    def test_a_batch_of_ticks_is_decided_per_project(
        self, make_project, published, caplog
    ):
        """Beat's batch: one guard call; each project gets its own outcome."""
        from imports.services.schedules import projects_import_scheduled

        idle, busy, inactive = make_project(), make_project(), make_project()
        inactive.is_active = False
        inactive.save(update_fields=["is_active"])
        first = project_import_scheduled_task.apply_async(
            kwargs={"project_id": busy.pk}
        )
        caplog.set_level(logging.INFO)
        runs = projects_import_scheduled(
            project_ids=[idle.pk, busy.pk, inactive.pk, 999_999_999]
        )
        assert [run.project_id for run in runs] == [idle.pk]
        assert published() == 2
        assert ImportRun.objects.filter(project=busy).count() == 1
        skipped = ProjectEvent.objects.get(project=busy)
        assert skipped.kind == ProjectEvent.Kind.SKIPPED_BUSY
        assert skipped.data == {
            "code": "project_busy",
            "active_run": ImportRun.objects.get(celery_task_id=first.id).pk,
        }
        refused = ProjectEvent.objects.get(project=inactive)
        assert refused.kind == ProjectEvent.Kind.SKIPPED_INVALID
        assert not ImportRun.objects.filter(project=inactive).exists()
        assert any(
            "unknown project 999999999" in r.getMessage() for r in caplog.records
        )


def test_the_next_entry_is_what_a_fresh_entry_of_the_row_would_be(make_project):
    """Beat's entry after a tick is a copy (no crontab parsed again), and
    equals what django-celery-beat would build from the updated row."""
    from django_celery_beat.schedulers import ModelEntry

    from config.celery import app
    from imports.scheduler import ImporthubEntry

    task = project_schedule_set(project=make_project(), crontab="*/5 * * * *")
    entry = ImporthubEntry(task, app=app)
    runs_before = task.total_run_count
    following = next(entry)
    fresh = ModelEntry(task, app=app)
    assert type(following) is ImporthubEntry
    assert following.schedule is entry.schedule  # reused, not parsed again
    for name in ("name", "task", "args", "kwargs", "options", "schedule"):
        assert getattr(following, name) == getattr(fresh, name), name
    assert following.total_run_count == fresh.total_run_count == runs_before + 1
    assert following.last_run_at == fresh.last_run_at == task.last_run_at
    due, fresh_due = following.is_due(), fresh.is_due()
    assert due.is_due == fresh_due.is_due
    assert due.next == pytest.approx(fresh_due.next, abs=1)  # read a moment apart
    # Each entry has options of its own.
    following.options["headers"]["x"] = 1
    assert "x" not in entry.options["headers"]
