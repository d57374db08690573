"""HTML fragments of the importhub admin: pure functions of what they show.

Each helper builds its markup with ``format_html`` (every value escaped) and
reads nothing but its arguments and the objects' loaded fields; the queries
behind them live in the ModelAdmins and ``imports.services.dashboard``.
"""

import datetime
import json

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from connectors.registry import connector_secret_fields
from connectors.secrets import mask_config
from imports.models import ImportRun
from imports.services.dashboard import ErrorStage
from imports.services.progress import run_progress


def format_duration(value: datetime.timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def format_count(value: int) -> str:
    # A thin space groups digits in both languages an operator may read.
    return f"{value:,}".replace(",", "\u202f")


def first_line(text: str, limit: int = 120) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def run_url(run_id: int) -> str:
    return reverse("admin:imports_importrun_change", args=[run_id])


def run_link(run: ImportRun) -> SafeString:
    """``#17``, linked to the run's page."""
    return format_html('<a href="{}">#{}</a>', run_url(run.pk), run.pk)


def status_badge(run: ImportRun) -> SafeString:
    return format_html(
        '<span class="run-status run-status-{}">{}</span>',
        run.status,
        run.get_status_display(),
    )


def progress_bar(run: ImportRun) -> SafeString:
    """A bar, the rows read and, while active, the rows a second and the
    time left. The bar is determinate when the source told its total (a
    file's size, an SQL estimate, an API's total), indeterminate otherwise
    while active; full once succeeded, empty when it ended otherwise."""
    rows = format_count(run.rows_read)
    progress = run_progress(run)
    if run.status == ImportRun.Status.SUCCEEDED:
        bar = mark_safe('<progress class="run-progress" value="1" max="1"></progress>')
    elif progress.fraction is not None:
        bar = format_html(
            '<progress class="run-progress" value="{}" max="100" title="{}%">'
            "</progress>",
            f"{progress.fraction * 100:.1f}",
            progress.percent,
        )
    elif run.is_active:
        bar = format_html('<progress class="run-progress" title="{}"></progress>', rows)
    else:
        bar = mark_safe('<progress class="run-progress" value="0" max="1"></progress>')
    label = ngettext("%(rows)s row read", "%(rows)s rows read", run.rows_read) % {
        "rows": rows
    }
    stats = []
    if run.is_active and progress.percent is not None:
        stats.append(f"{progress.percent}%")
    if run.is_active and progress.rows_per_second:
        stats.append(
            gettext("%(rate)s rows/s")
            % {"rate": format_count(round(progress.rows_per_second))}
        )
    if progress.remaining is not None:
        stats.append(
            gettext("about %(time)s left")
            % {"time": format_duration(progress.remaining)}
        )
    return format_html(
        '{} <span class="run-rows" data-rows-read="{}">{}</span>{}',
        bar,
        run.rows_read,
        label,
        format_html(' <span class="run-progress-stats">{}</span>', " · ".join(stats))
        if stats
        else "",
    )


def run_counts(run: ImportRun) -> SafeString:
    """The counts of a run on one line, a sign and a tooltip each."""
    parts = [
        ("+", _("inserted"), run.rows_inserted),
        ("~", _("updated"), run.rows_updated),
        ("=", _("unchanged"), run.rows_unchanged),
        ("−", _("deleted"), run.rows_deleted),
        ("✗", _("rejected"), run.rows_rejected),
        ("⧉", _("duplicates"), run.rows_duplicates),
    ]
    return format_html_join(
        " ",
        '<span class="run-count" title="{}">{}{}</span>',
        ((str(title), sign, format_count(value)) for sign, title, value in parts),
    )


def counts_table(run: ImportRun) -> SafeString:
    """The counts of a run as a table, one labelled row each."""
    rows = [
        (_("rows read"), run.rows_read),
        (_("inserted"), run.rows_inserted),
        (_("updated"), run.rows_updated),
        (_("unchanged"), run.rows_unchanged),
        (_("deleted"), run.rows_deleted),
        (_("rejected"), run.rows_rejected),
        (_("duplicate rows"), run.rows_duplicates),
    ]
    return format_html(
        '<table class="run-counts"><tbody>{}</tbody></table>',
        format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            ((str(label), format_count(value)) for label, value in rows),
        ),
    )


