"""Start imports of one project, a list of projects, or all of them."""

import sys

from django.core.management.base import BaseCommand, CommandError

from imports.exceptions import ImportRequestError, ProjectBusy
from imports.models import ImportRun, Project
from imports.services.runs import import_run_request

EXIT_FAILED = 1
EXIT_BAD_ARGUMENTS = 2
EXIT_BUSY = 3


class Command(BaseCommand):
    help = (
        "Start imports. Prints 'accepted <project> run <run>' or "
        "'rejected <project>: <reason>' per project. Exit status: 0 when all "
        "were accepted, 3 when any was rejected as busy, 1 when any could not "
        "be started for another reason, 2 on bad arguments."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument(
            "--project",
            dest="project_ids",
            action="append",
            type=int,
            metavar="ID",
            help="A project id; repeat for several.",
        )
        which.add_argument("--all", action="store_true", help="Every active project.")
        parser.add_argument(
            "--requested-by",
            default="",
            help="Who asks (recorded on the run); defaults to the command.",
        )

    def handle(self, *args, project_ids=None, all=False, requested_by="", **options):
        if all:
            projects = Project.objects.filter(is_active=True).select_related(
                "connector"
            )
            projects = projects.order_by("pk").iterator(chunk_size=500)
        else:
            ids = list(dict.fromkeys(project_ids))
            found = Project.objects.select_related("connector").in_bulk(ids)
            missing = [pid for pid in ids if pid not in found]
            if missing:
                raise CommandError(
                    f"Unknown project id(s): {', '.join(map(str, missing))}.",
                    returncode=EXIT_BAD_ARGUMENTS,
                )
            projects = [found[pid] for pid in ids]

        requested_by = requested_by or "manage.py import_projects"
        busy = failed = 0
        for project in projects:
            try:
                run = import_run_request(
                    project=project,
                    requested_by=requested_by,
                    trigger=ImportRun.Trigger.COMMAND,
                )
            except ImportRequestError as exc:
                self.stdout.write(f"rejected {project.pk}: {exc}")
                if isinstance(exc, ProjectBusy):
                    busy += 1
                else:
                    failed += 1
            else:
                self.stdout.write(f"accepted {project.pk} run {run.pk}")
        if failed:
            sys.exit(EXIT_FAILED)
        if busy:
            sys.exit(EXIT_BUSY)
