"""Cancel active runs."""

import sys

from imports.exceptions import ImportRequestError
from imports.management.base import EXIT_FAILED, OperatorCommand, bad_arguments
from imports.models import ImportRun
from imports.services.operations import import_run_cancel


class Command(OperatorCommand):
    help = (
        "Cancel active runs. A queued or waiting run never starts; a running "
        "one stops at its next batch and writes nothing. Prints 'cancelled "
        "<run>' or 'rejected <run>: <reason>' per run. Exit status: 0 when "
        "all were cancelled, 1 when any could not be (already finished), 2 on "
        "bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="+", type=int, metavar="RUN_ID")
        parser.add_argument("--reason", default="", help="Why (recorded on the run).")
        parser.add_argument(
            "--cancelled-by",
            default="",
            help="Who cancels (recorded); defaults to the command.",
        )

    def handle(self, *args, run_ids, reason, cancelled_by, **options):
        ids = list(dict.fromkeys(run_ids))
        found = ImportRun.objects.in_bulk(ids)
        missing = [rid for rid in ids if rid not in found]
        if missing:
            raise bad_arguments(f"Unknown run id(s): {', '.join(map(str, missing))}.")
        cancelled_by = cancelled_by or "manage.py import_cancel"
        refused = 0
        for rid in ids:
            try:
                run = import_run_cancel(
                    run=found[rid], cancelled_by=cancelled_by, reason=reason
                )
            except ImportRequestError as exc:
                refused += 1
                self.stdout.write(f"rejected {rid}: {exc}")
            else:
                self.stdout.write(f"cancelled {run.pk} (project {run.project_id})")
        if refused:
            sys.exit(EXIT_FAILED)
