"""Projects as an operations view: the list's columns, the grid, the header."""

import datetime
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from imports.models import ImportRun
from imports.services.project_ops import (
    GRID_RUNS,
    projects_last_runs,
    schedule_next_run,
)

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = reverse("admin:imports_project_changelist")
STATUSES = ["succeeded", "failed", "cancelled"]


def add_runs(project, count: int, *, start=None) -> list[ImportRun]:
    """``count`` finished runs of a project, a minute apart, oldest first."""
    start = start or timezone.now() - datetime.timedelta(days=1)
    runs = [
        ImportRun(
            project=project,
            trigger=ImportRun.Trigger.COMMAND,
            status=STATUSES[i % len(STATUSES)],
            created_at=start + datetime.timedelta(minutes=i),
            started_at=start + datetime.timedelta(minutes=i),
            finished_at=start + datetime.timedelta(minutes=i, seconds=30),
        )
        for i in range(count)
    ]
    return ImportRun.objects.bulk_create(runs)


def grid_of(html: str, project) -> list[int]:
    """The run ids of a project's row's grid cells, left to right."""
    row = re.search(
        rf"<tr[^>]*>(?:(?!</tr>).)*?/admin/imports/project/{project.pk}/change/"
        r"(?:(?!</tr>).)*</tr>",
        html,
        re.S,
    ).group(0)
    return [
        int(pk)
        for pk in re.findall(r'class="run-cell[^"]*"[^>]*data-run-id="(\d+)"', row)
    ]


class TestLastRunsQuery:
    def test_the_last_runs_of_each_project_newest_first(self, make_project):
        """Each project gets its own newest runs, capped, from one query."""
        a, b, c = make_project(), make_project(), make_project()
        runs_a = add_runs(a, GRID_RUNS + 5)
        runs_b = add_runs(b, 3)
        with CaptureQueriesContext(connection) as queries:
            found = projects_last_runs(project_ids=[a.pk, b.pk, c.pk])
        assert len(queries) == 1
        assert "ROW_NUMBER()" in queries[0]["sql"]
        assert [r.pk for r in found[a.pk]] == [r.pk for r in runs_a[::-1][:GRID_RUNS]]
        assert [r.pk for r in found[b.pk]] == [r.pk for r in runs_b[::-1]]
        assert found[c.pk] == []


class TestChangelist:
    def test_no_query_per_project(self, admin_client, make_project):
        """The page's queries do not grow with its projects or their runs."""
        few = [make_project() for _ in range(2)]
        for project in few:
            add_runs(project, 5)
        with CaptureQueriesContext(connection) as small:
            admin_client.get(CHANGELIST)
        for _ in range(10):
            add_runs(make_project(), GRID_RUNS + 3)
        with CaptureQueriesContext(connection) as large:
            response = admin_client.get(CHANGELIST)
        assert response.status_code == 200
        assert len(large) == len(small)

    def test_query_ceiling(
        self, admin_client, make_project, django_assert_max_num_queries
    ):
        """Twelve projects with full grids in a bounded number of queries."""
        for _ in range(12):
            add_runs(make_project(), GRID_RUNS + 1)
        with django_assert_max_num_queries(8):
            response = admin_client.get(CHANGELIST)
        assert response.content.decode().count('class="run-cell') == 12 * GRID_RUNS

    def test_grid_cells_link_their_runs_oldest_first(self, admin_client, make_project):
        """The last 30 runs as cells, oldest left, each linked and titled."""
        project = make_project()
        runs = add_runs(project, GRID_RUNS + 4)
        html = admin_client.get(CHANGELIST).content.decode()
        shown = runs[-GRID_RUNS:]
        assert grid_of(html, project) == [r.pk for r in shown]
        newest = shown[-1]
        local = timezone.localtime(newest.started_at).strftime("%Y-%m-%d %H:%M:%S %Z")
        cell = (
            f'<a class="run-cell run-status-{newest.status}" '
            f'href="/admin/imports/importrun/{newest.pk}/change/" '
            f'title="#{newest.pk} {newest.get_status_display()} · {local}" '
            f'data-run-id="{newest.pk}"></a>'
        )
        assert cell in html
        assert f"/admin/imports/importrun/{runs[0].pk}/change/" not in html

    def test_last_status_busy_badge_and_next_schedule(
        self, admin_client, make_project, request_run
    ):
        """The last run's badge, "importing" linked to the active run, and
        when the schedule fires next."""
        idle, busy = make_project(), make_project()
        add_runs(idle, 2)  # the last one is "failed"
        active = request_run(busy)
        last = timezone.now() - datetime.timedelta(minutes=5)
        PeriodicTask.objects.create(
            name=f"import project {idle.pk}",
            task="imports.project_import_scheduled",
            interval=IntervalSchedule.objects.create(every=15, period="minutes"),
            last_run_at=last,
        )
        html = admin_client.get(CHANGELIST).content.decode()
        assert '<span class="run-status run-status-failed">Failed</span>' in html
        assert (
            f'<a class="busy-badge" href="/admin/imports/importrun/{active.pk}/change/"'
            in html
        )
        assert html.count('class="busy-badge"') == 1
        expected = timezone.localtime(last + datetime.timedelta(minutes=15))
        assert expected.strftime("%Y-%m-%d %H:%M:%S %Z") in html


class TestNextRun:
    def test_interval_counts_from_the_last_run(self):
        every = IntervalSchedule.objects.create(every=1, period="hours")
        last = timezone.now() - datetime.timedelta(minutes=20)
        task = PeriodicTask(name="t", task="x", interval=every, last_run_at=last)
        found = schedule_next_run(task, now=timezone.now())
        expected = last + datetime.timedelta(hours=1)
        assert abs(found - expected) < datetime.timedelta(seconds=2)

    def test_overdue_is_now_and_disabled_is_none(self):
        every = IntervalSchedule.objects.create(every=1, period="minutes")
        now = timezone.now()
        task = PeriodicTask(
            name="t",
            task="x",
            interval=every,
            last_run_at=now - datetime.timedelta(hours=1),
        )
        assert abs(schedule_next_run(task, now=now) - now) < datetime.timedelta(
            seconds=2
        )
        task.enabled = False
        assert schedule_next_run(task, now=now) is None
        assert schedule_next_run(None) is None


class TestHeader:
    def test_the_operations_header_comes_before_the_form(
        self, admin_client, make_project, request_run
    ):
        """Lock, active run, last runs grid, schedule and Import now sit above
        the edit form."""
        project = make_project()
        runs = add_runs(project, 3)
        active = request_run(project)
        html = admin_client.get(
            reverse("admin:imports_project_change", args=[project.pk])
        ).content.decode()
        header = html.index('id="project-ops"')
        assert header < html.index('id="project_form"')
        section = html[header : html.index("</section>", header)]
        assert (
            f'Importing: <a href="/admin/imports/importrun/{active.pk}/change/"'
            in section
        )
        assert 'id="project-import-now"' in section
        cells = re.findall(r'data-run-id="(\d+)"', section)
        assert [int(pk) for pk in cells] == [r.pk for r in runs] + [active.pk]
        assert "No schedule." in section
