"""The dashboard: counts, runs per day, runs in progress, slots, slow projects."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from imports.admin.dashboard import runs_chart
from imports.locks import connector_slots
from imports.models import ImportRun
from imports.services import dashboard

pytestmark = pytest.mark.django_db(transaction=True)

URL = "admin:importhub_dashboard"


def backdate(run, *, days: float, minutes: float = 1):
    """Move a finished run ``days`` back, lasting ``minutes``."""
    finished = timezone.now() - datetime.timedelta(days=days)
    ImportRun.objects.filter(pk=run.pk).update(
        created_at=finished - datetime.timedelta(minutes=minutes),
        started_at=finished - datetime.timedelta(minutes=minutes),
        finished_at=finished,
    )


def test_reachable_from_the_admin_index(admin_client, view_only_client):
    for client in (admin_client, view_only_client):
        html = client.get(reverse("admin:index")).content.decode()
        assert f'href="{reverse(URL)}"' in html
        assert 'id="importhub-dashboard-link"' in html


def test_staff_without_run_access_cannot_open_it(staff_client):
    client = staff_client("view_connector")
    assert client.get(reverse(URL)).status_code == 403
    html = client.get(reverse("admin:index")).content.decode()
    assert "importhub-dashboard-link" not in html


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse(URL))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_the_sections(
    admin_client, make_connector, make_project, request_run, failed_run, succeeded_run
):
    """Every section shows what the runs and slots say."""
    connector = make_connector(name="warehouse", max_concurrent_imports=4)
    connector_slots(connector).acquire("a-lease")
    slow = make_project(name="slow project", connector=connector)
    fast = make_project(name="fast project", connector=connector)
    backdate(succeeded_run(slow), days=2, minutes=30)
    backdate(succeeded_run(fast), days=2, minutes=2)
    old_failure = failed_run()
    backdate(old_failure, days=3)
    failed_run()
    active = request_run(make_project(name="busy project", connector=connector))

    html = admin_client.get(reverse(URL)).content.decode()
    # Last 24 hours: the backdated runs are out.
    assert (
        '<span class="number">1</span>\n        '
        '<span class="run-status run-status-failed">' in html
    )
    assert (
        '<span class="number">1</span>\n        '
        '<span class="run-status run-status-queued">' in html
    )
    assert (
        '<span class="number">0</span>\n        '
        '<span class="run-status run-status-succeeded">' in html
    )
    # Runs per day.
    two_days_ago = timezone.localdate() - datetime.timedelta(days=2)
    assert (
        f'data-day="{two_days_ago:%Y-%m-%d}" data-succeeded="2" data-failed="0"' in html
    )
    assert f'data-day="{timezone.localdate():%Y-%m-%d}" data-succeeded="0" ' in html
    assert html.count('<g class="day"') == 30
    # In progress.
    assert f'<a href="/admin/imports/importrun/{active.pk}/change/">' in html
    # Connectors with slot use: the lease taken by hand and the queued run's.
    assert "2 / 4" in html
    # Slowest first.
    assert html.index("slow project") < html.index("fast project")
    assert "30:00" in html
    assert 'data-importhub-refresh="6000"' in html


def test_runs_per_day_service(failed_run, succeeded_run):
    """One entry per day, oldest first, empty days included."""
    backdate(failed_run(), days=5)
    succeeded_run()
    days = dashboard.runs_per_day(days=30)
    assert len(days) == 30
    assert days[-1].day == timezone.localdate()
    assert (days[-1].succeeded, days[-1].failed) == (1, 0)
    assert (days[-6].succeeded, days[-6].failed) == (0, 1)
    assert sum(d.succeeded + d.failed for d in days) == 2


def test_status_counts_list_every_status(failed_run):
    failed_run()
    counts = dashboard.run_status_counts(
        since=timezone.now() - datetime.timedelta(hours=24)
    )
    assert set(counts) == set(ImportRun.Status.values)
    assert counts["failed"] == 1 and counts["succeeded"] == 0


def test_chart_geometry():
    """Bars stack failed on succeeded, scaled to the busiest day."""
    today = datetime.date(2026, 1, 31)
    days = [
        dashboard.DayCount(
            day=today - datetime.timedelta(days=2), succeeded=3, failed=1
        ),
        dashboard.DayCount(
            day=today - datetime.timedelta(days=1), succeeded=0, failed=0
        ),
        dashboard.DayCount(day=today, succeeded=1, failed=1),
    ]
    chart = runs_chart(days)
    first, empty, last = chart["bars"]
    assert chart["top"] == 4 and chart["height"] == 120
    assert (first["ok_y"], first["ok_h"], first["bad_y"], first["bad_h"]) == (
        30,
        90,
        0,
        30,
    )
    assert (empty["ok_h"], empty["bad_h"]) == (0, 0)
    assert (last["ok_h"], last["bad_h"]) == (30, 30)
    assert [b["x"] for b in chart["bars"]] == [0, 22, 44]
    assert [b["label"] for b in chart["bars"]] == [True, False, True]
    assert (chart["total_succeeded"], chart["total_failed"]) == (4, 2)
    assert chart["width"] == 3 * 22 + 16


def test_chart_of_days_without_runs():
    days = [dashboard.DayCount(day=datetime.date(2026, 1, 1), succeeded=0, failed=0)]
    assert runs_chart(days)["top"] == 1
