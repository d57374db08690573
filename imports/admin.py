"""Admin for projects, import runs and their events: where operators live.

Every button and action here calls one service of ``imports.services.runs``
and reports its outcome as a message; nothing changes a run's state itself.
The per-object buttons are POST-only views behind ``admin_view`` (login,
staff and CSRF checks) that check their own permission as well.
"""

import datetime

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.safestring import mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from imports import connector_admin  # noqa: F401 - the connector page
from imports.exceptions import ImportRequestError
from imports.forms import ProjectAdminForm
from imports.models import ImportRun, Project
from imports.services import dashboard
from imports.services.runs import (
    import_run_cancel,
    import_run_request,
    import_run_retry,
    project_force_unlock,
)

# How often the active views fetch themselves again, in milliseconds.
REFRESH_MILLISECONDS = 3000
# How many reasons a bulk summary names before "and N more".
SUMMARY_REASONS = 10
# A periodic task another part of importhub creates per project.
SCHEDULE_NAME = "import project {project_id}"


def format_duration(value: datetime.timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes}:{seconds:02d}"


def format_count(value: int) -> str:
    # A thin space groups digits in both languages an operator may read.
    return f"{value:,}".replace(",", "\u202f")


def first_line(text: str, limit: int = 120) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def status_badge(run: ImportRun) -> str:
    return format_html(
        '<span class="run-status run-status-{}">{}</span>',
        run.status,
        run.get_status_display(),
    )


def progress_bar(run: ImportRun) -> str:
    """A bar and the rows read: indeterminate while active (streamed sources
    have no total), full once succeeded, empty otherwise."""
    rows = format_count(run.rows_read)
    if run.is_active:
        bar = format_html('<progress class="run-progress" title="{}"></progress>', rows)
    else:
        done = 1 if run.status == ImportRun.Status.SUCCEEDED else 0
        bar = format_html(
            '<progress class="run-progress" value="{}" max="1"></progress>', done
        )
    label = ngettext("%(rows)s row read", "%(rows)s rows read", run.rows_read) % {
        "rows": rows
    }
    return format_html(
        '{} <span class="run-rows" data-rows-read="{}">{}</span>',
        bar,
        run.rows_read,
        label,
    )


def run_counts(run: ImportRun) -> str:
    parts = [
        ("+", _("inserted"), run.rows_inserted),
        ("~", _("updated"), run.rows_updated),
        ("=", _("unchanged"), run.rows_unchanged),
        ("−", _("deleted"), run.rows_deleted),
        ("✗", _("rejected"), run.rows_rejected),
    ]
    return format_html_join(
        " ",
        '<span class="run-count" title="{}">{}{}</span>',
        ((str(title), sign, format_count(value)) for sign, title, value in parts),
    )


def summary_message(succeeded_text: str, failed_text: str, failures: list) -> str:
    """``succeeded_text``, then why the others failed (their messages)."""
    if not failures:
        return succeeded_text
    reasons = [str(exc) for exc in failures[:SUMMARY_REASONS]]
    if len(failures) > SUMMARY_REASONS:
        reasons.append(
            gettext("and %(count)d more") % {"count": len(failures) - SUMMARY_REASONS}
        )
    return f"{succeeded_text} {failed_text} {'; '.join(reasons)}"


def summary_level(succeeded: int, failed: int) -> int:
    if not failed:
        return messages.SUCCESS
    return messages.WARNING if succeeded else messages.ERROR


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


class ImporthubMediaMixin:
    """Shared media and object-button helpers of the importhub admin pages."""

    class Media:
        # The stylesheet is linked by admin/base_site.html, on every page.
        js = ["imports/admin/autorefresh.js"]

    def _object_or_404(self, request, object_id):
        obj = self.get_object(request, object_id)
        if obj is None:
            raise Http404
        return obj

    def _change_url(self, obj) -> str:
        opts = self.model._meta
        return reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]
        )


