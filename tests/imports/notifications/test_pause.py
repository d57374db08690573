"""Auto-pause: failing N times in a row pauses a project; resume undoes it."""

import pytest

from imports.exceptions import ProjectPaused
from imports.models import ImportRun, Notification, ProjectEvent
from imports.services.guard import import_run_request, project_importable_check
from imports.services.pause import project_resume
from imports.services.schedules import (
    project_import_scheduled,
    projects_import_scheduled,
)

pytestmark = pytest.mark.django_db

Kind = ProjectEvent.Kind


def kinds(project) -> list[str]:
    return list(project.events.order_by("at", "id").values_list("kind", flat=True))


def test_off_by_default(make_project, end_run):
    project = make_project()
    assert project.auto_pause_after == 0
    for _ in range(5):
        end_run(project, "failed")
    project.refresh_from_db()
    assert project.paused_at is None
    project_importable_check(project=project)


def test_paused_after_n_failures_in_a_row(make_project, end_run):
    project = make_project(auto_pause_after=3)
    end_run(project, "failed")
    end_run(project, "succeeded")
    end_run(project, "failed")
    end_run(project, "failed")
    project.refresh_from_db()
    assert project.paused_at is None  # the success broke the streak
    last = end_run(project, "failed", error="HTTP 401 Unauthorized")
    project.refresh_from_db()
    assert project.paused_at is not None
    assert project.pause_details == {
        "failures": 3,
        "run_id": last.pk,
        "error": "HTTP 401 Unauthorized",
        "threshold": 3,
    }
    assert kinds(project) == [Kind.PAUSED]
    event = project.events.get()
    assert event.actor == "auto-pause" and event.data["run_id"] == last.pk


def test_a_paused_project_refuses_imports(make_project, end_run, published):
    """Refused before anything is sent, with the reason; the check comes
    before the connector's (a paused project of a disabled connector says
    it is paused)."""
    project = make_project(auto_pause_after=1)
    end_run(project, "failed")
    project.refresh_from_db()
    project.connector.is_enabled = False
    project.connector.save()
    with pytest.raises(ProjectPaused) as caught:
        import_run_request(project=project, requested_by="t", trigger="admin")
    assert str(caught.value) == (
        f"Project {project.pk} is paused after 1 failed runs in a row and "
        f"accepts no imports; resume it on its page."
    )
    assert caught.value.status_code == 409
    assert published() == 0
    assert project.runs.count() == 1


def test_scheduled_ticks_are_skipped_and_recorded(make_project, end_run, published):
    project = make_project(auto_pause_after=1)
    end_run(project, "failed")
    assert project_import_scheduled(project_id=project.pk) is None
    assert projects_import_scheduled(project_ids=[project.pk]) == []
    assert kinds(project) == [Kind.PAUSED, Kind.SKIPPED_PAUSED, Kind.SKIPPED_PAUSED]
    skipped = project.events.filter(kind=Kind.SKIPPED_PAUSED).first()
    assert skipped.data == {"code": "project_paused"}
    assert "is paused" in skipped.message
    assert published() == 0


def test_resume(make_project, end_run):
    """Resumed: imports are accepted again, and the streak starts anew (the
    next failure alone does not pause it again)."""
    project = make_project(auto_pause_after=2)
    end_run(project, "failed")
    end_run(project, "failed")
    project.refresh_from_db()
    assert project.paused_at is not None
    assert project_resume(project=project, resumed_by="olga") is True
    assert project_resume(project=project, resumed_by="olga") is False
    project.refresh_from_db()
    assert (project.paused_at, project.pause_details) == (None, {})
    resumed = project.events.filter(kind=Kind.RESUMED).get()
    assert resumed.actor == "olga" and resumed.data["paused"]["failures"] == 2
    run = import_run_request(project=project, requested_by="t", trigger="admin")
    assert run.status == ImportRun.Status.QUEUED
    ImportRun.objects.filter(pk=run.pk).update(status="cancelled")
    end_run(project, "failed")
    project.refresh_from_db()
    assert project.paused_at is None
    end_run(project, "failed")
    project.refresh_from_db()
    assert project.paused_at is not None
    assert kinds(project) == [Kind.PAUSED, Kind.RESUMED, Kind.PAUSED]


def test_the_failure_notification_says_the_project_was_paused(
    make_project, end_run, email_channel
):
    from django.core import mail

    from imports.services.delivery import notifications_deliver_due

    project = make_project(auto_pause_after=1)
    channel = email_channel(project=project)
    end_run(project, "failed")
    notification = channel.notifications.get()
    assert notification.event == Notification.Event.FAILED
    assert notification.payload["project"]["paused"] is True
    notifications_deliver_due()
    assert "The project was paused" in mail.outbox[0].body
