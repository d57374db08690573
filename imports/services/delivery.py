"""Delivering the outbox: e-mails with Django's mail, signed webhooks.

A row is claimed by one conditional update (attempts + 1, its next attempt
pushed past the claim's lease), so that a delivery task, beat's pass and a
second worker never send it at once; one that dies mid-send is sent again
when the lease is over: delivery is at least once, and a receiver tells
repeats apart by the ``X-Importhub-Delivery`` header (the row's id).

Inside one attempt a transient failure (connection refused, timeout, 5xx,
429) is tried again a few times with stamina's backoff; after that the row
waits ``IMPORTHUB_NOTIFY_RETRY_BASE_SECONDS * 2 ** (attempts - 1)`` (capped)
for beat, and is given up after ``IMPORTHUB_NOTIFY_MAX_ATTEMPTS``.

A webhook is a JSON POST signed with the channel's secret::

    X-Importhub-Timestamp: <unix seconds>
    X-Importhub-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">

Its URL gets the HTTP connector's outbound policy at connect time too (the
checked transport): a name that resolves to an internal address since the
channel was saved is refused. Redirects are not followed.
"""

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from datetime import timedelta

import httpx
import stamina
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connectors.addresses import AddressRefused, AllowList
from connectors.http_backend import CheckedTransport
from imports.models import Notification, NotificationChannel
from imports.models.notifications import email_addresses, webhook_url_shown
from imports.services.notification_text import notification_render

logger = logging.getLogger(__name__)

State = Notification.State
RETRY_STATUSES = frozenset({408, 425, 429})


class DeliveryFailed(Exception):
    """A delivery attempt failed; ``transient`` if a later one may succeed."""

    def __init__(self, message: str, *, transient: bool):
        super().__init__(message)
        self.transient = transient


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Importhub-Signature`` value of a body sent at ``timestamp``."""
    digest = hmac.new(
        secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    return f"sha256={digest}"


def webhook_body(notification: Notification) -> bytes:
    subject, text = notification_render(notification)
    document = {
        "id": notification.pk,
        "event": notification.event,
        "created_at": notification.created_at.isoformat(),
        "summary": subject,
        "text": text,
        **notification.payload,
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True).encode()


def _webhook_post(channel: NotificationChannel, notification: Notification) -> None:
    body = webhook_body(notification)
    transport = CheckedTransport(
        allowed=AllowList(settings.IMPORTHUB_HTTP_ALLOWED_HOSTS),
        verify=ssl.create_default_context(),
    )
    timeout = settings.IMPORTHUB_NOTIFY_TIMEOUT_SECONDS
    with httpx.Client(
        transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "importhub",
            "X-Importhub-Event": notification.event,
            "X-Importhub-Delivery": str(notification.pk),
            "X-Importhub-Timestamp": timestamp,
            "X-Importhub-Signature": webhook_signature(
                channel.webhook_secret, timestamp, body
            ),
        }
        where = webhook_url_shown(channel.webhook_url)
        try:
            response = client.post(channel.webhook_url, content=body, headers=headers)
        except AddressRefused as exc:
            raise DeliveryFailed(f"POST {where}: refused: {exc}", transient=False)
        except (httpx.TransportError, OSError) as exc:
            raise DeliveryFailed(
                f"POST {where} failed: {exc or type(exc).__name__}", transient=True
            )
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"POST {where}: HTTP {status} {response.reason_phrase}"
    raise DeliveryFailed(reason, transient=status >= 500 or status in RETRY_STATUSES)


def _email_send(channel: NotificationChannel, notification: Notification) -> None:
    subject, text = notification_render(notification)
    message = EmailMessage(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=email_addresses(channel.emails),
    )
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryFailed(f"SMTP refused the recipients: {exc}", transient=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryFailed(f"SMTP: {exc or type(exc).__name__}", transient=True)


SENDERS = {
    NotificationChannel.Kind.EMAIL: _email_send,
    NotificationChannel.Kind.WEBHOOK: _webhook_post,
}


def _send(notification: Notification, *, tries: int) -> None:
    """One attempt, its transient failures tried again in place."""
    channel = notification.channel
    sender = SENDERS[channel.kind]
    for attempt in stamina.retry_context(
        on=lambda exc: isinstance(exc, DeliveryFailed) and exc.transient,
        attempts=max(1, tries),
        timeout=None,
        wait_initial=settings.IMPORTHUB_NOTIFY_TRY_WAIT_SECONDS,
        wait_max=settings.IMPORTHUB_NOTIFY_TRY_WAIT_SECONDS * 8,
        wait_jitter=settings.IMPORTHUB_NOTIFY_TRY_WAIT_SECONDS,
    ):
        with attempt:
            sender(channel, notification)


def notification_backoff(attempts: int) -> float:
    """Seconds until the next attempt after ``attempts`` failed ones."""
    base = settings.IMPORTHUB_NOTIFY_RETRY_BASE_SECONDS
    return min(settings.IMPORTHUB_NOTIFY_RETRY_MAX_SECONDS, base * 2 ** (attempts - 1))


def notification_deliver(
    *, notification_id: int, tries: int | None = None
) -> str | None:
    """Deliver one pending, due outbox row; its new state, or None if it
    was not pending and due (delivered, or claimed by another process).

    ``tries`` in place (default ``IMPORTHUB_NOTIFY_TRIES``) before the row
    waits for its next attempt.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.IMPORTHUB_NOTIFY_CLAIM_SECONDS)
    claimed = Notification.objects.filter(
        pk=notification_id, state=State.PENDING, next_attempt_at__lte=now
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + lease)
    if not claimed:
        return None
    notification = Notification.objects.select_related("channel").get(
        pk=notification_id
    )
    try:
        _send(notification, tries=tries or settings.IMPORTHUB_NOTIFY_TRIES)
    except DeliveryFailed as exc:
        changes = {"last_error": str(exc)[:2000]}
        attempts = notification.attempts
        if exc.transient and attempts < settings.IMPORTHUB_NOTIFY_MAX_ATTEMPTS:
            delay = notification_backoff(attempts)
            changes.update(next_attempt_at=timezone.now() + timedelta(seconds=delay))
        else:
            changes.update(state=State.FAILED, next_attempt_at=None)
        logger.warning("notification %s not delivered: %s", notification_id, exc)
    except Exception as exc:  # a bug or a broken channel: give up, loudly
        logger.exception("notification %s could not be sent", notification_id)
        changes = {
            "state": State.FAILED,
            "next_attempt_at": None,
            "last_error": f"{type(exc).__name__}: {exc}"[:2000],
        }
    else:
        changes = {
            "state": State.DELIVERED,
            "delivered_at": timezone.now(),
            "next_attempt_at": None,
            "last_error": "",
        }
    Notification.objects.filter(pk=notification_id, state=State.PENDING).update(
        **changes
    )
    return changes.get("state", State.PENDING)


