"""Notification channels, their outbox and the pause banner in the admin."""

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from connectors.secrets import MASK
from imports.models import Notification, NotificationChannel, ProjectEvent
from imports.services.delivery import notifications_deliver_due

pytestmark = pytest.mark.django_db

SECRET = "hook-secret-value-42"


def channel_add_data(**fields) -> dict:
    data = {
        "name": "ops",
        "kind": "webhook",
        "project": "",
        "connector": "",
        "emails": "",
        "webhook_url": "http://127.0.0.1:9/hook",
        "webhook_secret": SECRET,
        "failure_threshold": "2",
        "notify_recovery": "on",
        "language": "",
        "is_enabled": "on",
    }
    data.update(fields)
    return data


@pytest.fixture
def webhook(db):
    return NotificationChannel.objects.create(
        name="ops hook",
        kind="webhook",
        webhook_url="http://127.0.0.1:9/hook",
        webhook_secret=SECRET,
    )


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_secret_never_comes_back_to_the_page(admin_client, webhook):
    url = reverse("admin:imports_notificationchannel_change", args=[webhook.pk])
    html = admin_client.get(url).content.decode()
    assert SECRET not in html
    assert MASK in html
    listing = admin_client.get(reverse("admin:imports_notificationchannel_changelist"))
    assert SECRET not in listing.content.decode()
    # The placeholder sent back keeps the secret.
    data = channel_add_data(webhook_secret=MASK, name="renamed")
    response = admin_client.post(url, data)
    assert response.status_code == 302
    webhook.refresh_from_db()
    assert (webhook.name, webhook.webhook_secret) == ("renamed", SECRET)


def test_the_placeholder_does_not_follow_a_new_host(admin_client, webhook):
    url = reverse("admin:imports_notificationchannel_change", args=[webhook.pk])
    data = channel_add_data(webhook_secret=MASK, webhook_url="http://127.0.0.1:8/x")
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert "enter the secret again" in response.content.decode()
    webhook.refresh_from_db()
    assert webhook.webhook_url == "http://127.0.0.1:9/hook"


def test_secret_lookups_are_refused(admin_client, webhook):
    response = admin_client.get(
        reverse("admin:imports_notificationchannel_changelist"),
        {"webhook_secret__startswith": "h"},
    )
    assert response.status_code == 400


def test_an_internal_webhook_url_is_refused(admin_client):
    response = admin_client.post(
        reverse("admin:imports_notificationchannel_add"),
        channel_add_data(webhook_url="http://169.254.169.254/latest/"),
    )
    assert response.status_code == 200
    assert "may not be reached" in response.content.decode()
    assert not NotificationChannel.objects.exists()


def test_a_viewer_sees_the_channel_masked(staff_client, webhook):
    client = staff_client("view_notificationchannel")
    webhook.webhook_url = "https://hooks:pw-in-url@example.com/services/T0/tok3n?k=v"
    webhook.save()
    url = reverse("admin:imports_notificationchannel_change", args=[webhook.pk])
    html = client.get(url).content.decode()
    assert SECRET not in html and "pw-in-url" not in html
    # The path and query may hold the receiver's credential: origin only.
    assert "tok3n" not in html and "k=v" not in html
    assert "https://example.com/…" in html
    assert "channel-send-test" not in html
    assert (
        client.post(
            reverse("admin:imports_notificationchannel_test", args=[webhook.pk])
        ).status_code
        == 403
    )


@pytest.mark.django_db(transaction=True)
def test_send_a_test_notification_from_the_page(admin_client):
    channel = NotificationChannel.objects.create(
        name="ops mail", kind="email", emails="ops@example.com"
    )
    page = reverse("admin:imports_notificationchannel_change", args=[channel.pk])
    assert 'id="channel-send-test"' in admin_client.get(page).content.decode()
    response = admin_client.post(
        reverse("admin:imports_notificationchannel_test", args=[channel.pk]),
        follow=True,
    )
    notification = channel.notifications.get()
    assert notification.event == "test" and notification.state == "pending"
    (text,) = texts(response)
    assert "A test notification was queued." in text
    assert reverse("admin:imports_notification_change", args=[notification.pk]) in (
        text
    )
    assert notifications_deliver_due() == 1
    (message,) = mail.outbox
    assert message.to == ["ops@example.com"]
    assert "sent by admin" in message.body
    # The outbox shows it delivered.
    listing = admin_client.get(reverse("admin:imports_notification_changelist"))
    html = listing.content.decode()
    assert "Delivered" in html and "ops mail" in html


