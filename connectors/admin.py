"""Admin for connectors."""

from django.contrib import admin

from .models import Connector


@admin.register(Connector)
class ConnectorAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "max_concurrent_imports", "when_busy", "is_enabled"]
    list_filter = ["kind", "when_busy", "is_enabled"]
    search_fields = ["name"]
