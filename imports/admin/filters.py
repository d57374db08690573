"""The runs list's own filters: the ready views and a rolling time window."""

from django.contrib import admin
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from imports.services.dashboard import RUN_WINDOWS, run_window_start


class RunViewFilter(admin.SimpleListFilter):
    """The two ready views operators open first: active and failed runs."""

    title = _("view")
    parameter_name = "view"

    def lookups(self, request, model_admin):
        return [
            ("active", _("Active (queued, waiting, running, retrying)")),
            ("failed", _("Failed")),
        ]

    def queryset(self, request, queryset):
        if self.value() == "active":
            return queryset.active()
        if self.value() == "failed":
            return queryset.failed()
        return queryset


class CreatedWithinFilter(admin.SimpleListFilter):
    """Runs created in the last hour, day or week, counted back from now.

    The dashboard's "last 24 hours" cards link here, so that a card's number
    and the list it opens count the same runs (a calendar filter such as
    "Today" would not).
    """

    title = _("created within")
    parameter_name = "created_within"
    LABELS = {
        "1h": _("Last hour"),
        "24h": _("Last 24 hours"),
        "7d": _("Last 7 days"),
    }

    def lookups(self, request, model_admin):
        return [(window, self.LABELS[window]) for window in RUN_WINDOWS]

    def queryset(self, request, queryset):
        if self.value() in RUN_WINDOWS:
            start = run_window_start(self.value(), now=timezone.now())
            return queryset.filter(created_at__gte=start)
        return queryset
