"""The admin's edges: the 403 page, "View site", the lock's holder, and
timestamps with seconds and zone."""

import os
import re
import socket

import pytest
from django.urls import reverse
from django.utils import timezone

from imports.models import ImportRunEvent
from imports.services.claim import run_claim
from imports.services.selectors import run_for_execution

pytestmark = pytest.mark.django_db(transaction=True)

SECONDS_AND_ZONE = re.compile(r"\d{1,2}:\d{2}:\d{2} UTC")


def test_the_403_page_is_an_admin_page(view_only_client, make_project, settings):
    """A view-only user refused a page sees the admin's header, user tools
    and a translated explanation, not a bare English page."""
    project = make_project()
    url = reverse("admin:imports_project_force_unlock", args=[project.pk])
    response = view_only_client.get(url)
    assert response.status_code == 403
    html = response.content.decode()
    assert 'id="header"' in html
    assert 'id="user-tools"' in html
    assert 'id="language-switcher"' in html
    assert "You do not have permission to do this." in html
    assert "<title>Access denied | importhub</title>" in html
    settings.LANGUAGE_CODE = "ru"
    html = view_only_client.get(url).content.decode()
    assert "У вас нет прав на это действие." in html
    assert "Доступ запрещён" in html


def test_a_403_outside_the_admin_stays_plain(rf):
    from django.core.exceptions import PermissionDenied

    from imports.views import permission_denied

    response = permission_denied(rf.get("/api/whatever"), PermissionDenied())
    assert response.status_code == 403
    assert b'id="header"' not in response.content


def test_view_site_leads_to_the_admin(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert '<a href="/">' in html  # the admin's "View site"
    response = admin_client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")


def test_the_lock_holder_is_named_as_run_and_worker(
    admin_client, make_project, request_run
):
    """The force-unlock page names the run holding the lock, linked, and
    the host and process of the worker that started it, not a token."""
    run = request_run(make_project())
    assert run_claim(run=run_for_execution(run_id=run.pk)) is not None
    started = run.events.get(kind=ImportRunEvent.Kind.STARTED)
    assert started.data["worker"] == {"host": socket.gethostname(), "pid": os.getpid()}
    html = admin_client.get(
        reverse("admin:imports_project_force_unlock", args=[run.project_id])
    ).content.decode()
    holder = html[html.index('id="lock-holder"') :]
    holder = holder[: holder.index("</span>")]
    run_url = reverse("admin:imports_importrun_change", args=[run.pk])
    assert f'held by run <a href="{run_url}">#{run.pk}</a> (Running)' in holder
    assert f"worker {socket.gethostname()}, process {os.getpid()}" in holder
    assert "last heartbeat" in holder
    run.refresh_from_db()
    assert run.lock_token not in holder


def test_a_lock_held_by_no_run_shows_its_token(admin_client, make_project):
    from imports.locks import project_lock

    project = make_project()
    project_lock(project.pk, token="stray-owner").acquire()
    html = admin_client.get(
        reverse("admin:imports_project_force_unlock", args=[project.pk])
    ).content.decode()
    assert "held by no run of this project (lock token stray-owner)" in html


@pytest.mark.parametrize("language", ["en", "ru"])
def test_timestamps_show_seconds_and_the_zone(
    admin_client, settings, failed_run, language
):
    settings.LANGUAGE_CODE = language
    run = failed_run()
    page = admin_client.get(
        reverse("admin:imports_importrun_change", args=[run.pk])
    ).content.decode()
    created = timezone.localtime(run.created_at)
    stamp = f"{created:%H:%M:%S} UTC"
    assert stamp in page  # the created field
    listing = admin_client.get(
        reverse("admin:imports_importrun_changelist")
    ).content.decode()
    started = timezone.localtime(run.started_at)
    assert f"{started:%H:%M:%S} UTC" in listing
    events = page[page.index('id="run-events"') :]
    assert SECONDS_AND_ZONE.search(events)
