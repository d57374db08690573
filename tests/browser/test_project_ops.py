"""The projects' operations view and the run's log, in a real Chromium."""

import logging

import pytest

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.logging import run_log_context
from imports.models import ImportRun
from imports.run_log import run_log_flush
from imports.services.guard import import_run_request
from tests.admin.test_project_ops import add_runs
from tests.browser.admin_session import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_projects_list_and_header(
    browser,
    screenshot,
    live_server,
    operator,
    make_project,
    published,
):
    """The list shows each project's grid, last status and busy badge; a
    cell opens its run; Import now links the new run; the project page
    puts its operations header above the form."""
    idle, busy = make_project(name="Склад"), make_project(name="Заказы")
    runs = add_runs(idle, 35)
    active = import_run_request(project=busy, requested_by="t", trigger="command")
    page = browser(locale="ru-RU").new_page()
    log_in(page, live_server, operator.username)
    page.goto(f"{live_server.url}/admin/imports/project/")
    row = page.locator(f"#result_list tr:has(a[href$='/project/{idle.pk}/change/'])")
    cells = row.locator(".run-grid a.run-cell")
    assert cells.count() == 30
    newest = cells.nth(29)
    assert newest.get_attribute("title").startswith(f"#{runs[-1].pk} ")
    assert newest.bounding_box()["width"] > 0
    badge = page.locator("a.busy-badge")
    assert badge.count() == 1
    assert (
        badge.get_attribute("href") == f"/admin/imports/importrun/{active.pk}/change/"
    )
    screenshot(page, "projects-ops-list")
    newest.click()
    page.wait_for_url(f"**/importrun/{runs[-1].pk}/change/")

    # Import now from the list: a link to the new run; the busy one linked.
    page.goto(f"{live_server.url}/admin/imports/project/")
    page.check(f"input[name=_selected_action][value='{idle.pk}']")
    page.check(f"input[name=_selected_action][value='{busy.pk}']")
    page.select_option("select[name=action]", "import_now")
    page.click("button[name=index]")
    message = page.locator(".messagelist li").first
    message.wait_for()
    started = ImportRun.objects.active().get(project=idle)
    assert message.locator("a.started-run").get_attribute("href") == (
        f"/admin/imports/importrun/{started.pk}/change/"
    )
    assert message.locator(".busy-message").inner_text() == (
        PROJECT_BUSY_MESSAGE.format(project_id=busy.pk)
    )
    screenshot(page, "projects-import-now-links")

    page.goto(f"{live_server.url}/admin/imports/project/{idle.pk}/change/")
    header = page.locator("#project-ops")
    form = page.locator("#project_form")
    assert header.bounding_box()["y"] < form.bounding_box()["y"]
    assert header.bounding_box()["y"] < 768  # in the first screen
    assert header.locator("#project-import-now").is_visible()
    active_link = header.locator(f"a[href$='/importrun/{started.pk}/change/']").first
    assert active_link.is_visible()
    assert header.locator("a.run-cell").count() == 30
    screenshot(page, "project-ops-header")


def test_run_log_on_the_run_page(
    browser,
    screenshot,
    live_server,
    operator,
    make_project,
):
    run = import_run_request(
        project=make_project(), requested_by="t", trigger="command"
    )
    logger = logging.getLogger("tests.browser")
    with run_log_context(run):
        logger.info("reading the source")
        try:
            raise ValueError("the source broke")
        except ValueError:
            logger.exception("run failed unexpectedly")
    run_log_flush(run.pk)
    page = browser(locale="en-US").new_page()
    log_in(page, live_server, operator.username)
    page.goto(f"{live_server.url}/admin/imports/importrun/{run.pk}/change/")
    log = page.locator("#run-log")
    log.locator("summary").first.click()
    assert log.locator("td.log-message").first.inner_text() == "reading the source"
    trace = log.locator("details.log-traceback")
    assert not trace.locator("pre").is_visible()
    trace.locator("summary").click()
    assert "ValueError: the source broke" in trace.locator("pre").inner_text()
    screenshot(page, "run-log")
