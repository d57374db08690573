"""Webhooks: signed, delivered at least once through a receiver that is down
for a while, never for a run whose end rolled back, never to an address the
outbound policy refuses."""

import time

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from imports.models import Notification, NotificationChannel
from imports.services.delivery import (
    notification_deliver,
    notification_test_send,
    notifications_deliver_due,
    webhook_signature,
)
from tests.imports.notifications.conftest import SECRET

pytestmark = pytest.mark.django_db


def only_notification(channel) -> Notification:
    (notification,) = channel.notifications.all()
    return notification


def test_delivered_once_the_receiver_comes_up(
    make_project, receiver, webhook_channel, end_run
):
    """Down at the first attempt: the row waits with its error and its next
    attempt; beat's pass sends nothing before that time, and delivers it,
    signed, once the receiver is up."""
    hook = receiver()
    project = make_project()
    channel = webhook_channel(hook.url, project=project)
    run = end_run(project, "failed", error="HTTP 503 from the source")
    notification = only_notification(channel)

    assert notification_deliver(notification_id=notification.pk) == "pending"
    notification.refresh_from_db()
    assert notification.attempts == 1
    assert notification.last_error.startswith(
        f"POST http://127.0.0.1:{hook.port}/… failed:"
    )
    assert "/hooks/importhub" not in notification.last_error
    assert notifications_deliver_due() == 0  # not due yet
    assert hook.received == []

    hook.up()
    time.sleep(0.4)  # the backoff of the test settings: 0.3 s
    assert notifications_deliver_due() == 1
    (delivery,) = hook.received
    assert hook.refused == []
    body = delivery["json"]
    assert body["event"] == "failed" and body["id"] == notification.pk
    assert body["run"]["id"] == run.pk
    assert body["run"]["error_message"] == "HTTP 503 from the source"
    assert body["project"] == {
        "id": project.pk,
        "name": project.name,
        "url": f"/admin/imports/project/{project.pk}/change/",
        "paused": False,
    }
    assert body["consecutive_failures"] == 1
    assert delivery["headers"]["X-Importhub-Delivery"] == str(notification.pk)
    notification.refresh_from_db()
    assert (notification.state, notification.attempts) == ("delivered", 2)
    assert notification.last_error == ""
    # Delivered rows are not sent again.
    assert notifications_deliver_due() == 0
    assert len(hook.received) == 1


def test_tries_in_place_ride_out_a_short_outage(
    settings, make_project, receiver, webhook_channel, end_run
):
    """Inside one attempt the POST is tried again with backoff (stamina):
    a receiver down for half a second gets it in that same attempt."""
    settings.IMPORTHUB_NOTIFY_TRIES = 8
    settings.IMPORTHUB_NOTIFY_TRY_WAIT_SECONDS = 0.1
    hook = receiver()
    project = make_project()
    channel = webhook_channel(hook.url, project=project)
    end_run(project, "failed")
    notification = only_notification(channel)
    timer = hook.up_after(0.5)
    try:
        assert notification_deliver(notification_id=notification.pk) == "delivered"
    finally:
        timer.join()
    notification.refresh_from_db()
    assert notification.attempts == 1
    assert len(hook.received) == 1 and hook.refused == []


def test_a_server_error_is_tried_again_a_client_error_is_not(
    make_project, receiver, webhook_channel, end_run
):
    hook = receiver(statuses=[503, 404]).up()
    project = make_project()
    channel = webhook_channel(hook.url, project=project)
    end_run(project, "failed")
    notification = only_notification(channel)
    assert notification_deliver(notification_id=notification.pk) == "pending"
    notification.refresh_from_db()
    assert "HTTP 503" in notification.last_error
    notification.next_attempt_at = notification.created_at
    notification.save(update_fields=["next_attempt_at"])
    assert notification_deliver(notification_id=notification.pk) == "failed"
    notification.refresh_from_db()
    assert "HTTP 404" in notification.last_error
    assert notification.next_attempt_at is None


def test_given_up_after_the_last_attempt(
    settings, make_project, receiver, webhook_channel, end_run
):
    settings.IMPORTHUB_NOTIFY_MAX_ATTEMPTS = 2
    settings.IMPORTHUB_NOTIFY_RETRY_BASE_SECONDS = 0
    hook = receiver()  # never up
    project = make_project()
    channel = webhook_channel(hook.url, project=project)
    end_run(project, "failed")
    notification = only_notification(channel)
    assert notification_deliver(notification_id=notification.pk) == "pending"
    assert notification_deliver(notification_id=notification.pk) == "failed"
    assert notification_deliver(notification_id=notification.pk) is None


