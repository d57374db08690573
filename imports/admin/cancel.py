"""Cancelling runs from the admin: a confirmation page with a reason.

As Django's delete confirmation does, Cancel (one run from its page, or the
selected runs of the list) first shows what will stop and asks for an
optional reason; the reason goes to each cancel event's message, where the
run's log shows it.
"""

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from imports.admin.actions import apply_each
from imports.exceptions import ImportRequestError
from imports.models import ImportRun
from imports.services.operations import import_run_cancel

TEMPLATE = "admin/imports/importrun/cancel_confirmation.html"
CANCELLED = ngettext_lazy(
    "%(count)d run was cancelled.", "%(count)d runs were cancelled.", "count"
)
NOT_CANCELLED = ngettext_lazy(
    "%(count)d was not cancelled:", "%(count)d were not cancelled:", "count"
)


class CancelForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        max_length=1000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text=_("Optional; recorded in the run's log with your name."),
    )


def run_cancel(request, run: ImportRun, *, reason: str) -> ImportRun:
    return import_run_cancel(
        run=run, cancelled_by=request.user.get_username(), reason=reason
    )


def cancel_view(request, run: ImportRun, *, model_admin):
    """GET: the confirmation page. POST: cancel, back to the run's page."""
    if not model_admin.has_cancel_permission(request, run):
        raise PermissionDenied
    form = CancelForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            run_cancel(request, run, reason=form.cleaned_data["reason"])
        except ImportRequestError as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
        else:
            model_admin.message_user(
                request,
                gettext("Run #%(id)s was cancelled.") % {"id": run.pk},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(model_admin._change_url(run))
    return _confirmation(
        request,
        model_admin,
        runs=[run],
        form=form,
        title=gettext("Cancel run #%(id)s?") % {"id": run.pk},
        original=run,
    )


def cancel_selected(model_admin, request, queryset):
    """The bulk action: a confirmation page first, then one report."""
    form = CancelForm(request.POST if request.POST.get("post") else None)
    if request.POST.get("post") and form.is_valid():
        reason = form.cleaned_data["reason"]
        apply_each(
            model_admin,
            request,
            queryset.order_by("pk"),
            lambda run: run_cancel(request, run, reason=reason),
            done=CANCELLED,
            not_done=NOT_CANCELLED,
        )
        return None
    runs = list(queryset.select_related("project").order_by("pk"))
    return _confirmation(
        request,
        model_admin,
        runs=runs,
        form=form,
        title=gettext("Cancel the selected runs?"),
        bulk=True,
    )


def _confirmation(
    request, model_admin, *, runs, form, title, original=None, bulk=False
):
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "original": original,
        "active_runs": [run for run in runs if run.is_active],
        "finished_runs": [run for run in runs if not run.is_active],
        "selected": [run.pk for run in runs],
        "bulk": bulk,
        "form": form,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": model_admin.media,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, TEMPLATE, context)
