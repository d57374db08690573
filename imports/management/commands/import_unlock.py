"""Force-unlock stuck projects (an audited operator's tool)."""

from imports.management.base import OperatorCommand, bad_arguments
from imports.models import Project
from imports.services.operations import project_force_unlock


class Command(OperatorCommand):
    help = (
        "Free a project whose lock or run outlived its worker: its active run "
        "(if any) is failed and its lock released. Recorded as an event on "
        "the project with who and why. Exit status: 0, or 2 on bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("project_ids", nargs="+", type=int, metavar="PROJECT_ID")
        parser.add_argument("--reason", required=True, help="Why (required; recorded).")
        parser.add_argument(
            "--unlocked-by",
            default="",
            help="Who unlocks (recorded); defaults to the command.",
        )

    def handle(self, *args, project_ids, reason, unlocked_by, **options):
        if not reason.strip():
            raise bad_arguments("--reason must say why the project is unlocked.")
        ids = list(dict.fromkeys(project_ids))
        found = Project.objects.in_bulk(ids)
        missing = [pid for pid in ids if pid not in found]
        if missing:
            raise bad_arguments(
                f"Unknown project id(s): {', '.join(map(str, missing))}."
            )
        unlocked_by = unlocked_by or "manage.py import_unlock"
        for pid in ids:
            result = project_force_unlock(
                project=found[pid], unlocked_by=unlocked_by, reason=reason
            )
            run = result["run"]
            self.stdout.write(
                f"unlocked {pid}: "
                + (f"run {run.pk} failed" if run else "no active run")
                + (", lock released" if result["lock_released"] else ", no lock held")
            )
