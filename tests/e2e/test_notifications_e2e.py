"""End to end: a worker fails an import, its own task sends the webhook to a
receiver that is down, and beat's pass (on the worker) delivers it once the
receiver is up."""

import pytest
from django.conf import settings

from imports.models import ImportRun, Notification, NotificationChannel
from imports.services.guard import import_run_request
from imports.tasks import notifications_deliver_due_task
from tests.conftest import wait_for
from tests.imports.notifications.receiver import WebhookReceiver

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]

SECRET = "e2e-webhook-secret"


def test_a_failure_reaches_a_receiver_that_was_down(start_worker, make_project):
    start_worker(
        env={
            "IMPORTHUB_NOTIFY_TRIES": "1",
            "IMPORTHUB_NOTIFY_RETRY_BASE_SECONDS": "0.5",
        }
    )
    receiver = WebhookReceiver(SECRET)
    try:
        project = make_project()
        channel = NotificationChannel(
            name="ops",
            kind="webhook",
            project=project,
            webhook_url=receiver.url,
            webhook_secret=SECRET,
        )
        channel.full_clean()
        channel.save()
        run = import_run_request(project=project, requested_by="t", trigger="command")
        wait_for(
            lambda: ImportRun.objects.filter(pk=run.pk, status="failed").exists(),
            message="the run did not fail",
        )
        # The worker's delivery task tried, and the row waits. (Its claim
        # counts the attempt before the POST; the error is written after.)
        notification = wait_for(
            lambda: (
                Notification.objects.filter(channel=channel, attempts=1)
                .exclude(last_error="")
                .first()
            ),
            message="the delivery task did not try",
        )
        assert notification.state == "pending"
        assert "failed" in notification.last_error
        assert receiver.received == []

        receiver.up()

        def beat_tick():
            # What beat sends every sweep period.
            notifications_deliver_due_task.apply_async(
                queue=settings.IMPORTHUB_TASK_QUEUE
            )
            return receiver.arrived.wait(2)

        wait_for(beat_tick, timeout=30, message="never delivered")
        (delivery,) = receiver.received
        assert receiver.refused == []
        assert delivery["json"]["run"]["id"] == run.pk
        assert delivery["json"]["event"] == "failed"
        # The worker records the delivery once the receiver has answered.
        delivered = wait_for(
            lambda: Notification.objects.filter(
                pk=notification.pk, state="delivered"
            ).first(),
            message="the delivery was not recorded",
        )
        assert delivered.attempts >= 2 and delivered.delivered_at is not None
    finally:
        receiver.close()
