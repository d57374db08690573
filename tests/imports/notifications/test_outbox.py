"""A run's end writes its notifications in its own transaction; e-mails."""

import pytest
from django.core import mail
from django.db import transaction

from imports.models import ImportRun, Notification
from imports.services.delivery import notification_deliver, notifications_deliver_due
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request

pytestmark = pytest.mark.django_db

Event = Notification.Event


def events(channel) -> list[str]:
    return list(channel.notifications.order_by("pk").values_list("event", flat=True))


class Boom(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_a_failed_import_mails_its_channel(make_project, email_channel):
    """A real import that fails (its file is missing) owes one e-mail,
    sent when delivered, to every address of the channel."""
    project = make_project()
    channel = email_channel(project=project)
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    (notification,) = channel.notifications.all()
    assert (notification.event, notification.run_id) == (Event.FAILED, run.pk)
    assert mail.outbox == []  # owed, not yet sent
    assert notification_deliver(notification_id=notification.pk) == "delivered"
    (message,) = mail.outbox
    assert message.to == ["ops@example.com", "lead@example.com"]
    assert f"run #{run.pk}" in message.subject and project.name in message.subject
    assert run.error_message in message.body
    assert f"/admin/imports/importrun/{run.pk}/change/" in message.body
    notification.refresh_from_db()
    assert notification.state == "delivered" and notification.attempts == 1
    assert notification.delivered_at is not None


def test_the_threshold_and_the_recovery(make_project, email_channel, end_run):
    """Told from the third failure in a row on, and of the success after."""
    project = make_project()
    channel = email_channel(project=project, failure_threshold=3)
    end_run(project, "failed")
    end_run(project, "failed")
    assert events(channel) == []
    end_run(project, "failed")
    end_run(project, "failed")
    assert events(channel) == [Event.FAILED, Event.FAILED]
    recovered = end_run(project, "succeeded")
    assert events(channel) == [Event.FAILED, Event.FAILED, Event.RECOVERED]
    assert notifications_deliver_due() == 3
    assert [m.subject for m in mail.outbox][-1] == (
        f"importhub: “{project.name}” recovered"
    )
    assert f"Run #{recovered.pk}" in mail.outbox[-1].body
    assert "after 4 failed runs in a row" in mail.outbox[-1].body
    # A success that follows a success tells nobody.
    end_run(project, "succeeded")
    assert len(events(channel)) == 3


def test_no_recovery_for_failures_below_the_threshold(
    make_project, email_channel, end_run
):
    """Nobody heard of two failures under a threshold of three: a success
    after them is no news."""
    project = make_project()
    channel = email_channel(project=project, failure_threshold=3)
    end_run(project, "failed")
    end_run(project, "failed")
    end_run(project, "succeeded")
    end_run(project, "failed")
    assert events(channel) == []


def test_a_cancelled_run_does_not_break_the_streak(
    make_project, email_channel, end_run
):
    from imports.services.transitions import CANCEL

    project = make_project()
    channel = email_channel(project=project, failure_threshold=2)
    end_run(project, "failed")
    run = ImportRun.objects.create(project=project, status="running", trigger="admin")
    CANCEL.apply(run, actor="olga")
    end_run(project, "failed")
    assert events(channel) == [Event.FAILED]


def test_scopes_project_connector_and_everything(
    make_project, make_connector, email_channel, end_run
):
    connector = make_connector()
    project = make_project(connector=connector)
    other = make_project()
    mine = email_channel(name="mine", project=project)
    by_connector = email_channel(name="connector", connector=connector)
    everything = email_channel(name="all")
    elsewhere = email_channel(name="other", project=other)
    disabled = email_channel(name="off", project=project, is_enabled=False)
    end_run(project, "failed")
    assert [len(events(c)) for c in (mine, by_connector, everything)] == [1, 1, 1]
    assert events(elsewhere) == [] and events(disabled) == []


def test_nothing_is_owed_for_an_end_that_rolled_back(
    make_project, email_channel, end_run
):
    """The outbox row is written in the transaction of the run's end: when
    that rolls back, no row is left, and nothing is ever sent."""
    project = make_project()
    channel = email_channel(project=project)
    with pytest.raises(Boom), transaction.atomic():
        end_run(project, "failed")
        assert len(events(channel)) == 1  # written, inside the transaction
        raise Boom
    assert events(channel) == []
    assert notifications_deliver_due() == 0
    assert mail.outbox == []


def test_a_notification_bug_never_keeps_a_run_from_ending(
    make_project, email_channel, end_run, monkeypatch
):
    """A fault of the outbox write is logged; the run still fails."""
    from imports.services import notifications

    def broken(**kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(notifications, "run_end_record", broken)
    project = make_project()
    email_channel(project=project)
    run = end_run(project, "failed")
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED


def test_delivery_is_published_after_the_commit(
    make_project, email_channel, end_run, django_capture_on_commit_callbacks, published
):
    """One delivery task per row, published only once the end commits."""
    project = make_project()
    email_channel(project=project)
    email_channel(name="second", project=project)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        end_run(project, "failed")
    assert published() == 0
    for callback in callbacks:
        callback()
    assert published() == 2


def test_a_real_smtp_server_down_then_up(
    settings, make_project, email_channel, end_run
):
    """With Django's SMTP backend and a local SMTP server: while nothing
    listens, the row waits with the error; once it is up, beat's pass
    hands the message over, in the channel's language."""
    import time

    from tests.imports.notifications.smtp_server import SmtpServer

    smtp = SmtpServer()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        settings.DEFAULT_FROM_EMAIL = "importhub@example.com"
        project = make_project(name="Клиенты")
        channel = email_channel(project=project, language="ru")
        run = end_run(project, "failed", error="Файл не найден")
        (notification,) = channel.notifications.all()
        assert notification_deliver(notification_id=notification.pk) == "pending"
        notification.refresh_from_db()
        assert notification.attempts == 1 and "SMTP" in notification.last_error
        assert notifications_deliver_due() == 0

        smtp.up()
        time.sleep(0.4)  # the backoff of the test settings
        assert notifications_deliver_due() == 1
        (message,) = smtp.messages
        assert smtp.envelopes[0]["to"] == ["ops@example.com", "lead@example.com"]
        assert message["Subject"].strip() == (
            f"importhub: запуск #{run.pk} проекта «Клиенты» завершился ошибкой"
        )
        body = message.get_content()
        assert "Ошибка: Файл не найден" in body
        assert "неудачных запусков подряд: 1" in body
    finally:
        smtp.close()