@admin.register(Project)
class ProjectAdmin(ImporthubMediaMixin, admin.ModelAdmin):
    form = ProjectAdminForm
    list_display = ["name", "connector", "mode", "is_active", "max_retries"]
    list_filter = ["is_active", "mode", "connector"]
    search_fields = ["name"]
    list_select_related = ["connector"]
    actions = ["import_now"]
    change_form_template = "admin/imports/project/change_form.html"
    detail_fields = ["lock_status", "schedule", "recent_runs"]

    def get_fields(self, request, obj=None):
        fields = list(ProjectAdminForm.Meta.fields)
        if obj is not None:
            fields += self.detail_fields
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        return readonly + (self.detail_fields if obj is not None else [])

    def has_import_permission(self, request, obj=None):
        # Starting an import changes the project's data: the change right.
        return self.has_change_permission(request, obj)

    def has_force_unlock_permission(self, request, obj=None):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.force_unlock_project")

    @admin.action(description=_("Import now"), permissions=["import"])
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

    # Read-only details of the change page.

    @admin.display(description=_("lock"))
    def lock_status(self, obj: Project) -> str:
        run = obj.runs.active().first()
        if run is None:
            return gettext("Free: no import is active.")
        url = reverse("admin:imports_importrun_change", args=[run.pk])
        return format_html(
            '{} <a href="{}">#{}</a> {}',
            gettext("Importing:"),
            url,
            run.pk,
            status_badge(run),
        )

    @admin.display(description=_("schedule"))
    def schedule(self, obj: Project) -> str:
        from django_celery_beat.models import PeriodicTask

        task = (
            PeriodicTask.objects.filter(name=SCHEDULE_NAME.format(project_id=obj.pk))
            .select_related("interval", "crontab", "solar", "clocked")
            .first()
        )
        if task is None:
            return gettext("No schedule.")
        url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
        state = gettext("enabled") if task.enabled else gettext("disabled")
        last = (
            timezone.localtime(task.last_run_at).strftime("%Y-%m-%d %H:%M")
            if task.last_run_at
            else "—"
        )
        return format_html(
            '<a href="{}">{}</a> ({}; {}: {})',
            url,
            str(task.scheduler) if task.scheduler else task.name,
            state,
            gettext("last run"),
            last,
        )

    @admin.display(description=_("last runs"))
    def recent_runs(self, obj: Project) -> str:
        runs = list(obj.runs.order_by("-created_at", "-id")[:10])
        if not runs:
            return gettext("No runs yet.")
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>#{}</a></td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:imports_importrun_change", args=[run.pk]),
                    run.pk,
                    status_badge(run),
                    run.get_trigger_display(),
                    timezone.localtime(run.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                    format_duration(run.duration),
                    format_count(run.rows_read),
                    first_line(run.error_message, 80),
                )
                for run in runs
            ),
        )
        all_url = (
            reverse("admin:imports_importrun_changelist")
            + "?"
            + urlencode({"project__id__exact": obj.pk})
        )
        return format_html(
            '<table class="recent-runs"><thead><tr><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
            '<tbody>{}</tbody></table><p><a href="{}">{}</a></p>',
            gettext("Run"),
            gettext("Status"),
            gettext("Trigger"),
            gettext("Created"),
            gettext("Duration"),
            gettext("Rows read"),
            gettext("Error"),
            rows,
            all_url,
            gettext("All runs of this project"),
        )

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
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "has_import_permission": obj is not None
            and self.has_import_permission(request, obj),
            "has_force_unlock_permission": obj is not None
            and self.has_force_unlock_permission(request, obj),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def import_now_view(self, request, object_id):
        return require_POST(self._import_now)(request, object_id)

    def _import_now(self, request, object_id):
        project = self._object_or_404(request, object_id)
        if not self.has_import_permission(request, project):
            raise PermissionDenied
        try:
            run = import_run_request(
                project=project,
                requested_by=request.user.get_username(),
                trigger=ImportRun.Trigger.ADMIN,
            )
        except ImportRequestError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                format_html(
                    '{} <a href="{}">#{}</a>',
                    gettext("Import started:"),
                    reverse("admin:imports_importrun_change", args=[run.pk]),
                    run.pk,
                ),
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._change_url(project))

    def force_unlock_view(self, request, object_id):
        project = self._object_or_404(request, object_id)
        if not self.has_force_unlock_permission(request, project):
            raise PermissionDenied
        if request.method == "POST":
            form = ForceUnlockForm(request.POST)
            if form.is_valid():
                reason = form.cleaned_data["reason"]
                result = project_force_unlock(
                    project=project,
                    unlocked_by=request.user.get_username(),
                    reason=reason,
                )
                run = result["run"]
                # Audited like delete_selected's log_deletion: a LogEntry with
                # who and why, beside the service's ProjectEvent.
                self.log_change(
                    request,
                    project,
                    gettext("Force-unlocked (run %(run)s, lock released: %(lock)s): ")
                    % {
                        "run": f"#{run.pk}" if run else "—",
                        "lock": gettext("yes")
                        if result["lock_released"]
                        else gettext("no"),
                    }
                    + reason,
                )
                self.message_user(
                    request,
                    (
                        gettext(
                            "Project “%(project)s” was force-unlocked; run #%(run)s "
                            "was marked failed."
                        )
                        % {"project": project, "run": run.pk}
                        if run
                        else gettext(
                            "Project “%(project)s” was force-unlocked; it had no "
                            "active run."
                        )
                        % {"project": project}
                    ),
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(self._change_url(project))
        else:
            form = ForceUnlockForm()
        from imports.locks import project_lock_owner
        from locking import LockingUnavailable

        try:
            owner = project_lock_owner(project.pk)
            lock_known = True
        except LockingUnavailable:
            owner, lock_known = None, False
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Force-unlock %(project)s") % {"project": project},
            "opts": self.opts,
            "original": project,
            "form": form,
            "active_run": project.runs.active().first(),
            "lock_owner": owner,
            "lock_known": lock_known,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/imports/project/force_unlock.html", context
        )


class ForceUnlockForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Why the project is stuck; recorded with your name."),
        max_length=1000,
    )

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError(_("A reason is required."))
        return reason


@admin.register(ImportRun)
class ImportRunAdmin(ImporthubMediaMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "status_display",
        "trigger",
        "started_at",
        "duration_display",
        "progress_display",
        "counts_display",
        "error_display",
    ]
    list_display_links = ["id"]
    list_filter = [
        RunViewFilter,
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
                    "requested_by",
                    "attempt",
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
        (_("Error"), {"fields": ["error_class", "error_message", "error_stage"]}),
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
        "retry_links",
        "progress_display",
        "counts_table",
        "duration_display",
        "error_stage",
    ]

    def has_add_permission(self, request):
        # Runs are created through the guard ("Import now"), never by hand.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not (obj.error_class or obj.error_message):
            # A run without an error does not show an empty Error section.
            fieldsets = [fs for fs in fieldsets if fs[0] != _("Error")]
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

    # Columns and fields.

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, obj: ImportRun) -> str:
        return status_badge(obj)

    @admin.display(description=_("duration"))
    def duration_display(self, obj: ImportRun) -> str:
        return format_duration(obj.duration)

    @admin.display(description=_("progress"), ordering="rows_read")
    def progress_display(self, obj: ImportRun) -> str:
        return progress_bar(obj)

    @admin.display(description=_("counts"))
    def counts_display(self, obj: ImportRun) -> str:
        return run_counts(obj)

    @admin.display(description=_("error"))
    def error_display(self, obj: ImportRun) -> str:
        if not obj.error_class and not obj.error_message:
            return ""
        return format_html(
            '<span class="run-error" title="{}"><b>{}</b> {}</span>',
            obj.error_message,
            obj.error_class,
            first_line(obj.error_message),
        )

    @admin.display(description=_("counts"))
    def counts_table(self, obj: ImportRun) -> str:
        rows = [
            (_("rows read"), obj.rows_read),
            (_("inserted"), obj.rows_inserted),
            (_("updated"), obj.rows_updated),
            (_("unchanged"), obj.rows_unchanged),
            (_("deleted"), obj.rows_deleted),
            (_("rejected"), obj.rows_rejected),
        ]
        return format_html(
            '<table class="run-counts"><tbody>{}</tbody></table>',
            format_html_join(
                "",
                "<tr><th>{}</th><td>{}</td></tr>",
                ((str(label), format_count(value)) for label, value in rows),
            ),
        )

    @admin.display(description=_("where"))
    def error_stage(self, obj: ImportRun) -> str:
        stage = dashboard.run_error_stage(obj)
        return {
            None: "—",
            dashboard.ErrorStage.BEFORE_START: gettext("before the run started"),
            dashboard.ErrorStage.EXTRACT: gettext("reading the source (extract)"),
            dashboard.ErrorStage.LOAD: gettext("writing the records (load)"),
        }[stage]

    @admin.display(description=_("retries"))
    def retry_links(self, obj: ImportRun) -> str:
        parts = []
        if obj.retry_of_id:
            parts.append(
                format_html(
                    '{} <a class="retry-of" href="{}">#{}</a>',
                    gettext("Retry of"),
                    reverse("admin:imports_importrun_change", args=[obj.retry_of_id]),
                    obj.retry_of_id,
                )
            )
        retries = list(obj.retries.order_by("created_at", "id"))
        if retries:
            parts.append(
                format_html(
                    "{} {}",
                    gettext("Retried as"),
                    format_html_join(
                        ", ",
                        '<a class="retry" href="{}">#{}</a> {}',
                        (
                            (
                                reverse("admin:imports_importrun_change", args=[r.pk]),
                                r.pk,
                                status_badge(r),
                            )
                            for r in retries
                        ),
                    ),
                )
            )
        if not parts:
            return "—"
        return format_html_join(mark_safe("<br>"), "{}", ((p,) for p in parts))

    # Bulk actions.

    @admin.action(description=_("Retry selected failed runs"), permissions=["retry"])
    def retry_selected(self, request, queryset):
        done, failures = 0, []
        for run in queryset.order_by("pk"):
            try:
                import_run_retry(run=run, requested_by=request.user.get_username())
            except ImportRequestError as exc:
                failures.append(exc)
            else:
                done += 1
        self.message_user(
            request,
            summary_message(
                ngettext(
                    "%(count)d run was retried.", "%(count)d runs were retried.", done
                )
                % {"count": done},
                ngettext(
                    "%(count)d was not retried:",
                    "%(count)d were not retried:",
                    len(failures),
                )
                % {"count": len(failures)},
                failures,
            ),
            summary_level(done, len(failures)),
        )

    @admin.action(description=_("Cancel selected active runs"), permissions=["cancel"])
    def cancel_selected(self, request, queryset):
        done, failures = 0, []
        for run in queryset.order_by("pk"):
            try:
                import_run_cancel(run=run, cancelled_by=request.user.get_username())
            except ImportRequestError as exc:
                failures.append(exc)
            else:
                done += 1
        self.message_user(
            request,
            summary_message(
                ngettext(
                    "%(count)d run was cancelled.",
                    "%(count)d runs were cancelled.",
                    done,
                )
                % {"count": done},
                ngettext(
                    "%(count)d was not cancelled:",
                    "%(count)d were not cancelled:",
                    len(failures),
                )
                % {"count": len(failures)},
                failures,
            ),
            summary_level(done, len(failures)),
        )

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
                "<path:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name=f"{info}_cancel",
            ),
        ] + super().get_urls()

    def retry_view(self, request, object_id):
        return require_POST(self._retry)(request, object_id)

    def _retry(self, request, object_id):
        run = self._object_or_404(request, object_id)
        if not self.has_retry_permission(request, run):
            raise PermissionDenied
        try:
            new = import_run_retry(run=run, requested_by=request.user.get_username())
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

    def cancel_view(self, request, object_id):
        return require_POST(self._cancel)(request, object_id)

    def _cancel(self, request, object_id):
        run = self._object_or_404(request, object_id)
        if not self.has_cancel_permission(request, run):
            raise PermissionDenied
        try:
            import_run_cancel(
                run=run,
                cancelled_by=request.user.get_username(),
                reason=request.POST.get("reason", "").strip()[:1000],
            )
        except ImportRequestError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request,
                gettext("Run #%(id)s was cancelled.") % {"id": run.pk},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._change_url(run))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if run is not None:
            extra_context.update(
                {
                    "can_retry": self.has_retry_permission(request, run)
                    and run.status
                    in (ImportRun.Status.FAILED, ImportRun.Status.CANCELLED),
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

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        days = dashboard.runs_per_day(days=30, now=now)
        counts = dashboard.run_status_counts(since=now - datetime.timedelta(hours=24))
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Imports dashboard"),
            "opts": self.opts,
            "status_counts": [
                (status, label, counts[status])
                for status, label in ImportRun.Status.choices
            ],
            "chart": runs_chart(days),
            "in_progress": list(dashboard.runs_in_progress()),
            "connectors": dashboard.connector_usage(),
            "slowest": [
                {**row, "average_display": format_duration(row["average"])}
                | {"longest_display": format_duration(row["longest"])}
                for row in dashboard.slowest_projects(
                    since=now - datetime.timedelta(days=30)
                )
            ],
            "refresh_ms": REFRESH_MILLISECONDS * 2,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/imports/dashboard.html", context)


def runs_chart(days: list) -> dict:
    """Geometry of a server-side SVG bar chart of runs per day."""
    width, height, gap = 18, 120, 4
    top = max([d.succeeded + d.failed for d in days] + [1])
    bars = []
    for index, day in enumerate(days):
        x = index * (width + gap)
        ok_h = round(day.succeeded * height / top)
        bad_h = round(day.failed * height / top)
        bars.append(
            {
                "x": x,
                "day": day.day,
                "succeeded": day.succeeded,
                "failed": day.failed,
                "ok_y": height - ok_h,
                "ok_h": ok_h,
                "bad_y": height - ok_h - bad_h,
                "bad_h": bad_h,
                "label": index % 5 == 0 or index == len(days) - 1,
            }
        )
    return {
        "bars": bars,
        # Room for the last day's label past its bar.
        "width": len(days) * (width + gap) + 16,
        "height": height,
        "bar_width": width,
        "top": top,
        "total_succeeded": sum(d.succeeded for d in days),
        "total_failed": sum(d.failed for d in days),
    }