def notifications_deliver_due(*, limit: int = 200, budget: float | None = None) -> int:
    """Deliver the pending rows whose time has come (beat's safety net);
    returns how many were delivered.

    It runs beside the sweep, so it must not hold up the next one: each
    row gets one try (the next pass is its retry), and no new row is begun
    once ``budget`` seconds (default ``IMPORTHUB_SWEEP_SECONDS``) are spent.
    """
    budget = settings.IMPORTHUB_SWEEP_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    due = Notification.objects.filter(
        state=State.PENDING, next_attempt_at__lte=timezone.now()
    ).order_by("next_attempt_at", "pk")
    delivered = 0
    for notification_id in list(due.values_list("pk", flat=True)[:limit]):
        state = notification_deliver(notification_id=notification_id, tries=1)
        delivered += state == State.DELIVERED
        if time.monotonic() >= deadline:
            break
    return delivered


def notification_test_send(*, channel: NotificationChannel, requested_by: str):
    """Queue a test message to ``channel`` through the outbox, as a real
    one would go; returns the row."""
    from imports.services.notifications import notifications_dispatch

    with transaction.atomic():
        notification = Notification.objects.create(
            channel=channel,
            event=Notification.Event.TEST,
            payload={"requested_by": requested_by[:150]},
        )
        transaction.on_commit(lambda: notifications_dispatch([notification.pk]))
    return notification


def notification_retry(*, notification: Notification) -> bool:
    """Send a given-up (or waiting) row again, now; False if delivered."""
    return bool(
        Notification.objects.filter(pk=notification.pk)
        .exclude(state=State.DELIVERED)
        .update(state=State.PENDING, next_attempt_at=timezone.now())
    )
