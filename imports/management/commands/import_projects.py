"""Start imports of one project, a list of projects, or a filtered selection."""

import sys

from django.core.exceptions import ValidationError
from django.db.models import Q

from connectors.models import Connector
from connectors.registry import connector_kinds
from imports.management.base import (
    EXIT_BUSY,
    EXIT_FAILED,
    OperatorCommand,
    bad_arguments,
    batches,
    chunks,
    is_busy,
    is_invalid,
    parse_id_list,
)
from imports.management.progress import runs_wait
from imports.models import ImportRun, Project
from imports.services.guard import RunRequest, import_runs_request

DEFAULT_PAGE_SIZE = 500

# Project fields a --filter may name, each with how its value is read.
# Anything else is refused: a typo must not silently select every project.
FILTER_FIELDS = {
    "id": "int",
    "name": "text",
    "name__startswith": "text",
    "name__icontains": "text",
    "mode": Project.Mode,
    "on_bad_row": Project.OnBadRow,
    "is_active": "bool",
    "max_retries": "int",
    "connector": "int",
    "connector__name": "text",
    "connector__kind": "kind",
    "connector__is_enabled": "bool",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def filter_value(field: str, raw: str):
    kind = FILTER_FIELDS[field]
    if kind == "text":
        return raw
    if kind == "int":
        if not raw.strip().isdigit():
            raise bad_arguments(f"--filter {field}={raw}: expected a number.")
        return int(raw)
    if kind == "bool":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise bad_arguments(f"--filter {field}={raw}: expected true or false.")
    if kind == "kind":
        kinds = connector_kinds()
        if raw not in kinds:
            raise bad_arguments(
                f"--filter {field}={raw}: expected one of {', '.join(kinds)}."
            )
        return raw
    if raw not in kind.values:
        raise bad_arguments(
            f"--filter {field}={raw}: expected one of {', '.join(kind.values)}."
        )
    return raw


def selection_filter(filters: list[str]) -> Q:
    """``--filter`` values as one Q: the same field repeated means any of
    its values, different fields must all match."""
    by_field: dict[str, list] = {}
    for item in filters:
        field, sep, raw = item.partition("=")
        field = field.strip()
        if not sep or not field:
            raise bad_arguments(
                f"--filter {item!r}: expected field=value, such as mode=replace."
            )
        if field not in FILTER_FIELDS:
            raise bad_arguments(
                f"--filter {item!r}: unknown field {field!r}; filter on one of "
                f"{', '.join(FILTER_FIELDS)}."
            )
        by_field.setdefault(field, []).append(filter_value(field, raw))
    q = Q()
    for field, values in by_field.items():
        values = list(dict.fromkeys(values))
        q &= (
            Q(**{field: values[0]})
            if len(values) == 1
            else Q(**{f"{field}__in": values})
        )
    return q


def pages(queryset, page_size: int):
    """The queryset in pages by primary key: ``WHERE pk > last ORDER BY pk``.

    Keyset paging, not OFFSET: a project added or deleted meanwhile never
    makes a page skip or repeat another project, and memory holds one page.
    """
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk")[:page_size])
        if not page:
            return
        yield page
        last = page[-1].pk


class Command(OperatorCommand):
    help = (
        "Start imports of projects chosen by id (--project, --projects) or by "
        "a selection (--all, --connector, --filter), paged by primary key. "
        "Prints 'accepted <project> run <run>' or 'rejected <project>: "
        "<reason>' per project and a summary on stderr. With --wait, follows "
        "the runs until they end. Exit status: 0 when all were accepted (and, "
        "with --wait, succeeded); 3 when any was rejected as busy; 1 when any "
        "was rejected for another reason or, with --wait, failed or was "
        "cancelled; 2 on bad arguments."
    )

    def add_arguments(self, parser):
        ids = parser.add_argument_group("projects by id")
        ids.add_argument(
            "--project",
            dest="project_ids",
            action="append",
            type=int,
            metavar="ID",
            help="A project id; repeat for several.",
        )
        ids.add_argument(
            "--projects",
            dest="project_lists",
            action="append",
            metavar="ID,ID,...",
            help="Project ids separated by commas.",
        )
        chosen = parser.add_argument_group(
            "a selection (active projects only, unless --filter is_active=...)"
        )
        chosen.add_argument("--all", action="store_true", help="Every project.")
        chosen.add_argument(
            "--connector",
            dest="connector_ids",
            action="append",
            type=int,
            metavar="ID",
            help="The projects of this connector; repeat for several.",
        )
        chosen.add_argument(
            "--filter",
            dest="filters",
            action="append",
            default=[],
            metavar="FIELD=VALUE",
            help=(
                "Only projects whose field has this value; repeat to combine "
                "(the same field repeated matches any of its values). Fields: "
                + ", ".join(FILTER_FIELDS)
                + "."
            ),
        )
        parser.add_argument(
            "--page-size",
            type=int,
            default=DEFAULT_PAGE_SIZE,
            help=f"Projects loaded per page (default {DEFAULT_PAGE_SIZE}).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List the selected projects; start nothing.",
        )
        parser.add_argument(
            "--requested-by",
            default="",
            help="Who asks (recorded on the run); defaults to the command.",
        )
        parser.add_argument(
            "--wait",
            action="store_true",
            help="Follow the accepted runs until they end (a progress bar on "
            "stderr); exit 1 if any failed or was cancelled.",
        )
        parser.add_argument(
            "--poll-interval",
            type=float,
            default=1.0,
            metavar="SECONDS",
            help="With --wait: seconds between polls (default 1).",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            metavar="SECONDS",
            help="With --wait: give up waiting after this long (exit 1).",
        )
        parser.add_argument(
            "--confirm-deletions",
            action="store_true",
            help="Allow replace runs to delete more than each project's "
            "deletion limit (or to empty a project whose source is empty).",
        )
        parser.add_argument(
            "--full-refresh",
            action="store_true",
            help="Incremental projects read their whole source again and start "
            "their cursor anew (recorded on the run).",
        )
        parser.add_argument(
            "--reason",
            default="",
            help="Why: recorded on each run's request (with --full-refresh).",
        )

    def handle(self, *args, **options):
        if options["page_size"] < 1:
            raise bad_arguments("--page-size must be at least 1.")
        if options["poll_interval"] <= 0:
            raise bad_arguments("--poll-interval must be positive.")
        projects = self.selection(options)
        if options["dry_run"]:
            count = 0
            for project in projects:
                count += 1
                self.stdout.write(f"selected {project.pk} {project.name}")
            self.stderr.write(f"{count} project(s) selected; nothing started.")
            return

        requested_by = options["requested_by"] or "manage.py import_projects"
        accepted: list[int] = []
        busy = invalid = errors = 0
        # A page at a time through the guard's bulk call: one Redis round
        # trip and one statement per page, each project answered on its own.
        for page in batches(projects, options["page_size"]):
            outcomes = import_runs_request(
                requests=[RunRequest(project) for project in page],
                requested_by=requested_by,
                trigger=ImportRun.Trigger.COMMAND,
                confirm_deletions=options["confirm_deletions"],
                full_refresh=options["full_refresh"],
                reason=options["reason"],
            )
            for outcome in outcomes:
                project, exc = outcome.project, outcome.error
                if exc is not None:
                    self.stdout.write(f"rejected {project.pk}: {exc}")
                    if is_busy(exc):
                        busy += 1
                    elif is_invalid(exc):
                        invalid += 1
                    else:
                        errors += 1
                else:
                    accepted.append(outcome.run.pk)
                    self.stdout.write(f"accepted {project.pk} run {outcome.run.pk}")
        summary = (
            f"accepted {len(accepted)}, rejected as busy {busy}, "
            f"rejected as invalid {invalid}"
        )
        if errors:
            summary += f", not started (errors) {errors}"
        self.stderr.write(summary)

        failed_runs = 0
        if options["wait"] and accepted:
            failed_runs = self.wait(accepted, options)
        if invalid or errors or failed_runs:
            sys.exit(EXIT_FAILED)
        if busy:
            sys.exit(EXIT_BUSY)

    def selection(self, options):
        """The chosen projects, as an iterable that loads a page at a time."""
        explicit = bool(options["project_ids"] or options["project_lists"])
        filtered = bool(
            options["all"] or options["connector_ids"] or options["filters"]
        )
        if explicit and filtered:
            raise bad_arguments(
                "Choose projects either by id (--project, --projects) or by a "
                "selection (--all, --connector, --filter), not both."
            )
        if not explicit and not filtered:
            raise bad_arguments(
                "Say which projects: --project ID, --projects 1,2,3, "
                "--connector ID, --filter field=value or --all."
            )
        if options["all"] and (options["connector_ids"] or options["filters"]):
            raise bad_arguments(
                "--all selects every project; drop it to use --connector or --filter."
            )
        if explicit:
            return self.by_id(options)

        queryset = Project.objects.select_related("connector")
        if options["connector_ids"]:
            wanted = set(options["connector_ids"])
            found = set(
                Connector.objects.filter(pk__in=wanted).values_list("pk", flat=True)
            )
            if wanted - found:
                raise bad_arguments(
                    "Unknown connector id(s): "
                    f"{', '.join(map(str, sorted(wanted - found)))}."
                )
            queryset = queryset.filter(connector_id__in=wanted)
        q = selection_filter(options["filters"])
        if not any(f.split("=")[0].strip() == "is_active" for f in options["filters"]):
            q &= Q(is_active=True)
        try:
            queryset = queryset.filter(q)
        except ValidationError as exc:
            raise bad_arguments(f"--filter: {'; '.join(exc.messages)}")
        return (
            project
            for page in pages(queryset, options["page_size"])
            for project in page
        )

    def by_id(self, options):
        ids = list(options["project_ids"] or [])
        for value in options["project_lists"] or []:
            ids.extend(parse_id_list(value, option="--projects"))
        ids = list(dict.fromkeys(ids))
        page_size = options["page_size"]
        missing = []
        for chunk in chunks(ids, page_size):
            found = set(
                Project.objects.filter(pk__in=chunk).values_list("pk", flat=True)
            )
            missing.extend(pid for pid in chunk if pid not in found)
        if missing:
            raise bad_arguments(
                f"Unknown project id(s): {', '.join(map(str, missing))}."
            )

        def projects():
            for chunk in chunks(ids, page_size):
                found = Project.objects.select_related("connector").in_bulk(chunk)
                # A project deleted since the check is skipped, not fatal.
                yield from (found[pid] for pid in chunk if pid in found)

        return projects()

    def wait(self, run_ids: list[int], options) -> int:
        """Follow the runs; print the ones that did not succeed. Returns
        how many failed, were cancelled, or (on timeout) had not ended."""
        tally = runs_wait(
            run_ids,
            stream=self.stderr._out,
            interval=options["poll_interval"],
            timeout=options["timeout"],
        )
        if tally is None:
            self.stderr.write(
                f"gave up waiting after {options['timeout']:g} s; runs go on."
            )
            return len(run_ids)
        unsuccessful = ImportRun.objects.filter(pk__in=run_ids).exclude(
            status=ImportRun.Status.SUCCEEDED
        )
        count = 0
        for run in unsuccessful.order_by("pk").iterator():
            count += 1
            reason = run.error_text.splitlines()[0] if run.error_message else ""
            self.stdout.write(f"{run.status} {run.project_id} run {run.pk}: {reason}")
        return count
