"""The dashboard's cards open lists that count what the cards count."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from imports.models import ImportRun

pytestmark = pytest.mark.django_db(transaction=True)

CARD = re.compile(
    r'<a class="card" href="(?P<href>[^"]+)" data-status="(?P<status>\w+)">\s*'
    r'<span class="number">(?P<number>\d+)</span>'
)


def age(run, *, hours: float) -> None:
    created = timezone.now() - datetime.timedelta(hours=hours)
    ImportRun.objects.filter(pk=run.pk).update(
        created_at=created, started_at=created, finished_at=created
    )


def cards(client) -> dict[str, tuple[int, str]]:
    html = client.get(reverse("admin:importhub_dashboard")).content.decode()
    return {
        m["status"]: (int(m["number"]), m["href"].replace("&amp;", "&"))
        for m in CARD.finditer(html)
    }


def test_each_card_counts_the_rows_of_the_list_it_opens(
    admin_client, make_project, failed_run, succeeded_run, request_run
):
    """With runs older than 24 hours present, every card's number is the
    number of runs its link lists."""
    good, bad = make_project(), make_project()
    for hours in (30, 50, 200):
        age(succeeded_run(good), hours=hours)
        age(failed_run(bad), hours=hours)
    recent = [succeeded_run(good), succeeded_run(good), failed_run(bad)]
    age(recent[0], hours=23)
    request_run(make_project())
    found = cards(admin_client)
    assert set(found) == set(ImportRun.Status.values)
    assert found["succeeded"][0] == 2
    assert found["failed"][0] == 1
    assert found["queued"][0] == 1
    for status, (number, href) in found.items():
        response = admin_client.get(href)
        assert response.status_code == 200, href
        changelist = response.context["cl"]
        assert changelist.result_count == number, (status, href)
        assert {run.status for run in changelist.result_list} <= {status}


@pytest.mark.parametrize(
    ("window", "expected"), [("1h", {"new"}), ("24h", {"new", "day"}), ("7d", None)]
)
def test_the_created_within_filter(
    admin_client, make_project, failed_run, window, expected
):
    """The list's rolling window counts back from now, not from midnight."""
    project = make_project()
    runs = {}
    for name, hours in (("new", 0.2), ("day", 20), ("week", 100), ("old", 400)):
        runs[name] = failed_run(project)
        age(runs[name], hours=hours)
    expected = expected or {"new", "day", "week"}
    response = admin_client.get(
        reverse("admin:imports_importrun_changelist"), {"created_within": window}
    )
    listed = {run.pk for run in response.context["cl"].result_list}
    assert listed == {runs[name].pk for name in expected}
    html = response.content.decode()
    assert "created within" in html
    assert "Last 24 hours" in html
