"""The operators' admin, second pass, in a real Chromium on a laptop screen.

Why a run failed is in the first screen at 1366×768; the dashboard's
cards count what their lists show; Cancel asks and keeps the reason; the
403 page is an admin page; timestamps show seconds and the zone.
"""

import datetime
import re

import pytest
from django.utils import timezone, translation

from imports.models import ImportRun, ImportRunEvent
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.browser.admin_session import log_in
from tests.conftest import MISSING_CSV

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

LAPTOP = {"width": 1366, "height": 768}


def open_as(browser, live_server, username, *, locale="ru-RU"):
    page = browser(locale=locale).new_page()
    page.set_viewport_size(LAPTOP)
    return log_in(page, live_server, username)


def executed(project) -> ImportRun:
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def age(run, *, hours: float) -> None:
    at = timezone.now() - datetime.timedelta(hours=hours)
    ImportRun.objects.filter(pk=run.pk).update(
        created_at=at, started_at=at, finished_at=at
    )


def in_first_screen(page, selector: str) -> dict:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    assert box["y"] >= 0 and box["y"] + box["height"] <= LAPTOP["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= LAPTOP["width"], box
    return box


def test_the_failure_reason_is_in_the_first_screen(
    browser, screenshot, live_server, operator, make_project
):
    project = make_project(name="Заказы: ежедневная выгрузка из учётной системы")
    run = executed(project)
    assert run.status == ImportRun.Status.FAILED
    page = open_as(browser, live_server, operator.username)
    page.goto(f"{live_server.url}/admin/imports/importrun/{run.pk}/change/")
    page.wait_for_selector("#run-failure")
    screenshot(page, "run-page-failure")
    in_first_screen(page, "#run-failure-message")
    in_first_screen(page, "#failure-retry")
    box = page.inner_text("#run-failure")
    assert run.error_class in box
    assert MISSING_CSV in box
    assert "Где остановился: при чтении источника" in box
    # Above the counters.
    failure_y = page.locator("#run-failure").bounding_box()["y"]
    counts_y = page.locator("table.run-counts").bounding_box()["y"]
    assert failure_y < counts_y

    # The failed view shows the error column whole within the screen's
    # width, one line, the full message as the tooltip.
    long = make_project(source={"path": MISSING_CSV.replace("test", "x" * 150)})
    other = executed(long)
    page.goto(f"{live_server.url}/admin/imports/importrun/?view=failed")
    page.wait_for_selector("#result_list")
    screenshot(page, "failed-view-1366")
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]
    # Nothing of the table is hidden in its scrolling box either.
    assert page.evaluate(
        "(() => { const r = document.querySelector('#changelist .results');"
        " return r.scrollWidth <= r.clientWidth; })()"
    ), "the runs table overflows its box"
    cell = f"#result_list tr:has(a[href*='/importrun/{other.pk}/change/']) .run-error"
    in_first_screen(page, cell)
    with translation.override("ru"):  # the page's language
        expected = other.error_text
    assert page.get_attribute(cell, "title") == expected
    height = page.locator(cell).bounding_box()["height"]
    assert height < 45, "the error takes more than two lines"
    # The row's last column (started) is within the screen too.
    in_first_screen(
        page,
        f"#result_list tr:has(a[href*='/importrun/{other.pk}/change/']) "
        "td.field-started_at",
    )


