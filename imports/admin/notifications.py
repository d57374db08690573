"""The notification channels and their outbox in the admin.

A channel's webhook secret shows as the ``••••••`` placeholder and never
comes back to the page; the placeholder sent back unchanged keeps it, for
the same host only. "Send a test notification" goes through the outbox
like a real one, so its row shows whether the channel works.
"""

from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from connectors.secrets import MASK, mask_url
from imports.admin.base import ImporthubMediaMixin
from imports.models import Notification, NotificationChannel
from imports.models.notifications import webhook_url_shown
from imports.services.delivery import notification_retry, notification_test_send


class NotificationChannelForm(forms.ModelForm):
    class Meta:
        model = NotificationChannel
        fields = [
            "name",
            "kind",
            "project",
            "connector",
            "emails",
            "webhook_url",
            "webhook_secret",
            "failure_threshold",
            "notify_recovery",
            "language",
            "is_enabled",
        ]
        widgets = {
            "emails": forms.Textarea(attrs={"rows": 3, "cols": 60}),
            "webhook_url": forms.TextInput(attrs={"size": 80, "autocomplete": "off"}),
            "webhook_secret": forms.TextInput(attrs={"autocomplete": "off"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["webhook_url"] = mask_url(self.instance.webhook_url)
            if self.instance.webhook_secret:
                self.initial["webhook_secret"] = MASK
        field = self.fields.get("webhook_secret")
        if field is not None:
            field.help_text = _(
                "%(help)s It shows as %(mask)s; leave the placeholder to keep "
                "the stored secret, or type a new one."
            ) % {"help": field.help_text, "mask": MASK}

    def clean_webhook_url(self):
        url = (self.cleaned_data.get("webhook_url") or "").strip()
        stored = self.instance.webhook_url if self.instance.pk else ""
        if stored and url == mask_url(stored):
            return stored  # a password in the URL, shown masked, unchanged
        return url

    def clean_webhook_secret(self):
        secret = self.cleaned_data.get("webhook_secret") or ""
        if secret != MASK:
            return secret
        stored = self.instance.webhook_secret if self.instance.pk else ""
        if not stored:
            raise forms.ValidationError(
                _("No secret is stored for the placeholder %(mask)s; enter it."),
                params={"mask": MASK},
            )
        url = self.data.get(self.add_prefix("webhook_url"), "")
        if _host(url) != _host(self.instance.webhook_url):
            raise forms.ValidationError(
                _(
                    "The webhook's host changed: enter the secret again instead "
                    "of the placeholder %(mask)s."
                ),
                params={"mask": MASK},
            )
        return stored


def _host(url: str) -> tuple | None:
    try:
        parts = urlsplit(url)
        return (parts.hostname, parts.port)
    except ValueError:
        return None


@admin.register(NotificationChannel)
class NotificationChannelAdmin(ImporthubMediaMixin, admin.ModelAdmin):
    form = NotificationChannelForm
    list_display = [
        "name",
        "kind",
        "scope",
        "target",
        "failure_threshold",
        "notify_recovery",
        "is_enabled",
    ]
    list_filter = ["kind", "is_enabled"]
    search_fields = ["name"]
    list_select_related = ["project", "connector"]
    actions = ["send_test"]
    change_form_template = "admin/imports/notificationchannel/change_form.html"
    # A lookup on the secret would spell it out one character at a time.
    secret_fields = ("webhook_secret", "webhook_url")

    def lookup_allowed(self, lookup, value, request=None):
        if lookup.split("__", 1)[0] in self.secret_fields:
            return False
        return super().lookup_allowed(lookup, value, request)

    def get_fields(self, request, obj=None):
        fields = list(self.form.Meta.fields)
        if obj is not None and not self.has_change_permission(request, obj):
            # Read-only fields render from the model, past the form's mask.
            fields = [f for f in fields if f != "webhook_secret"]
            fields[fields.index("webhook_url")] = "target"
        return fields

    def has_test_permission(self, request, obj=None):
        return self.has_change_permission(request, obj)

    @admin.display(description=_("for"))
    def scope(self, obj: NotificationChannel) -> str:
        if obj.project_id:
            return gettext("project “%(name)s”") % {"name": obj.project}
        if obj.connector_id:
            return gettext("connector “%(name)s”") % {"name": obj.connector}
        return gettext("every project")

    @admin.display(description=_("sent to"))
    def target(self, obj: NotificationChannel) -> str:
        if obj.kind == NotificationChannel.Kind.WEBHOOK:
            return webhook_url_shown(obj.webhook_url)
        return obj.emails

    @admin.action(description=_("Send a test notification"), permissions=["test"])
    def send_test(self, request, queryset):
        count = 0
        for channel in queryset.order_by("pk"):
            notification_test_send(
                channel=channel, requested_by=request.user.get_username()
            )
            count += 1
        self.message_user(
            request,
            ngettext(
                "A test notification was queued for %(count)d channel; its "
                "delivery shows under Notifications.",
                "Test notifications were queued for %(count)d channels; their "
                "delivery shows under Notifications.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path(
                "<path:object_id>/test/",
                self.admin_site.admin_view(require_POST(self.test_view)),
                name=f"{info}_test",
            ),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "has_test_permission": obj is not None
            and self.has_test_permission(request, obj),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def test_view(self, request, object_id):
        channel = self._object_or_404(request, object_id)
        if not self.has_test_permission(request, channel):
            raise PermissionDenied
        notification = notification_test_send(
            channel=channel, requested_by=request.user.get_username()
        )
        url = reverse("admin:imports_notification_change", args=[notification.pk])
        self.message_user(
            request,
            format_html(
                '{} <a href="{}">{}</a>',
                gettext("A test notification was queued."),
                url,
                gettext("Follow its delivery"),
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._change_url(channel))


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The outbox: what was owed to whom, and whether it arrived."""

    list_display = [
        "created_at",
        "event",
        "channel",
        "run_link",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
    ]
    list_filter = ["state", "event", "channel"]
    list_select_related = ["channel"]
    date_hierarchy = "created_at"
    actions = ["retry_selected"]
    fields = [
        "event",
        "channel",
        "run_link",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
        "created_at",
        "payload",
    ]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # written by the services only; read here

    def has_retry_permission(self, request):
        return request.user.has_perm("imports.change_notificationchannel")

    @admin.display(description=_("run"))
    def run_link(self, obj: Notification) -> str:
        if not obj.run_id:
            return "—"
        url = reverse("admin:imports_importrun_change", args=[obj.run_id])
        return format_html('<a href="{}">#{}</a>', url, obj.run_id)

    @admin.action(description=_("Send again now"), permissions=["retry"])
    def retry_selected(self, request, queryset):
        from imports.services.notifications import notifications_dispatch

        ids = [
            n.pk for n in queryset.order_by("pk") if notification_retry(notification=n)
        ]
        notifications_dispatch(ids)
        self.message_user(
            request,
            ngettext(
                "%(count)d notification will be sent again.",
                "%(count)d notifications will be sent again.",
                len(ids),
            )
            % {"count": len(ids)},
            messages.SUCCESS,
        )
