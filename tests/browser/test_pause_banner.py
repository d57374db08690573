"""A project paused by its failures, seen and resumed in a real browser.

Two imports fail for real (the CSV file is missing), which pauses a project
set to pause after two failures; the operator opens its page in the Russian
admin, reads the banner with the reason, is refused "Import now", presses
Resume and starts an import. Screenshots go to artifacts/screenshots/.
"""

import pytest

from imports.models import ImportRun, ProjectEvent
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from tests.browser.admin_session import log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def fail_once(project) -> ImportRun:
    run = import_run_request(project=project, requested_by="t", trigger="command")
    import_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED
    return run


def test_pause_banner_and_resume(
    browser, live_server, screenshot, operator, make_project
):
    project = make_project(name="Клиенты", auto_pause_after=2)
    fail_once(project)
    last = fail_once(project)
    project.refresh_from_db()
    assert project.paused_at is not None

    page = browser(locale="ru-RU").new_page()
    page.set_viewport_size({"width": 1366, "height": 768})
    log_in(page, live_server, operator.username)

    page.goto(f"{live_server.url}/admin/imports/project/{project.pk}/change/")
    banner = page.locator("#project-pause-banner")
    banner.wait_for()
    text = banner.inner_text()
    assert "Проект приостановлен." in text
    assert "после 2 неудачных запусков подряд" in text
    assert f"#{last.pk}" in text
    assert "test.csv" in text  # the last run's error names the missing file
    # The banner and its button are in the first screen.
    box = page.locator("#project-resume").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 768
    screenshot(page, "paused")

    page.click("#project-import-now")
    error = page.locator(".messagelist .error")
    error.wait_for()
    assert f"Проект {project.pk} приостановлен" in error.inner_text()
    assert project.runs.count() == 2

    page.click("#project-resume")
    success = page.locator(".messagelist .success")
    success.wait_for()
    assert "Проект «Клиенты» возобновлён" in success.inner_text()
    assert page.locator("#project-pause-banner").count() == 0
    screenshot(page, "resumed")
    project.refresh_from_db()
    assert project.paused_at is None
    kinds = list(project.events.values_list("kind", "actor"))
    assert (ProjectEvent.Kind.RESUMED, "olga") in kinds
    assert (ProjectEvent.Kind.PAUSED, "auto-pause") in kinds

    page.click("#project-import-now")
    page.locator(".messagelist .success").wait_for()
    assert project.runs.count() == 3
