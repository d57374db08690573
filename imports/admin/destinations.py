"""The destinations' admin: other databases that projects' tables land in.

A destination's URL holds a password. It never comes back to a page: the
form shows it masked (``DestinationAdminForm``), the list and a viewer's
page show the masked URL, and no list lookup may filter on the URL (a
``?url__startswith=`` oracle would spell the password out one character
at a time). Whoever may edit projects but not destinations picks a
destination by name.
"""

from django.conf import settings
from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from connectors.admin import SecretLookupsMixin
from connectors.secrets import mask_url
from imports.admin.forms import DestinationAdminForm
from imports.models import Destination


class DestinationAdmin(SecretLookupsMixin, admin.ModelAdmin):
    form = DestinationAdminForm
    secret_lookup_fields = ("url",)
    list_display = ["name", "masked_url", "schema_display", "projects_count"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(projects_count=Count("projects"))

    def get_fields(self, request, obj=None):
        fields = ["name", "url", "schema"]
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only fields are rendered from the model, past the form.
            fields = ["name", "masked_url", "schema"]
        if obj is not None:
            fields.append("project_links")
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + (["masked_url", "project_links"] if obj is not None else [])

    @admin.display(description=_("database URL"))
    def masked_url(self, obj: Destination) -> str:
        return mask_url(obj.url)

    @admin.display(description=_("schema"), ordering="schema")
    def schema_display(self, obj: Destination) -> str:
        return obj.schema or gettext("%(schema)s (default)") % {
            "schema": settings.IMPORTHUB_DATA_SCHEMA
        }

    @admin.display(description=_("projects"), ordering="projects_count")
    def projects_count(self, obj: Destination) -> int:
        return obj.projects_count

    @admin.display(description=_("projects"))
    def project_links(self, obj: Destination) -> str:
        projects = list(obj.projects.order_by("name")[:100])
        if not projects:
            return gettext("No project lands here yet.")
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:imports_project_change", args=[p.pk]), p.name)
                for p in projects
            ),
        )


admin.site.register(Destination, DestinationAdmin)
