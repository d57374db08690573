"""HTML fragments of the projects' operations view: the grid, badges, links.

Pure functions of ``imports.services.project_ops.ProjectOps`` and runs, as
in ``display``: every value escaped by ``format_html``.
"""

import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext

from imports.admin.display import run_url, status_badge
from imports.exceptions import ProjectBusy
from imports.models import ImportRun
from imports.services.project_ops import ProjectOps


def format_time(value: datetime.datetime | None) -> str:
    """A moment in the operator's time zone, to the second, zone named."""
    if value is None:
        return "—"
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")


def run_grid(runs: list[ImportRun]) -> SafeString:
    """A project's last runs as a row of coloured cells, oldest first (as
    Airflow's grid), each linked to its run, its status and time its title."""
    if not runs:
        return format_html('<span class="run-grid-empty">{}</span>', gettext("no runs"))
    cells = format_html_join(
        "",
        '<a class="run-cell run-status-{}" href="{}" title="{}" data-run-id="{}"></a>',
        (
            (
                run.status,
                run_url(run.pk),
                f"#{run.pk} {run.get_status_display()} · "
                f"{format_time(run.started_at or run.created_at)}",
                run.pk,
            )
            for run in reversed(runs)
        ),
    )
    return format_html('<span class="run-grid">{}</span>', cells)


def last_status(ops: ProjectOps) -> SafeString | str:
    """The last run's status badge, linked to it."""
    run = ops.last_run
    if run is None:
        return "—"
    return format_html(
        '<a class="last-run" href="{}" title="{}">{}</a>',
        run_url(run.pk),
        format_time(run.finished_at or run.started_at or run.created_at),
        status_badge(run),
    )


def busy_badge(ops: ProjectOps) -> SafeString | str:
    """ "Importing" linked to the active run, or nothing when the project is
    free."""
    run = ops.active_run
    if run is None:
        return ""
    return format_html(
        '<a class="busy-badge" href="{}" title="{}">{} #{}</a>',
        run_url(run.pk),
        run.get_status_display(),
        gettext("importing"),
        run.pk,
    )


def next_schedule(ops: ProjectOps) -> SafeString | str:
    """When the project's schedule fires next; "paused" when disabled."""
    if ops.schedule is None:
        return "—"
    if not ops.schedule.enabled:
        return format_html('<span class="schedule-paused">{}</span>', gettext("paused"))
    return format_html(
        '<span class="schedule-next" title="{}">{}</span>',
        str(ops.schedule.scheduler or ops.schedule.name),
        format_time(ops.next_run_at),
    )


def busy_message(exc) -> SafeString | str:
    """A refusal as text; the busy one exactly, with its active run linked
    beside it (the text itself is a contract, and stays as it is)."""
    if not isinstance(exc, ProjectBusy) or exc.active_run_id is None:
        return str(exc)
    return format_html(
        '<span class="busy-message">{}</span> <a class="busy-run" href="{}">{}</a>',
        str(exc),
        run_url(exc.active_run_id),
        gettext("open the active run #%(id)s") % {"id": exc.active_run_id},
    )


def started_runs(runs: list[ImportRun]) -> SafeString:
    """The runs an "Import now" started, linked."""
    return format_html(
        "{} {}",
        gettext("Started:"),
        format_html_join(
            ", ",
            '<a class="started-run" href="{}">#{}</a>',
            ((run_url(run.pk), run.pk) for run in runs),
        ),
    )