def run_error(run: ImportRun) -> str:
    """The error's class in bold and its first line; the whole as a tooltip."""
    if not run.error_class and not run.error_message:
        return ""
    text = run.error_text
    return format_html(
        '<span class="run-error" title="{}"><b>{}</b> {}</span>',
        text,
        run.error_class,
        first_line(text),
    )


def error_stage_label(stage: str | None) -> str:
    """Where a run stopped (``ErrorStage``), in words."""
    return {
        None: "—",
        ErrorStage.BEFORE_START: gettext("before the run started"),
        ErrorStage.EXTRACT: gettext("reading the source (extract)"),
        ErrorStage.LOAD: gettext("writing the records (load)"),
    }[stage]


def retry_links(run: ImportRun, retries: list[ImportRun]) -> str:
    """The run this one retried, and the runs that retried this one."""
    parts = []
    if run.retry_of_id:
        parts.append(
            format_html(
                '{} <a class="retry-of" href="{}">#{}</a>',
                gettext("Retry of"),
                run_url(run.retry_of_id),
                run.retry_of_id,
            )
        )
    if retries:
        parts.append(
            format_html(
                "{} {}",
                gettext("Retried as"),
                format_html_join(
                    ", ",
                    '<a class="retry" href="{}">#{}</a> {}',
                    ((run_url(r.pk), r.pk, status_badge(r)) for r in retries),
                ),
            )
        )
    if not parts:
        return "—"
    return format_html_join(mark_safe("<br>"), "{}", ((p,) for p in parts))


def lock_status(active_run: ImportRun | None) -> str:
    """Whether a project is free or which run holds it."""
    if active_run is None:
        return gettext("Free: no import is active.")
    return format_html(
        "{} {} {}",
        gettext("Importing:"),
        run_link(active_run),
        status_badge(active_run),
    )


def schedule_summary(task) -> str:
    """A project's periodic task: when, whether enabled, its last run."""
    if task is None:
        return gettext("No schedule.")
    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    state = gettext("enabled") if task.enabled else gettext("disabled")
    last = (
        timezone.localtime(task.last_run_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        if task.last_run_at
        else "—"
    )
    return format_html(
        '<a href="{}">{}</a> ({}; {}: {})',
        url,
        str(task.scheduler) if task.scheduler else task.name,
        state,
        gettext("last run"),
        last,
    )


def recent_runs_table(runs: list[ImportRun], *, project_id: int) -> str:
    """A project's last runs, newest first, and a link to all of them."""
    if not runs:
        return gettext("No runs yet.")
    rows = format_html_join(
        "",
        "<tr><td><a href='{}'>#{}</a></td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                run_url(run.pk),
                run.pk,
                status_badge(run),
                run.get_trigger_display(),
                timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M:%S %Z"),
                format_duration(run.duration),
                format_count(run.rows_read),
                first_line(run.error_text, 80),
            )
            for run in runs
        ),
    )
    all_url = (
        reverse("admin:imports_importrun_changelist")
        + "?"
        + urlencode({"project__id__exact": project_id})
    )
    return format_html(
        '<table class="recent-runs"><thead><tr><th>{}</th><th>{}</th>'
        "<th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
        '<tbody>{}</tbody></table><p><a href="{}">{}</a></p>',
        gettext("Run"),
        gettext("Status"),
        gettext("Trigger"),
        gettext("Created"),
        gettext("Duration"),
        gettext("Rows read"),
        gettext("Error"),
        rows,
        all_url,
        gettext("All runs of this project"),
    )


def import_started(run: ImportRun) -> SafeString:
    """The message after "Import now": the new run, linked."""
    return format_html("{} {}", gettext("Import started:"), run_link(run))


def masked_json(kind: str | None, value) -> SafeString:
    """A connector config or project source as JSON, its secrets masked."""
    return format_html(
        "<pre>{}</pre>",
        json.dumps(
            mask_config(value, secret_fields=connector_secret_fields(kind)),
            indent=2,
            ensure_ascii=False,
        ),
    )
