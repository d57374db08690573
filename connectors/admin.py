"""Admin for connectors: secrets are masked, configs validated by kind.

The change page also shows the connector's live use: slots in use out of its
limit (read from Redis; "unknown" when Redis cannot be reached) and the runs
waiting for a slot.
"""

import json

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .forms import ConnectorAdminForm
from .models import Connector
from .secrets import mask_config


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorAdminForm
    list_display = [
        "name",
        "kind",
        "slots_display",
        "when_busy",
        "is_enabled",
    ]
    list_filter = ["kind", "when_busy", "is_enabled"]
    search_fields = ["name"]
    readonly_fields = ["masked_configuration", "slots_in_use", "waiting_runs"]
    live_fields = ["slots_in_use", "waiting_runs"]

    @admin.display(description=_("configuration"))
    def masked_configuration(self, obj: Connector) -> str:
        masked = mask_config(obj.kind, obj.config)
        return format_html(
            "<pre>{}</pre>", json.dumps(masked, indent=2, ensure_ascii=False)
        )

    @admin.display(description=_("slots in use"))
    def slots_in_use(self, obj: Connector) -> str:
        from imports.services.dashboard import connector_slots_in_use

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
        from imports.services.dashboard import connector_waiting_runs

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

    def get_fields(self, request, obj=None):
        # A user who may only view gets read-only fields, which the admin
        # renders from the model itself, past the form's masking: show the
        # masked copy instead of the raw config.
        fields = [f for f in self.form.Meta.fields]
        if obj is not None and not self.has_change_permission(request, obj):
            fields = ["masked_configuration" if f == "config" else f for f in fields]
        if obj is not None:
            fields += self.live_fields
        return fields
