"""An operator's day in a real browser: a live server, a real worker, Chromium.

Log in; start an import and watch it in the Active view; press "Import now"
again while it runs and read the Russian message; make an import fail, open
it, press Retry and watch the new run succeed; a view-only user has no
Retry button. Screenshots go to artifacts/screenshots/.
"""

import re
import time

import pytest

from imports.exceptions import PROJECT_BUSY_MESSAGE
from imports.models import ImportRun, Record
from tests.browser.admin_session import log_in
from tests.conftest import wait_for
from tests.connectors.servers import LocalHttpServer, Reply

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.slow,
]

SLOW_ROWS, SLOW_CHUNKS, SLOW_SECONDS = 12_000, 24, 8.0


@pytest.fixture
def slow_csv_url():
    """A CSV served over HTTP a chunk at a time, over several seconds, so
    that the import stays active long enough to be watched."""
    server = LocalHttpServer().start()
    per_chunk = SLOW_ROWS // SLOW_CHUNKS

    def body():
        yield b"id,name,amount\n"
        for chunk in range(SLOW_CHUNKS):
            start = chunk * per_chunk
            rows = "".join(
                f"{i},name {i},{i * 10}\n" for i in range(start, start + per_chunk)
            )
            yield rows.encode()
            if server.stopping.wait(SLOW_SECONDS / SLOW_CHUNKS):
                return

    server.route("/slow.csv", lambda request: Reply(body=body()))
    yield server.url("/slow.csv")
    server.stop()


def message_texts(page, level: str) -> list[str]:
    return [t.strip() for t in page.locator(f".messagelist .{level}").all_inner_texts()]


def test_operator_flow(
    browser,
    screenshot,
    live_server,
    celery_worker,
    operator,
    viewer,
    make_project,
    write_csv,
    tmp_path,
    slow_csv_url,
):
    slow = make_project(name="Склад: остатки", source={"url": slow_csv_url})
    missing = tmp_path / "late.csv"
    failing = make_project(name="Заказы", source={"path": str(missing)})

    context = browser(locale="ru-RU")
    page = context.new_page()
    log_in(page, live_server, operator.username)
    screenshot(page, "index")
    assert page.locator("#importhub-dashboard-link").is_visible()

    # Start an import from the project page; press the button again while
    # the import runs: the guard answers with the Russian message.
    page.goto(f"{live_server.url}/admin/imports/project/{slow.pk}/change/")
    page.click("#project-import-now")
    page.wait_for_selector(".messagelist .success")
    run = ImportRun.objects.get(project=slow)
    page.click("#project-import-now")
    page.wait_for_selector(".messagelist .error")
    # The contract's text exactly, and beside it a link to the active run.
    busy = page.locator(".messagelist .error .busy-message")
    assert busy.inner_text() == PROJECT_BUSY_MESSAGE.format(project_id=slow.pk)
    link = page.locator(".messagelist .error a.busy-run")
    assert link.get_attribute("href") == f"/admin/imports/importrun/{run.pk}/change/"
    screenshot(page, "import-now-twice-busy")
    assert ImportRun.objects.filter(project=slow).count() == 1

    # The Active view lists the run with its progress and refreshes itself
    # in place: the rows read grow while the page is never reloaded.
    page.goto(f"{live_server.url}/admin/imports/importrun/?view=active")
    row = page.locator(f"#result_list tr:has(a[href*='/importrun/{run.pk}/change/'])")
    row.wait_for()
    assert row.locator("progress.run-progress").count() == 1
    page.evaluate("window.__notReloaded = true")

    def rows_read_on_page() -> int:
        cell = page.locator(
            f"#result_list tr:has(a[href*='/importrun/{run.pk}/change/']) .run-rows"
        )
        if cell.count() == 0:
            return 0
        return int(cell.first.get_attribute("data-rows-read"))

    first = wait_for(rows_read_on_page, timeout=20, message="no progress shown")
    grown = wait_for(
        lambda: (
            rows_read_on_page() > first
            or not ImportRun.objects.get(pk=run.pk).is_active
        ),
        timeout=20,
        message="the active view did not refresh",
    )
    assert grown
    screenshot(page, "active-with-progress")
    assert page.evaluate("window.__notReloaded") is True

    run = wait_for(
        lambda: ImportRun.objects.finished().filter(pk=run.pk).first(), timeout=60
    )
    assert run.status == ImportRun.Status.SUCCEEDED, run.error_message
    assert Record.objects.filter(project=slow).count() == SLOW_ROWS

    # Make one fail: its file does not exist yet.
    page.goto(f"{live_server.url}/admin/imports/project/{failing.pk}/change/")
    page.click("#project-import-now")
    page.wait_for_selector(".messagelist .success")
    failed = wait_for(
        lambda: ImportRun.objects.finished().filter(project=failing).first(),
        timeout=60,
    )
    assert failed.status == ImportRun.Status.FAILED
    page.goto(f"{live_server.url}/admin/imports/importrun/?view=failed")
    page.wait_for_selector(f"#result_list a[href*='/importrun/{failed.pk}/change/']")
    screenshot(page, "failed-view")
    page.click(f"#result_list a[href*='/importrun/{failed.pk}/change/']")
    page.wait_for_selector(".run-status-failed")
    assert "late.csv" in page.inner_text("#content-main")
    screenshot(page, "failed-run")

    # Fix the cause, press Retry: the new run is linked and succeeds; its
    # page follows it without a reload.
    write_csv([(i, f"order {i}", i) for i in range(1, 101)], name="late.csv")
    page.click("#run-retry")
    page.wait_for_url(re.compile(r"/admin/imports/importrun/\d+/change/$"))
    retry = ImportRun.objects.get(retry_of=failed)
    assert page.url.endswith(f"/importrun/{retry.pk}/change/")
    assert page.locator(f"a.retry-of[href*='/importrun/{failed.pk}/change/']").count()
    page.wait_for_selector(
        ".field-status_display .run-status-succeeded", timeout=60_000
    )
    screenshot(page, "retry-succeeded")
    retry.refresh_from_db()
    assert retry.status == ImportRun.Status.SUCCEEDED
    assert Record.objects.filter(project=failing).count() == 100

    page.goto(f"{live_server.url}/admin/imports/importrun/dashboard/")
    page.wait_for_selector("#dashboard-chart svg")
    screenshot(page, "dashboard")

    # A view-only user sees the failed run but has no Retry button.
    viewer_context = browser(locale="en-US")
    viewer_page = viewer_context.new_page()
    log_in(viewer_page, live_server, viewer.username)
    viewer_page.goto(f"{live_server.url}/admin/imports/importrun/{failed.pk}/change/")
    viewer_page.wait_for_selector(".run-status-failed")
    assert viewer_page.locator("#run-retry").count() == 0
    assert viewer_page.locator("#run-cancel").count() == 0
    screenshot(viewer_page, "view-only-no-retry")


def test_language_switch(browser, screenshot, live_server, operator):
    """The header switches the admin between Russian and English."""
    context = browser(locale="ru-RU")
    page = context.new_page()
    log_in(page, live_server, operator.username)
    page.goto(f"{live_server.url}/admin/imports/importrun/")
    page.wait_for_selector("#language-switcher")
    russian = page.inner_text("#content h1")
    page.click("#language-switcher button[value=en]")
    page.wait_for_load_state()
    time.sleep(0.2)
    assert page.inner_text("#content h1") == "Select import run to view"
    screenshot(page, "english")
    page.click("#language-switcher button[value=ru]")
    page.wait_for_load_state()
    assert page.inner_text("#content h1") == russian
