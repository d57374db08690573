"""Set, show or clear a project's import schedule."""

from django.core.exceptions import ValidationError

from imports.management.base import OperatorCommand, bad_arguments
from imports.models import Project
from imports.services.schedules import (
    project_schedule_clear,
    project_schedule_get,
    project_schedule_set,
)


def describe(task) -> str:
    if task is None:
        return "no schedule"
    when = f"cron {task.crontab}" if task.crontab else f"every {task.interval}"
    state = "enabled" if task.enabled else "disabled"
    return f"{when}, {state} (periodic task {task.pk} “{task.name}”)"


class Command(OperatorCommand):
    help = (
        "Schedule a project's imports by crontab (--cron '*/5 * * * *') or "
        "interval (--every 300), or remove the schedule (--clear). With no "
        "option, show it. The schedule is a periodic task, also editable in "
        "the admin. Exit status 2 on bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("project_id", type=int, metavar="PROJECT_ID")
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--cron", metavar="'M H DoM Mon DoW'")
        how.add_argument("--every", type=int, metavar="SECONDS")
        how.add_argument("--clear", action="store_true")
        parser.add_argument(
            "--disabled", action="store_true", help="Save it switched off."
        )

    def handle(self, *args, project_id, cron, every, clear, disabled, **options):
        try:
            project = Project.objects.get(pk=project_id)
        except Project.DoesNotExist:
            raise bad_arguments(f"Unknown project id: {project_id}.")
        if clear:
            removed = project_schedule_clear(project=project)
            self.stdout.write(
                f"project {project.pk}: "
                + ("schedule removed" if removed else "had no schedule")
            )
            return
        if cron is None and every is None:
            if disabled:
                raise bad_arguments("--disabled goes with --cron or --every.")
            task = project_schedule_get(project=project)
            self.stdout.write(f"project {project.pk}: {describe(task)}")
            return
        try:
            task = project_schedule_set(
                project=project,
                crontab=cron,
                every_seconds=every,
                enabled=not disabled,
            )
        except ValidationError as exc:
            raise bad_arguments("; ".join(exc.messages))
        self.stdout.write(f"project {project.pk}: {describe(task)}")
