"""Fixtures of the notification tests: channels, runs that end, a receiver."""

import pytest

from imports.models import ImportRun, NotificationChannel
from imports.services.transitions import FAIL, SUCCEED
from tests.imports.notifications.receiver import WebhookReceiver

SECRET = "s3cret-shared-with-the-receiver"


@pytest.fixture(autouse=True)
def _quick_retries(settings):
    """Delivery waits of a fraction of a second, so tests need not sleep."""
    settings.IMPORTHUB_NOTIFY_TRIES = 1
    settings.IMPORTHUB_NOTIFY_TRY_WAIT_SECONDS = 0.05
    settings.IMPORTHUB_NOTIFY_RETRY_BASE_SECONDS = 0.3
    settings.IMPORTHUB_NOTIFY_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def receiver():
    made = []

    def make(**kwargs) -> WebhookReceiver:
        made.append(WebhookReceiver(SECRET, **kwargs))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def webhook_channel(db):
    def make(url: str, **fields) -> NotificationChannel:
        channel = NotificationChannel(
            name=fields.pop("name", "ops webhook"),
            kind=NotificationChannel.Kind.WEBHOOK,
            webhook_url=url,
            webhook_secret=SECRET,
            **fields,
        )
        channel.full_clean()
        channel.save()
        return channel

    return make


@pytest.fixture
def email_channel(db):
    def make(**fields) -> NotificationChannel:
        fields.setdefault("emails", "ops@example.com, lead@example.com")
        channel = NotificationChannel(
            name=fields.pop("name", "ops mail"),
            kind=NotificationChannel.Kind.EMAIL,
            **fields,
        )
        channel.full_clean()
        channel.save()
        return channel

    return make


def _running(project) -> ImportRun:
    return ImportRun.objects.create(
        project=project, status=ImportRun.Status.RUNNING, trigger="command"
    )


@pytest.fixture
def end_run():
    """End a run of ``project`` as a worker does: ``end_run(project, "failed")``."""

    def end(project, outcome: str, *, error: str = "The source is gone") -> ImportRun:
        run = _running(project)
        if outcome == "failed":
            FAIL.apply(
                run,
                actor="worker",
                message=error,
                error_class="PermanentSourceError",
                error_message=error,
            )
        else:
            SUCCEED.apply(run, actor="worker", error_class="", error_message="")
        return run

    return end
