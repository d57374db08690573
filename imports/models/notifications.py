"""Notification channels and their outbox: who is told, and what is owed."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, validate_email
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from connectors.addresses import AddressRefused, resolve_checked


def email_addresses(text: str) -> list[str]:
    """The addresses of a channel's list: one per line, or comma-separated."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


def webhook_url_shown(url: str) -> str:
    """A webhook URL fit to show and log: its origin only.

    Many receivers take their credential in the path or the query (a chat
    service's ``/services/T0/B0/<token>``), so neither is ever shown.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "…"
    if ":" in host:
        host = f"[{host}]"
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{host}{port}{rest}"


def webhook_url_refusal(url: str) -> str | None:
    """Why a webhook may not be sent to ``url``, or None.

    A URL is typed by whoever edits a channel: it gets the HTTP connector's
    outbound policy (``IMPORTHUB_HTTP_ALLOWED_HOSTS``), so that nobody can
    point the worker at the metadata service or an internal admin page.
    The delivery checks the address again when it connects.
    """
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return str(_("Not a valid URL."))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return str(_("Not an http(s) URL."))
    try:
        resolve_checked(
            parts.hostname, port, allowed=settings.IMPORTHUB_HTTP_ALLOWED_HOSTS
        )
    except AddressRefused as exc:
        return str(_("This address may not be reached: %(reason)s") % {"reason": exc})
    except OSError as exc:
        return str(_("The host does not resolve: %(reason)s") % {"reason": exc})
    return None


class NotificationChannel(models.Model):
    """Where a project's failures and recoveries are sent."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("E-mail")
        WEBHOOK = "webhook", _("Webhook")

    name = models.CharField(
        _("name"), max_length=200, help_text=_("What operators call this channel.")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    project = models.ForeignKey(
        "imports.Project",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notification_channels",
        verbose_name=_("project"),
        help_text=_("Only this project's runs; or choose a connector."),
    )
    connector = models.ForeignKey(
        "connectors.Connector",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notification_channels",
        verbose_name=_("connector"),
        help_text=_(
            "The runs of every project of this connector. With neither a "
            "project nor a connector, the runs of every project."
        ),
    )
    emails = models.TextField(
        _("e-mail addresses"),
        blank=True,
        help_text=_("One per line or comma-separated (e-mail channels)."),
    )
    webhook_url = models.CharField(
        _("webhook URL"),
        max_length=500,
        blank=True,
        help_text=_("Receives a signed JSON POST (webhook channels)."),
    )
    webhook_secret = models.CharField(
        _("webhook secret"),
        max_length=200,
        blank=True,
        help_text=_(
            "Shared secret of the signature header X-Importhub-Signature: "
            'sha256=HMAC of "<timestamp>.<body>".'
        ),
    )
    failure_threshold = models.PositiveSmallIntegerField(
        _("notify after failures"),
        default=1,
        validators=[MinValueValidator(1)],
        help_text=_(
            "Notify of a failed run once this many runs of the project have "
            "failed in a row."
        ),
    )
    notify_recovery = models.BooleanField(
        _("notify of recovery"),
        default=True,
        help_text=_("Notify of the first success after failures that were notified."),
    )
    language = models.CharField(
        _("language"),
        max_length=8,
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("The language of the messages; empty for the site's."),
    )
    is_enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("notification channel")
        verbose_name_plural = _("notification channels")
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(project__isnull=True) | Q(connector__isnull=True),
                name="notification_channel_one_scope",
            ),
            models.CheckConstraint(
                condition=Q(failure_threshold__gte=1),
                name="notification_channel_threshold_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = {}
        if self.project_id and self.connector_id:
            errors["connector"] = _("Choose a project or a connector, not both.")
        if self.kind == self.Kind.EMAIL:
            addresses = email_addresses(self.emails)
            if not addresses:
                errors["emails"] = _("Enter at least one e-mail address.")
            for address in addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    errors["emails"] = _("“%(address)s” is not an e-mail address.") % {
                        "address": address
                    }
        elif self.kind == self.Kind.WEBHOOK:
            if not self.webhook_url:
                errors["webhook_url"] = _("Enter the webhook's URL.")
            elif refusal := webhook_url_refusal(self.webhook_url):
                errors["webhook_url"] = refusal
            if not self.webhook_secret:
                errors["webhook_secret"] = _("Enter the shared secret.")
        if errors:
            raise ValidationError(errors)


class Notification(models.Model):
    """An outbox row: one message owed to one channel.

    Written in the transaction that records the run's end, so it exists if
    and only if that end committed; delivered after the commit, and again
    by the sweep until it is delivered or given up.
    """

    class Event(models.TextChoices):
        FAILED = "failed", _("Run failed")
        RECOVERED = "recovered", _("Recovered")
        TEST = "test", _("Test")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        DELIVERED = "delivered", _("Delivered")
        FAILED = "failed", _("Given up")

    channel = models.ForeignKey(
        NotificationChannel,
        on_delete=models.CASCADE,
        related_name="notifications",
        verbose_name=_("channel"),
    )
    run = models.ForeignKey(
        "imports.ImportRun",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notifications",
        verbose_name=_("run"),
    )
    event = models.CharField(_("event"), max_length=16, choices=Event.choices)
    payload = models.JSONField(
        _("payload"), default=dict, help_text=_("The facts the message is made of.")
    )
    # The delivery's state (not a run's status: only transitions write those).
    state = models.CharField(
        _("delivery state"), max_length=16, choices=State.choices, default=State.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(
        _("next attempt"), default=timezone.now, null=True, blank=True
    )
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    delivered_at = models.DateTimeField(_("delivered"), null=True, blank=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="pending"),
                name="notification_pending_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.channel}"
