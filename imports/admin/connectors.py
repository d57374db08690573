"""The connector admin page with the connector's live use.

Slots and waiting runs are concepts of the imports app, so they are added
here, to a subclass of ``connectors.admin.ConnectorAdmin``, which keeps the
connectors app free of imports: the change page shows the slots in use out
of the limit (read from Redis; "unknown" when Redis cannot be reached) and
the runs waiting for a slot.
"""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from connectors.admin import ConnectorAdmin
from connectors.models import Connector
from imports.services.dashboard import connector_slots_in_use, connector_waiting_runs


class ConnectorUseAdmin(ConnectorAdmin):
    list_display = ["name", "kind_display", "slots_display", "when_busy", "is_enabled"]
    readonly_fields = [*ConnectorAdmin.readonly_fields, "slots_in_use", "waiting_runs"]
    live_fields = ["slots_in_use", "waiting_runs"]

    @admin.display(description=_("slots in use"))
    def slots_in_use(self, obj: Connector) -> str:
        in_use = connector_slots_in_use(obj)
        return format_html(
            '<span class="connector-slots">{} / {}</span>',
            gettext("unknown") if in_use is None else in_use,
            obj.max_concurrent_imports,
        )

    @admin.display(description=_("slots"), ordering="max_concurrent_imports")
    def slots_display(self, obj: Connector) -> str:
        return self.slots_in_use(obj)

    @admin.display(description=_("waiting runs"))
    def waiting_runs(self, obj: Connector) -> str:
        runs = list(connector_waiting_runs(obj)[:50])
        if not runs:
            return gettext("None.")
        links = format_html_join(
            ", ",
            '<a href="{}">#{}</a> ({})',
            (
                (
                    reverse("admin:imports_importrun_change", args=[run.pk]),
                    run.pk,
                    run.project,
                )
                for run in runs
            ),
        )
        all_url = (
            reverse("admin:imports_importrun_changelist")
            + "?"
            + urlencode(
                {"project__connector__id__exact": obj.pk, "status__exact": "waiting"}
            )
        )
        return format_html('{} <a href="{}">{}</a>', links, all_url, gettext("all"))


admin.site.unregister(Connector)
admin.site.register(Connector, ConnectorUseAdmin)
