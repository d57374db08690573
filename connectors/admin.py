"""Admin for connectors: secrets are masked, configs validated by kind.

This app knows nothing of imports: the imports app registers a subclass of
``ConnectorAdmin`` that adds the connector's live use (slots in use, runs
waiting), see ``imports.connector_admin``. ``live_fields`` names those extra
read-only fields, shown on an existing connector's page.
"""

import json

from django.contrib import admin
from django.db.models.constants import LOOKUP_SEP
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .forms import ConnectorAdminForm
from .models import Connector
from .registry import connector_choices, connector_secret_fields
from .secrets import mask_config


class SecretLookupsMixin:
    """Refuses list lookups on the fields that hold secrets.

    The admin allows any lookup on a model's own fields in the query
    string: ``?config__password__startswith=a`` would count the connectors
    whose password starts with ``a``, an oracle that spells a secret out
    one character at a time to anyone who may view the list. Such a
    request gets a 400, as any lookup the admin refuses.
    """

    secret_lookup_fields: tuple[str, ...] = ()

    def lookup_allowed(self, lookup, value, request=None):
        if lookup.split(LOOKUP_SEP, 1)[0] in self.secret_lookup_fields:
            return False
        return super().lookup_allowed(lookup, value, request)


@admin.register(Connector)
class ConnectorAdmin(SecretLookupsMixin, admin.ModelAdmin):
    form = ConnectorAdminForm
    secret_lookup_fields = ("config",)
    list_display = ["name", "kind_display", "when_busy", "is_enabled"]
    list_filter = ["kind", "when_busy", "is_enabled"]
    search_fields = ["name"]
    readonly_fields = ["masked_configuration"]
    live_fields: list[str] = []

    @admin.display(description=_("kind"), ordering="kind")
    def kind_display(self, obj: Connector) -> str:
        return dict(connector_choices()).get(obj.kind, obj.kind)

    @admin.display(description=_("configuration"))
    def masked_configuration(self, obj: Connector) -> str:
        masked = mask_config(
            obj.config, secret_fields=connector_secret_fields(obj.kind)
        )
        return format_html(
            "<pre>{}</pre>", json.dumps(masked, indent=2, ensure_ascii=False)
        )

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
