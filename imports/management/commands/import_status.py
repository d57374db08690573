"""Show import runs, as a table or as JSON."""

import json

from imports.management.base import OperatorCommand, bad_arguments, parse_since
from imports.models import RUN_COUNT_FIELDS, ImportRun

COUNT_FIELDS = RUN_COUNT_FIELDS


def run_as_dict(run: ImportRun) -> dict:
    return {
        "id": run.pk,
        "project": run.project_id,
        "status": run.status,
        "trigger": run.trigger,
        "attempt": run.attempt,
        "created_at": run.created_at.isoformat(),
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        **{name: getattr(run, name) for name in COUNT_FIELDS},
        "error_class": run.error_class,
        "error_message": run.error_text,
    }


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


class Command(OperatorCommand):
    help = "Show import runs, newest first."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print JSON.")
        parser.add_argument("--project", type=int, help="Only this project's runs.")
        parser.add_argument(
            "--active",
            action="store_true",
            help="Only queued, waiting, running or retrying runs.",
        )
        parser.add_argument("--failed", action="store_true", help="Only failed runs.")
        parser.add_argument(
            "--since",
            metavar="WHEN",
            help="Only runs created since then: an ISO date-time or an age "
            "(30m, 24h, 7d).",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=100,
            help="At most this many runs (default 100).",
        )

    def handle(self, *args, **options):
        if options["active"] and options["failed"]:
            raise bad_arguments("--active and --failed exclude each other.")
        if options["limit"] < 0:
            raise bad_arguments("--limit cannot be negative.")
        runs = ImportRun.objects.order_by("-created_at", "-id")
        if options["since"]:
            runs = runs.filter(created_at__gte=parse_since(options["since"]))
        if options["project"]:
            runs = runs.filter(project_id=options["project"])
        if options["active"]:
            runs = runs.active()
        if options["failed"]:
            runs = runs.failed()
        rows = [run_as_dict(run) for run in runs[: max(options["limit"], 0)]]
        if options["json"]:
            self.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        header = (
            f"{'run':>7} {'project':>7} {'status':<10} {'trigger':<8} "
            f"{'read':>9} {'ins':>8} {'upd':>8} {'dup':>6} error"
        )
        self.stdout.write(header)
        for row in rows:
            self.stdout.write(
                f"{row['id']:>7} {row['project']:>7} {row['status']:<10} "
                f"{row['trigger']:<8} {row['rows_read']:>9} {row['rows_inserted']:>8} "
                f"{row['rows_updated']:>8} {row['rows_duplicates']:>6} "
                f"{first_line(row['error_message'])}"
            )
