"""The runs' admin: the Active and Failed views, the run page, Retry, Cancel."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from imports.admin import cancel, chain, dashboard, display
from imports.admin.actions import apply_each
from imports.admin.base import REFRESH_MILLISECONDS, ImporthubMediaMixin
from imports.admin.failure import failure_context
from imports.admin.filters import CreatedWithinFilter, RunViewFilter
from imports.exceptions import ImportRequestError
from imports.loading import DeletionLimitExceeded
from imports.models import ImportRun
from imports.services.dashboard import run_error_stage
from imports.services.operations import import_run_retry

RETRIED = ngettext_lazy(
    "%(count)d run was retried.", "%(count)d runs were retried.", "count"
)
NOT_RETRIED = ngettext_lazy(
    "%(count)d was not retried:", "%(count)d were not retried:", "count"
)
# The error class of a replace run stopped before its merge because it would
# delete more than its project's replace_delete_limit allows.
DELETION_LIMIT_ERROR = DeletionLimitExceeded.__name__


FAILED_VIEW_COLUMNS = ["id", "project", "status_display", "error_display", "started_at"]


class ImportRunAdmin(ImporthubMediaMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "status_display",
        "trigger_display",
        "started_at",
        "duration_display",
        "progress_display",
        "counts_display",
        "error_display",
    ]
    list_display_links = ["id"]
    list_filter = [
        RunViewFilter,
        CreatedWithinFilter,
        "status",
        ("project", admin.RelatedOnlyFieldListFilter),
        ("project__connector", admin.RelatedOnlyFieldListFilter),
        "trigger",
        "created_at",
    ]
    list_select_related = ["project"]
    search_fields = ["=id", "project__name", "error_message"]
    date_hierarchy = "created_at"
    actions = ["retry_selected", "cancel_selected"]
    change_form_template = "admin/imports/importrun/change_form.html"
    change_list_template = "admin/imports/importrun/change_list.html"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "project",
                    "status_display",
                    "trigger",
                    "requested_by_display",
                    "try_display",
                    "deletions_confirmed",
                    "retry_links",
                ]
            },
        ),
        (
            _("Progress"),
            {
                "fields": [
                    "progress_display",
                    "counts_table",
                    "created_at",
                    "started_at",
                    "finished_at",
                    "duration_display",
                    "heartbeat_at",
                ]
            },
        ),
        (_("Error"), {"fields": ["error_class", "error_text", "error_stage"]}),
        (
            _("Incremental"),
            {"fields": ["full_refresh", "cursor_before", "cursor_after"]},
        ),
        (
            _("Locking"),
            {
                "classes": ["collapse"],
                "fields": ["fencing_token", "lock_token", "celery_task_id"],
            },
        ),
    ]
    readonly_fields = [f.name for f in ImportRun._meta.fields] + [
        "status_display",
        "trigger_display",
        "try_display",
        "retry_links",
        "progress_display",
        "counts_table",
        "duration_display",
        "error_stage",
        "error_text",
        "requested_by_display",
    ]

    def has_add_permission(self, request):
        # Runs are created through the guard ("Import now"), never by hand.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_changelist(self, request, **kwargs):
        return chain.RunChangeList

    def get_list_display(self, request):
        # The failed view is read for its errors: the error comes right
        # after the status, within a laptop's screen beside the admin's
        # sidebars; progress, counts, trigger and duration make room.
        if request.GET.get("view") == "failed":
            return FAILED_VIEW_COLUMNS
        return self.list_display

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not (obj.error_class or obj.error_message):
            # A run without an error does not show an empty Error section.
            fieldsets = [fs for fs in fieldsets if fs[0] != _("Error")]
        if obj is not None and not (
            obj.full_refresh or obj.cursor_before or obj.cursor_after
        ):
            # Only an incremental project's runs have a cursor to show.
            fieldsets = [fs for fs in fieldsets if fs[0] != _("Incremental")]
        return fieldsets

    def has_delete_permission(self, request, obj=None):
        # An active run holds its project: it is cancelled, never deleted.
        if obj is not None and obj.is_active:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request):
        # Bulk deletion would remove active runs from under their workers.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_retry_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.retry_importrun")

    def has_cancel_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.cancel_importrun")

    def can_retry_allowing_deletions(self, request, run: ImportRun) -> bool:
        """Only a run the deletion limit stopped is retried past the limit."""
        return (
            self.has_retry_permission(request, run)
            and run.status == ImportRun.Status.FAILED
            and run.error_class == DELETION_LIMIT_ERROR
        )

    # Columns and fields.

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: ImportRun) -> str:
        return display.status_badge(obj)

    @admin.display(description=_("trigger"), ordering="trigger")
    def trigger_display(self, obj: ImportRun) -> str:
        return chain.trigger_label(obj)

    @admin.display(description=_("try"))
    def try_display(self, obj: ImportRun) -> str:
        return chain.try_label(obj)

    @admin.display(description=_("duration"))
    def duration_display(self, obj: ImportRun) -> str:
        return display.format_duration(obj.duration)

    @admin.display(description=_("progress"), ordering="rows_read")
    def progress_display(self, obj: ImportRun) -> str:
        return display.progress_bar(obj)

    @admin.display(description=_("counts"))
    def counts_display(self, obj: ImportRun) -> str:
        return display.run_counts(obj)

    @admin.display(description=_("error"))
    def error_display(self, obj: ImportRun) -> str:
        return display.run_error(obj)

    @admin.display(description=_("counts"))
    def counts_table(self, obj: ImportRun) -> str:
        return display.counts_table(obj)

    @admin.display(description=_("where"))
    def error_stage(self, obj: ImportRun) -> str:
        return display.error_stage_label(run_error_stage(obj))

    @admin.display(description=_("retries"))
    def retry_links(self, obj: ImportRun) -> str:
        return display.retry_links(obj, list(obj.retries.order_by("created_at", "id")))

    # Bulk actions.

    @admin.action(description=_("Retry selected failed runs"), permissions=["retry"])
    def retry_selected(self, request, queryset):
        apply_each(
            self,
            request,
            queryset.order_by("pk"),
            lambda run: self._retry_one(request, run),
            done=RETRIED,
            not_done=NOT_RETRIED,
        )

    @admin.action(description=_("Cancel selected active runs"), permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        # A confirmation page with a reason first, as delete_selected's.
        return cancel.cancel_selected(self, request, queryset)

    def _retry_one(self, request, run: ImportRun) -> ImportRun:
        return import_run_retry(run=run, requested_by=request.user.get_username())

    # Pages: the run page's buttons and the dashboard.

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="importhub_dashboard",
            ),
            path(
                "<path:object_id>/retry/",
                self.admin_site.admin_view(self.retry_view),
                name=f"{info}_retry",
            ),
            path(
                "<path:object_id>/retry-allowing-deletions/",
                self.admin_site.admin_view(self.retry_allowing_deletions_view),
                name=f"{info}_retry_deletions",
            ),
            path(
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name=f"{info}_cancel",
            ),
        ] + super().get_urls()

    def dashboard_view(self, request):
        return dashboard.dashboard_view(request, model_admin=self)

    def retry_view(self, request, object_id):
        return require_POST(self._retry)(request, object_id)

    def _retry(self, request, object_id):
        run = self._object_or_404(request, object_id)
        if not self.has_retry_permission(request, run):
            raise PermissionDenied
        try:
            new = self._retry_one(request, run)
        except ImportRequestError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._change_url(run))
        self.message_user(
            request,
            gettext("Run #%(old)s was retried as run #%(new)s.")
            % {"old": run.pk, "new": new.pk},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._change_url(new))

    def retry_allowing_deletions_view(self, request, object_id):
        """A confirmation page, then a retry that may delete past the limit."""
        run = self._object_or_404(request, object_id)
        if not self.has_retry_permission(request, run):
            raise PermissionDenied
        if not self.can_retry_allowing_deletions(request, run):
            self.message_user(
                request,
                gettext(
                    "Run #%(id)s was not stopped by the deletion limit; retry it "
                    "the usual way."
                )
                % {"id": run.pk},
                messages.ERROR,
            )
            return HttpResponseRedirect(self._change_url(run))
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "title": gettext("Retry run #%(id)s, allowing deletions")
                % {"id": run.pk},
                "opts": self.opts,
                "original": run,
                "media": self.media,
            }
            request.current_app = self.admin_site.name
            return TemplateResponse(
                request, "admin/imports/importrun/retry_deletions.html", context
            )
        try:
            new = import_run_retry(
                run=run,
                requested_by=request.user.get_username(),
                confirm_deletions=True,
            )
        except ImportRequestError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(self._change_url(run))
        self.message_user(
            request,
            gettext(
                "Run #%(old)s was retried as run #%(new)s, which may delete more "
                "than the project's limit."
            )
            % {"old": run.pk, "new": new.pk},
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._change_url(new))

    def cancel_view(self, request, object_id):
        run = self._object_or_404(request, object_id)
        return cancel.cancel_view(request, run, model_admin=self)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if run is not None:
            can_retry = self.has_retry_permission(request, run) and run.is_retryable
            extra_context.update(
                {
                    "can_retry": can_retry,
                    "failure": failure_context(run, can_retry=can_retry),
                    "can_retry_deletions": self.can_retry_allowing_deletions(
                        request, run
                    ),
                    "can_cancel": self.has_cancel_permission(request, run)
                    and run.is_active,
                    "refresh_ms": REFRESH_MILLISECONDS if run.is_active else None,
                    "events": list(run.events.order_by("at", "id")),
                }
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        view = request.GET.get("view")
        status = request.GET.get("status__exact")
        live = view == "active" or status in ImportRun.ACTIVE_STATUSES
        extra_context = {
            **(extra_context or {}),
            "refresh_ms": REFRESH_MILLISECONDS if live else None,
            "current_view": view,
            "active_count": ImportRun.objects.active().count(),
            "failed_count": ImportRun.objects.failed().count(),
        }
        return super().changelist_view(request, extra_context)
