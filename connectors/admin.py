"""Admin for connectors: secrets are masked, configs validated by kind."""

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .forms import ConnectorAdminForm
from .models import Connector
from .secrets import mask_config


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    form = ConnectorAdminForm
    list_display = ["name", "kind", "max_concurrent_imports", "when_busy", "is_enabled"]
    list_filter = ["kind", "when_busy", "is_enabled"]
    search_fields = ["name"]
    readonly_fields = ["masked_configuration"]

    @admin.display(description=_("configuration"))
    def masked_configuration(self, obj: Connector) -> str:
        masked = mask_config(obj.kind, obj.config)
        return format_html(
            "<pre>{}</pre>", json.dumps(masked, indent=2, ensure_ascii=False)
        )

    def get_fields(self, request, obj=None):
        # A user who may only view gets read-only fields, which the admin
        # renders from the model itself, past the form's masking: show the
        # masked copy instead of the raw config.
        fields = [f for f in self.form.Meta.fields]
        if obj is not None and not self.has_change_permission(request, obj):
            return ["masked_configuration" if f == "config" else f for f in fields]
        return fields
