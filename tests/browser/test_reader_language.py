"""Every word in the reader's language, in a real browser.

Runs are written by a Russian-speaking operator (their events are stored
while Russian is active), then read in each language. The visible text of
the run page, the run list and the dashboard is scanned:

- in English, no Cyrillic letter, except in the busy message (a contract,
  the same in every language) and in user data (project, connector and
  user names, file paths), which are removed from the text first;
- in Russian, no English word of three letters or more, except user data,
  codes (error classes, protocol and format names) and product names.
"""

import re

import pytest
from django.urls import reverse
from django.utils import translation

from imports.exceptions import PROJECT_BUSY_MESSAGE, ProjectBusy
from imports.models import ImportRun
from imports.services.execution import import_run_execute
from imports.services.guard import import_run_request
from imports.services.schedules import _skip_event
from tests.browser.admin_session import PASSWORD, log_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

CYRILLIC = re.compile(r"[А-Яа-яЁё]+")
LATIN_WORD = re.compile(r"[A-Za-z]{3,}")
# Codes and names no translation changes: protocols, formats, services,
# the product, the language switcher's own name of English.
CODES = {
    "importhub",
    "Celery",
    "CSV",
    "HTTP",
    "API",
    "JSON",
    "Redis",
    "SQL",
    "URL",
    "UTC",
    "English",
    "crontab",  # django-celery-beat's schedules, named after the format
}
CODES_FOLDED = {code.casefold() for code in CODES}


@pytest.fixture
def written_in_russian(make_project, write_csv, django_user_model):
    """A failed run, a succeeded one and a busy rejection, all written while
    Russian was active; returns the user data the pages show."""
    operator = django_user_model.objects.create_superuser(
        username="olga", email="olga@example.com", password=PASSWORD
    )
    failing = make_project(name="Склад Москва")
    good = make_project(name="Касса Тверь")
    path = write_csv([(1, "a", 1), (2, "b", 2)])
    good.source = {"path": str(path)}
    good.save(update_fields=["source"])
    with translation.override("ru"):
        failed = import_run_request(
            project=failing, requested_by="olga", trigger=ImportRun.Trigger.ADMIN
        )
        import_run_execute(run_id=failed.pk)
        succeeded = import_run_request(
            project=good, requested_by="olga", trigger=ImportRun.Trigger.ADMIN
        )
        import_run_execute(run_id=succeeded.pk)
        _skip_event(good, ProjectBusy(good.pk)).save()
    failed.refresh_from_db()
    assert failed.status == ImportRun.Status.FAILED
    user_data = [
        failing.name,
        good.name,
        failing.connector.name,
        good.connector.name,
        operator.username,
        str(failing.source.get("path", "")),
        str(path),
        failed.error_class,
    ]
    return {"failed": failed, "operator": operator, "user_data": user_data}


def visible_text(page, live_server, path: str) -> str:
    """The page's text as shown (CSS capitals included), without the
    language switcher (language codes) and the run's log."""
    page.goto(f"{live_server.url}{path}")
    page.wait_for_selector("#content")
    text = page.inner_text("body").replace(page.inner_text("#language-switcher"), " ")
    # The run's log is the worker's log, kept as written (like a traceback).
    if page.locator("#run-log").count():
        text = text.replace(page.inner_text("#run-log"), " ")
    return text


def without(text: str, parts) -> str:
    """``text`` without ``parts``, in any case (the header shows a user's
    name in capitals)."""
    for part in sorted((p for p in parts if p), key=len, reverse=True):
        text = re.sub(re.escape(part), " ", text, flags=re.IGNORECASE)
    return text


def pages(failed: ImportRun) -> dict[str, str]:
    return {
        "run": reverse("admin:imports_importrun_change", args=[failed.pk]),
        "runs": reverse("admin:imports_importrun_changelist"),
        "dashboard": reverse("admin:importhub_dashboard"),
    }


def test_the_english_ui_shows_no_russian(browser, live_server, written_in_russian):
    failed = written_in_russian["failed"]
    page = log_in(browser(locale="en-US").new_page(), live_server, "olga")
    allowed = [
        *written_in_russian["user_data"],
        PROJECT_BUSY_MESSAGE.format(project_id=failed.project_id),
        "Русский",  # the switcher names each language in itself
    ]
    found = {}
    for name, path in pages(failed).items():
        text = visible_text(page, live_server, path)
        assert "Failed" in text or name == "dashboard"
        words = CYRILLIC.findall(without(text, allowed))
        if words:
            found[name] = words
    assert found == {}
    run_page = visible_text(page, live_server, pages(failed)["run"])
    assert "CSV file not found" in run_page
    assert "Import requested (Admin)." in run_page
    assert "by worker" in run_page


def test_the_russian_ui_shows_no_english(browser, live_server, written_in_russian):
    failed = written_in_russian["failed"]
    page = log_in(browser(locale="ru-RU").new_page(), live_server, "olga")
    found = {}
    russian_pages = {
        **pages(failed),
        "celery results": reverse("admin:django_celery_results_taskresult_changelist"),
    }
    for name, path in russian_pages.items():
        text = without(
            visible_text(page, live_server, path), written_in_russian["user_data"]
        )
        words = {
            w for w in LATIN_WORD.findall(text) if w.casefold() not in CODES_FOLDED
        }
        if words:
            found[name] = sorted(words)
    assert found == {}
    run_page = visible_text(page, live_server, pages(failed)["run"])
    assert "CSV-файл не найден" in run_page
    assert "Импорт запрошен (Админка)." in run_page
    assert "воркер" in run_page
