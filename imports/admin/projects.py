"""The projects' admin: settings, last runs, Import now and Force unlock."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from connectors.admin import SecretLookupsMixin
from imports.admin import display, ops_display
from imports.admin.actions import apply_each
from imports.admin.base import ImporthubMediaMixin
from imports.admin.forms import (
    MAIN_FIELDS,
    TABLE_FIELDS,
    ForceUnlockForm,
    ProjectAdminForm,
)
from imports.admin.pause import ProjectPauseMixin
from imports.admin.tables import table_panel
from imports.exceptions import ImportRequestError
from imports.models import ImportRun, Project
from imports.services.dashboard import lock_holder_describe, project_lock_holder
from imports.services.guard import import_run_request
from imports.services.operations import project_force_unlock
from imports.services.project_ops import ProjectOps, projects_ops
from imports.services.tables import project_table_label

STARTED = ngettext_lazy(
    "%(count)d import was started.", "%(count)d imports were started.", "count"
)
NOT_STARTED = ngettext_lazy(
    "%(count)d was not started:", "%(count)d were not started:", "count"
)

TABLE_FIELDSET = _("Destination table")


class ProjectAdmin(
    ProjectPauseMixin, SecretLookupsMixin, ImporthubMediaMixin, admin.ModelAdmin
):
    form = ProjectAdminForm
    # A source may hold its own secrets (a CSV URL's auth_token).
    secret_lookup_fields = ("source",)
    list_display = [
        "name",
        "connector",
        "last_run_display",
        "busy_display",
        "next_run_display",
        "run_grid_display",
        "mode",
        "is_active",
    ]
    list_filter = ["is_active", "mode", "layout", "connector"]
    search_fields = ["name"]
    list_select_related = ["connector"]
    actions = ["import_now", "full_refresh"]
    change_form_template = "admin/imports/project/change_form.html"
    # The lock, the schedule and the grid are in the operations header.
    detail_fields = ["recent_runs"]

    def get_fieldsets(self, request, obj=None):
        main = list(MAIN_FIELDS)
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only fields are rendered from the model, past the form's
            # masking: a viewer gets the masked copy of the source.
            main = ["masked_source" if f == "source" else f for f in main]
        table = list(TABLE_FIELDS)
        if obj is None:
            return [(None, {"fields": main}), (TABLE_FIELDSET, {"fields": table})]
        table.insert(table.index("table_name") + 1, "table_label")
        return [
            (None, {"fields": main}),
            (TABLE_FIELDSET, {"fields": table}),
            (_("Status"), {"fields": self.detail_fields}),
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + (
            ["masked_source", "table_label", *self.detail_fields]
            if obj is not None
            else []
        )

    def has_import_permission(self, request, obj=None):
        # Starting an import changes the project's data: the change right.
        return self.has_change_permission(request, obj)

    def has_force_unlock_permission(self, request, obj=None):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.force_unlock_project")

    # Bulk actions.

    @admin.action(description=_("Import now"), permissions=["import"])
    def import_now(self, request, queryset):
        projects = queryset.select_related("connector").order_by("pk")
        apply_each(
            self,
            request,
            projects,
            lambda project: self._request_import(request, project),
            done=STARTED,
            not_done=NOT_STARTED,
            reason=ops_display.busy_message,
            describe=ops_display.started_runs,
        )

    @admin.action(
        description=_("Full refresh: read everything again, reset the cursor"),
        permissions=["import"],
    )
    def full_refresh(self, request, queryset):
        projects = queryset.select_related("connector").order_by("pk")
        apply_each(
            self,
            request,
            projects,
            lambda project: self._request_import(request, project, full=True),
            done=STARTED,
            not_done=NOT_STARTED,
            reason=ops_display.busy_message,
            describe=ops_display.started_runs,
        )

    def _request_import(self, request, project: Project, *, full=False) -> ImportRun:
        return import_run_request(
            project=project,
            requested_by=request.user.get_username(),
            trigger=ImportRun.Trigger.ADMIN,
            full_refresh=full,
            reason=gettext("Full refresh from the admin") if full else "",
        )

    # The operations columns of the list: one batch for the page's
    # projects (``get_changelist_instance``), read here per row.

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        found = projects_ops(project_ids=[p.pk for p in changelist.result_list])
        for project in changelist.result_list:
            project.ops = found[project.pk]
        return changelist

    def _ops(self, obj: Project) -> ProjectOps:
        if not hasattr(obj, "ops"):
            obj.ops = projects_ops(project_ids=[obj.pk])[obj.pk]
        return obj.ops

    @admin.display(description=_("last run"))
    def last_run_display(self, obj: Project) -> str:
        return ops_display.last_status(self._ops(obj))

    @admin.display(description=_("busy"))
    def busy_display(self, obj: Project) -> str:
        return ops_display.busy_badge(self._ops(obj))

    @admin.display(description=_("next run"))
    def next_run_display(self, obj: Project) -> str:
        return ops_display.next_schedule(self._ops(obj))

    @admin.display(description=_("last runs"))
    def run_grid_display(self, obj: Project) -> str:
        return ops_display.run_grid(self._ops(obj).runs)

    # Read-only details of the change page.

    @admin.display(description=_("source"))
    def masked_source(self, obj: Project) -> str:
        return display.masked_json(obj.connector.kind, obj.source)

    @admin.display(description=_("table in use"))
    def table_label(self, obj: Project) -> str:
        return project_table_label(project=obj)

    @admin.display(description=_("last runs"))
    def recent_runs(self, obj: Project) -> str:
        runs = list(obj.runs.order_by("-created_at", "-id")[:10])
        return display.recent_runs_table(runs, project_id=obj.pk)

    # Buttons of the change page.

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/import/",
                self.admin_site.admin_view(self.import_now_view),
                name=f"{info}_import",
            ),
            path(
                "<path:object_id>/force-unlock/",
                self.admin_site.admin_view(self.force_unlock_view),
                name=f"{info}_force_unlock",
            ),
            *self.pause_urls(info),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            # Built when the page renders: a save that redirects skips it.
            "table_panel": obj is not None
            and self.has_view_or_change_permission(request, obj)
            and table_panel(
                obj, show_detail=request.user.has_perm("imports.change_destination")
            ),
            "has_import_permission": obj is not None
            and self.has_import_permission(request, obj),
            "has_force_unlock_permission": obj is not None
            and self.has_force_unlock_permission(request, obj),
            "pause_banner": obj is not None and self.pause_banner(request, obj),
            "ops": obj is not None and self._ops(obj),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def import_now_view(self, request, object_id):
        return require_POST(self._import_now)(request, object_id)

    def _import_now(self, request, object_id):
        project = self._object_or_404(request, object_id)
        if not self.has_import_permission(request, project):
            raise PermissionDenied
        try:
            run = self._request_import(request, project)
        except ImportRequestError as exc:
            self.message_user(request, ops_display.busy_message(exc), messages.ERROR)
        else:
            self.message_user(request, display.import_started(run), messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(project))

    def force_unlock_view(self, request, object_id):
        project = self._object_or_404(request, object_id)
        if not self.has_force_unlock_permission(request, project):
            raise PermissionDenied
        if request.method == "POST":
            form = ForceUnlockForm(request.POST)
            if form.is_valid():
                self._force_unlock(request, project, form.cleaned_data["reason"])
                return HttpResponseRedirect(self._change_url(project))
        else:
            form = ForceUnlockForm()
        owner, lock_known = project_lock_holder(project_id=project.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Force-unlock %(project)s") % {"project": project},
            "opts": self.opts,
            "original": project,
            "form": form,
            "active_run": project.runs.active().first(),
            "lock_owner": owner,
            "lock_holder": (
                lock_holder_describe(project_id=project.pk, token=owner)
                if owner
                else None
            ),
            "lock_known": lock_known,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/imports/project/force_unlock.html", context
        )

    def _force_unlock(self, request, project: Project, reason: str) -> None:
        result = project_force_unlock(
            project=project, unlocked_by=request.user.get_username(), reason=reason
        )
        run = result["run"]
        # Audited like delete_selected's log_deletion: a LogEntry with who
        # and why, beside the service's ProjectEvent.
        self.log_change(
            request,
            project,
            gettext("Force-unlocked (run %(run)s, lock released: %(lock)s): ")
            % {
                "run": f"#{run.pk}" if run else "—",
                "lock": gettext("yes") if result["lock_released"] else gettext("no"),
            }
            + reason,
        )
        if run:
            text = gettext(
                "Project “%(project)s” was force-unlocked; run #%(run)s "
                "was marked failed."
            ) % {"project": project, "run": run.pk}
        else:
            text = gettext(
                "Project “%(project)s” was force-unlocked; it had no active run."
            ) % {"project": project}
        self.message_user(request, text, messages.SUCCESS)