def test_the_dashboards_counts_equal_their_lists(
    browser, screenshot, live_server, operator, make_project, write_csv
):
    """Each card of the last 24 hours opens a list of as many rows, with
    older runs present."""
    good = make_project(source={"path": str(write_csv([(1, "a", 1)]))})
    bad = make_project()
    for hours in (25, 48, 100):
        age(executed(good), hours=hours)
        age(executed(bad), hours=hours)
    executed(good), executed(good), executed(bad)
    import_run_request(
        project=make_project(), requested_by="t", trigger="command"
    )  # one queued
    page = open_as(browser, live_server, operator.username)
    page.goto(f"{live_server.url}/admin/imports/importrun/dashboard/")
    page.wait_for_selector("#dashboard-status-counts")
    screenshot(page, "dashboard")
    cards = page.locator("#dashboard-status-counts a.card")
    expected = {
        cards.nth(i).get_attribute("data-status"): int(
            cards.nth(i).locator(".number").inner_text()
        )
        for i in range(cards.count())
    }
    assert expected["succeeded"] == 2
    assert expected["failed"] == 1
    assert expected["queued"] == 1
    for status, number in expected.items():
        page.goto(f"{live_server.url}/admin/imports/importrun/dashboard/")
        page.click(f"#dashboard-status-counts a.card[data-status={status}]")
        page.wait_for_selector("#changelist")
        rows = page.locator("#result_list tbody tr").count()
        assert rows == number, (status, page.url)
    screenshot(page, "dashboard-list")


def test_cancel_asks_and_records_the_reason(
    browser, screenshot, live_server, operator, make_project
):
    run = import_run_request(
        project=make_project(), requested_by="t", trigger="command"
    )
    page = open_as(browser, live_server, operator.username)
    page.goto(f"{live_server.url}/admin/imports/importrun/{run.pk}/change/")
    page.click("#run-cancel")
    page.wait_for_selector("#cancel-form")
    screenshot(page, "cancel-confirmation")
    run.refresh_from_db()
    assert run.is_active, "opening the confirmation cancelled the run"
    assert f"Отменить запуск #{run.pk}?" in page.inner_text("#content")
    page.fill("textarea[name=reason]", "загружен не тот файл")
    page.click("#cancel-confirm")
    page.wait_for_url(re.compile(rf"/importrun/{run.pk}/change/$"))
    page.wait_for_selector(".messagelist .success")
    screenshot(page, "cancelled")
    run.refresh_from_db()
    assert run.status == ImportRun.Status.CANCELLED
    event = run.events.get(kind=ImportRunEvent.Kind.CANCELLED)
    assert (event.actor, event.message) == ("olga", "загружен не тот файл")
    assert "загружен не тот файл" in page.inner_text("#run-events")


def test_the_403_page_has_the_admins_header(
    browser, screenshot, live_server, viewer, make_project
):
    project = make_project()
    page = open_as(browser, live_server, viewer.username)
    response = page.goto(
        f"{live_server.url}/admin/imports/project/{project.pk}/force-unlock/"
    )
    assert response.status == 403
    screenshot(page, "forbidden")
    assert page.locator("#header #site-name").inner_text().strip() == "importhub"
    assert page.locator("#user-tools").is_visible()
    assert "У вас нет прав на это действие." in page.inner_text("#content")
    assert "Forbidden" not in page.content()
    # "View site" goes somewhere that exists: the admin itself.
    page.click("#user-tools a[href='/']")
    page.wait_for_selector("#content-main")
    assert page.url == f"{live_server.url}/admin/"


def test_timestamps_show_seconds_and_the_zone(
    browser, live_server, operator, make_project
):
    run = executed(make_project())
    page = open_as(browser, live_server, operator.username)
    page.goto(f"{live_server.url}/admin/imports/importrun/{run.pk}/change/")
    created = page.inner_text(".field-created_at .readonly")
    assert re.search(r"\d{2}:\d{2}:\d{2} UTC$", created), created
    assert f"{timezone.localtime(run.created_at):%H:%M:%S}" in created
    events = page.locator("#run-events .event-at").all_inner_texts()
    assert events and all(re.search(r":\d{2}:\d{2} UTC$", t) for t in events)
    page.goto(f"{live_server.url}/admin/imports/importrun/")
    started = page.inner_text(
        f"#result_list tr:has(a[href*='/importrun/{run.pk}/change/']) "
        "td.field-started_at"
    )
    assert re.search(r"\d{2}:\d{2}:\d{2} UTC$", started), started