def test_never_sent_for_a_run_whose_end_rolled_back(
    make_project, receiver, webhook_channel, end_run
):
    hook = receiver().up()
    project = make_project()
    channel = webhook_channel(hook.url, project=project)
    with pytest.raises(RuntimeError), transaction.atomic():
        end_run(project, "failed")
        assert channel.notifications.count() == 1
        raise RuntimeError("the worker's transaction fails after the end")
    assert channel.notifications.count() == 0
    assert notifications_deliver_due() == 0
    end_run(project, "failed")  # a committed end is sent
    assert notifications_deliver_due() == 1
    assert len(hook.received) == 1


def test_the_signature_is_an_hmac_of_timestamp_and_body():
    import hashlib
    import hmac

    body = b'{"event": "failed"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhook_signature("k", "1700000000", body) == f"sha256={expected}"


def test_a_receiver_checking_with_another_secret_refuses_it(
    make_project, receiver, webhook_channel
):
    """The receiver's check is real: a channel whose secret differs fails."""
    hook = receiver().up()
    channel = webhook_channel(hook.url, project=make_project())
    channel.webhook_secret = SECRET + "-not"
    channel.save()
    notification = notification_test_send(channel=channel, requested_by="olga")
    assert notification_deliver(notification_id=notification.pk) == "failed"
    assert len(hook.refused) == 1 and hook.received == []
    assert "HTTP 401" in Notification.objects.get(pk=notification.pk).last_error


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
        "http://[::ffff:10.0.0.1]:8080/hook",
        "http://[fd00::1]/hook",
        "ftp://example.com/hook",
    ],
)
def test_internal_addresses_are_refused_when_saved(url):
    channel = NotificationChannel(
        name="x", kind="webhook", webhook_url=url, webhook_secret="k"
    )
    with pytest.raises(ValidationError) as caught:
        channel.full_clean()
    assert "webhook_url" in caught.value.message_dict


def test_and_when_sent(settings, make_project, receiver, webhook_channel):
    """A channel saved past the form (or whose host now resolves inward) is
    refused at connect time by the HTTP connector's checked transport."""
    hook = receiver().up()
    channel = webhook_channel(hook.url, project=make_project())
    settings.IMPORTHUB_HTTP_ALLOWED_HOSTS = []
    with pytest.raises(ValidationError):
        channel.full_clean()
    notification = notification_test_send(channel=channel, requested_by="olga")
    assert notification_deliver(notification_id=notification.pk) == "failed"
    assert "refused" in Notification.objects.get(pk=notification.pk).last_error
    assert hook.received == [] and hook.refused == []


def test_the_test_notification(make_project, receiver, webhook_channel):
    hook = receiver().up()
    channel = webhook_channel(hook.url, language="ru")
    notification = notification_test_send(channel=channel, requested_by="olga")
    assert notifications_deliver_due() == 1
    (delivery,) = hook.received
    assert delivery["json"]["event"] == "test"
    assert delivery["json"]["requested_by"] == "olga"
    # The channel's language: Russian.
    assert delivery["json"]["summary"] == (
        "importhub: проверочное уведомление канала «ops webhook»"
    )
    assert "канал «ops webhook» работает" in delivery["json"]["text"]
    assert notification.pk == delivery["json"]["id"]


def test_beats_pass_tries_each_row_once_within_its_budget(
    settings, make_project, receiver, webhook_channel, end_run
):
    """Beside the sweep, beat's pass must not linger: one try per row (no
    waits in place), and no new row once its budget is spent."""
    settings.IMPORTHUB_NOTIFY_TRIES = 6
    settings.IMPORTHUB_NOTIFY_TRY_WAIT_SECONDS = 0.2
    hook = receiver()  # down
    project = make_project()
    channel = webhook_channel(hook.url, project=project)
    end_run(project, "failed")
    started = time.monotonic()
    assert notifications_deliver_due() == 0
    assert time.monotonic() - started < 0.5  # six tries would wait 3 s
    assert only_notification(channel).attempts == 1

    hook.up()
    end_run(project, "failed")
    Notification.objects.update(next_attempt_at=channel.created_at)  # both due
    assert notifications_deliver_due(budget=0) == 1
    assert channel.notifications.filter(state="pending").count() == 1
    assert notifications_deliver_due(budget=0) == 1
    assert len(hook.received) == 2