def test_the_test_action_on_many_channels(admin_client, webhook):
    other = NotificationChannel.objects.create(
        name="ops mail", kind="email", emails="ops@example.com"
    )
    response = admin_client.post(
        reverse("admin:imports_notificationchannel_changelist"),
        {"action": "send_test", "_selected_action": [webhook.pk, other.pk]},
        follow=True,
    )
    assert Notification.objects.filter(event="test").count() == 2
    assert texts(response) == [
        "Test notifications were queued for 2 channels; their delivery shows "
        "under Notifications."
    ]


def test_send_again_from_the_outbox(admin_client, webhook):
    given_up = Notification.objects.create(
        channel=webhook,
        event="test",
        state="failed",
        attempts=12,
        next_attempt_at=None,
        last_error="POST http://127.0.0.1:9/hook failed: refused",
    )
    listing = admin_client.get(reverse("admin:imports_notification_changelist"))
    assert "Given up" in listing.content.decode()
    assert "failed: refused" in listing.content.decode()
    admin_client.post(
        reverse("admin:imports_notification_changelist"),
        {"action": "retry_selected", "_selected_action": [given_up.pk]},
    )
    given_up.refresh_from_db()
    assert given_up.state == "pending" and given_up.next_attempt_at is not None


def paused(project, failures=3, run_id=None):
    project.paused_at = timezone.now()
    project.pause_details = {
        "failures": failures,
        "run_id": run_id,
        "error": "HTTP 401 Unauthorized",
        "threshold": failures,
    }
    project.save()
    return project


def test_the_pause_banner_and_resume(admin_client, make_project):
    project = paused(make_project(auto_pause_after=3))
    page = reverse("admin:imports_project_change", args=[project.pk])
    html = admin_client.get(page).content.decode()
    assert 'id="project-pause-banner"' in html
    assert "This project is paused." in html
    assert "after 3 failed runs in a row" in html
    assert 'id="project-resume"' in html
    assert 'name="auto_pause_after"' in html
    response = admin_client.post(
        reverse("admin:imports_project_resume", args=[project.pk]), follow=True
    )
    assert texts(response) == [
        f"Project “{project.name}” was resumed; it accepts imports."
    ]
    project.refresh_from_db()
    assert project.paused_at is None
    assert project.events.filter(kind=ProjectEvent.Kind.RESUMED).get().actor == (
        "admin"
    )
    assert 'id="project-pause-banner"' not in admin_client.get(page).content.decode()


def test_no_banner_for_a_project_that_runs(admin_client, make_project):
    project = make_project()
    page = reverse("admin:imports_project_change", args=[project.pk])
    assert "project-pause-banner" not in admin_client.get(page).content.decode()


def test_a_viewer_sees_the_banner_but_cannot_resume(staff_client, make_project):
    project = paused(make_project())
    client = staff_client("view_project")
    html = client.get(
        reverse("admin:imports_project_change", args=[project.pk])
    ).content.decode()
    assert 'id="project-pause-banner"' in html
    assert 'id="project-resume"' not in html
    response = client.post(reverse("admin:imports_project_resume", args=[project.pk]))
    assert response.status_code == 403
    project.refresh_from_db()
    assert project.paused_at is not None


def test_import_now_on_a_paused_project_says_why(admin_client, make_project):
    project = paused(make_project())
    response = admin_client.post(
        reverse("admin:imports_project_import", args=[project.pk]), follow=True
    )
    assert texts(response) == [
        f"Project {project.pk} is paused after 3 failed runs in a row and "
        f"accepts no imports; resume it on its page."
    ]
    assert not project.runs.exists()
