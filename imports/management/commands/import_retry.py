"""Retry failed (or cancelled) runs, each as a new run linked to it."""

import sys

from django.db.models import Exists, OuterRef

from imports.exceptions import ImportRequestError
from imports.management.base import (
    EXIT_BUSY,
    EXIT_FAILED,
    OperatorCommand,
    bad_arguments,
    is_busy,
    parse_since,
)
from imports.models import ImportRun
from imports.services.operations import import_run_retry

PAGE_SIZE = 500


def latest_failed_runs(*, since=None):
    """Failed runs that are their project's newest run.

    A project whose failure was followed by another run (a retry, a later
    success) needs no retry of the old failure.
    """
    newer = ImportRun.objects.filter(
        project_id=OuterRef("project_id"), pk__gt=OuterRef("pk")
    )
    runs = ImportRun.objects.failed().filter(~Exists(newer))
    if since is not None:
        runs = runs.filter(created_at__gte=since)
    return runs


class Command(OperatorCommand):
    help = (
        "Retry runs: the given RUN_IDs, or with --failed every project whose "
        "newest run failed (optionally only since a moment). Prints "
        "'retried <run> as run <new run> (project <project>)' or 'rejected "
        "<run>: <reason>' per run. Exit status: 0 when all were retried, 3 "
        "when any project was busy, 1 when any could not be retried for "
        "another reason, 2 on bad arguments."
    )

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="*", type=int, metavar="RUN_ID")
        parser.add_argument(
            "--failed",
            action="store_true",
            help="Retry every project whose newest run failed.",
        )
        parser.add_argument(
            "--since",
            metavar="WHEN",
            help="With --failed: only runs created since then: an ISO "
            "date-time (2025-01-31T08:00) or an age (30m, 24h, 7d).",
        )
        parser.add_argument(
            "--requested-by",
            default="",
            help="Who asks (recorded on the runs); defaults to the command.",
        )
        parser.add_argument(
            "--confirm-deletions",
            action="store_true",
            help="Allow the retried replace runs to delete more than the "
            "project's deletion limit.",
        )

    def handle(
        self, *args, run_ids, failed, since, requested_by, confirm_deletions, **options
    ):
        if since and not failed:
            raise bad_arguments("--since goes with --failed.")
        if run_ids and failed:
            raise bad_arguments("Give RUN_IDs or --failed, not both.")
        if not run_ids and not failed:
            raise bad_arguments("Say which runs: RUN_ID ... or --failed.")
        requested_by = requested_by or "manage.py import_retry"
        if failed:
            runs = self.failed_runs(parse_since(since) if since else None)
        else:
            ids = list(dict.fromkeys(run_ids))
            found = ImportRun.objects.in_bulk(ids)
            missing = [rid for rid in ids if rid not in found]
            if missing:
                raise bad_arguments(
                    f"Unknown run id(s): {', '.join(map(str, missing))}."
                )
            runs = [found[rid] for rid in ids]

        retried = busy = refused = 0
        for run in runs:
            try:
                new = import_run_retry(
                    run=run,
                    requested_by=requested_by,
                    confirm_deletions=confirm_deletions,
                )
            except ImportRequestError as exc:
                self.stdout.write(f"rejected {run.pk}: {exc}")
                if is_busy(exc):
                    busy += 1
                else:
                    refused += 1
            else:
                retried += 1
                self.stdout.write(
                    f"retried {run.pk} as run {new.pk} (project {run.project_id})"
                )
        self.stderr.write(
            f"retried {retried}, rejected as busy {busy}, refused {refused}"
        )
        if refused:
            sys.exit(EXIT_FAILED)
        if busy:
            sys.exit(EXIT_BUSY)

    def failed_runs(self, since):
        """The runs to retry, a page at a time, by primary key."""
        runs = latest_failed_runs(since=since)
        last = 0
        while True:
            page = list(runs.filter(pk__gt=last).order_by("pk")[:PAGE_SIZE])
            if not page:
                return
            yield from page
            last = page[-1].pk
