"""The imports dashboard: the page and the geometry of its runs-per-day chart.

The figures come from the selectors of ``imports.services.dashboard``; this
module only arranges them for ``admin/imports/dashboard.html``.
"""

import datetime

from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext

from imports.admin.base import REFRESH_MILLISECONDS
from imports.admin.display import format_duration
from imports.models import ImportRun
from imports.services import dashboard as selectors


def dashboard_view(request, *, model_admin):
    """The dashboard, for anyone who may view runs (``model_admin``'s right)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    now = timezone.now()
    days = selectors.runs_per_day(days=30, now=now)
    window = selectors.DASHBOARD_WINDOW
    counts = selectors.run_status_counts(
        since=selectors.run_window_start(window, now=now)
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Imports dashboard"),
        "opts": model_admin.opts,
        "status_counts": [
            (status, label, counts[status])
            for status, label in ImportRun.Status.choices
        ],
        # The cards link to the runs list filtered by the same window.
        "window": window,
        "chart": runs_chart(days),
        "in_progress": list(selectors.runs_in_progress()),
        "connectors": selectors.connector_usage(),
        "slowest": [
            {
                **row,
                "average_display": format_duration(row["average"]),
                "longest_display": format_duration(row["longest"]),
            }
            for row in selectors.slowest_projects(
                since=now - datetime.timedelta(days=30)
            )
        ],
        "refresh_ms": REFRESH_MILLISECONDS * 2,
        "media": model_admin.media,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/imports/dashboard.html", context)


def runs_chart(days: list) -> dict:
    """Geometry of a server-side SVG bar chart of runs per day.

    ``days`` are ``DayCount``s, oldest first; each bar stacks the failed runs
    on the succeeded ones, scaled to the busiest day.
    """
    width, height, gap = 18, 120, 4
    top = max([d.succeeded + d.failed for d in days] + [1])
    bars = []
    for index, day in enumerate(days):
        x = index * (width + gap)
        ok_h = round(day.succeeded * height / top)
        bad_h = round(day.failed * height / top)
        bars.append(
            {
                "x": x,
                "day": day.day,
                "succeeded": day.succeeded,
                "failed": day.failed,
                "ok_y": height - ok_h,
                "ok_h": ok_h,
                "bad_y": height - ok_h - bad_h,
                "bad_h": bad_h,
                "label": index % 5 == 0 or index == len(days) - 1,
            }
        )
    return {
        "bars": bars,
        # Room for the last day's label past its bar.
        "width": len(days) * (width + gap) + 16,
        "height": height,
        "bar_width": width,
        "top": top,
        "total_succeeded": sum(d.succeeded for d in days),
        "total_failed": sum(d.failed for d in days),
    }
