"""Admin for projects, import runs and their events."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from imports.exceptions import ImportRequestError
from imports.forms import ProjectAdminForm
from imports.models import ImportRun, ImportRunEvent, Project
from imports.services.runs import import_run_request


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "connector", "mode", "is_active", "max_retries"]
    list_filter = ["is_active", "mode", "connector"]
    search_fields = ["name"]
    list_select_related = ["connector"]
    actions = ["import_now"]

    @admin.action(description=_("Import now"), permissions=["change"])
    def import_now(self, request, queryset):
        accepted = 0
        for project in queryset.select_related("connector").order_by("pk"):
            try:
                import_run_request(
                    project=project,
                    requested_by=request.user.get_username(),
                    trigger=ImportRun.Trigger.ADMIN,
                )
            except ImportRequestError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                accepted += 1
        if accepted:
            self.message_user(
                request,
                ngettext(
                    "%(count)d import was started.",
                    "%(count)d imports were started.",
                    accepted,
                )
                % {"count": accepted},
                messages.SUCCESS,
            )


class ImportRunEventInline(admin.TabularInline):
    model = ImportRunEvent
    fields = ["at", "kind", "actor", "message", "data"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["at", "id"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "status",
        "trigger",
        "attempt",
        "created_at",
        "started_at",
        "finished_at",
        "rows_read",
        "rows_inserted",
        "rows_updated",
        "error_class",
    ]
    list_filter = ["status", "trigger", "project__connector"]
    list_select_related = ["project"]
    search_fields = ["=id", "project__name", "error_message"]
    date_hierarchy = "created_at"
    inlines = [ImportRunEventInline]
    readonly_fields = [f.name for f in ImportRun._meta.fields]

    def has_add_permission(self, request):
        # Runs are created through the guard ("Import now"), never by hand.
        return False

    def has_change_permission(self, request, obj=None):
        return False
