"""Texts the product writes are read in the reader's language, whoever
wrote them: stored as message ids with parameters, rendered at view time."""

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import translation
from rest_framework.authtoken.models import Token

from imports.exceptions import PROJECT_BUSY_MESSAGE, ConnectorBusy, ProjectBusy
from imports.models import ImportRun, ImportRunEvent, ProjectEvent
from imports.services.schedules import _skip_event

pytestmark = pytest.mark.django_db(transaction=True)


def in_language(language: str, read):
    with translation.override(language):
        return read()


def test_one_stored_event_reads_in_both_languages(make_project, request_run):
    """The request event written by a Russian operator reads English in the
    English UI, and the other way round."""
    project = make_project()
    with translation.override("ru"):
        run = request_run(project, trigger=ImportRun.Trigger.ADMIN)
    event = ImportRunEvent.objects.get(run=run, kind=ImportRunEvent.Kind.REQUESTED)
    assert event.message_id == "Import requested (%(trigger)s)."
    assert event.message == "Импорт запрошен (Админка)."  # as written
    assert in_language("en", lambda: event.text) == "Import requested (Admin)."
    assert in_language("ru", lambda: event.text) == "Импорт запрошен (Админка)."


def _without_run_log(html: str) -> str:
    start = html.index('<details class="module" id="run-log"')
    return html[:start] + html[html.index("</details>", start) :]


def test_a_source_error_reads_in_the_readers_language(failed_run, admin_client):
    """The connector's 'file not found' is stored as a message: the run's
    error, its failure event and the run page are Russian in Russian."""
    run = failed_run()
    assert run.error_message_id == "CSV file not found: %(path)s"
    assert in_language("en", lambda: run.error_text).startswith("CSV file not found")
    assert in_language("ru", lambda: run.error_text).startswith("CSV-файл не найден")
    failed = run.events.get(kind=ImportRunEvent.Kind.FAILED)
    assert in_language("ru", lambda: failed.text) == in_language(
        "ru", lambda: run.error_text
    )

    url = reverse("admin:imports_importrun_change", args=[run.pk])
    admin_client.post(reverse("set_language"), {"language": "ru", "next": url})
    html = admin_client.get(url).content.decode()
    assert "CSV-файл не найден" in html
    # The run's log is the worker's log, kept as the worker wrote it (like a
    # traceback); everything the product says about the run is translated.
    assert "CSV file not found" not in _without_run_log(html)
    assert "воркер" in html  # the actor of the failure, translated
    # The breadcrumbs name the project and the translated status.
    assert f"#{run.pk} {run.project.name} (С ошибкой)" in html

    admin_client.post(reverse("set_language"), {"language": "en", "next": url})
    html = admin_client.get(url).content.decode()
    assert "CSV file not found" in html and "CSV-файл" not in html
    assert f"#{run.pk} {run.project.name} (Failed)" in html


def test_the_api_renders_the_error_in_the_requests_language(
    failed_run, client, django_user_model
):
    run = failed_run()
    user = django_user_model.objects.create_superuser("api", "a@example.com", "pw")
    auth = f"Token {Token.objects.create(user=user).key}"
    url = reverse("api:run-detail", kwargs={"pk": run.pk})
    ru = client.get(url, HTTP_ACCEPT_LANGUAGE="ru", HTTP_AUTHORIZATION=auth).json()
    en = client.get(url, HTTP_ACCEPT_LANGUAGE="en", HTTP_AUTHORIZATION=auth).json()
    assert ru["error_message"].startswith("CSV-файл не найден")
    assert en["error_message"].startswith("CSV file not found")


def test_the_busy_message_is_the_same_in_every_language(make_project):
    """A skipped tick of a busy project keeps the contract's exact words;
    a busy connector's skip is translated."""
    project = make_project()
    busy = _skip_event(project, ProjectBusy(project.pk))
    busy.save()
    expected = PROJECT_BUSY_MESSAGE.format(project_id=project.pk)
    assert in_language("en", lambda: busy.text) == expected
    assert in_language("ru", lambda: busy.text) == expected

    connector = _skip_event(project, ConnectorBusy(project.connector, limit=2))
    connector.save()
    stored = ProjectEvent.objects.get(pk=connector.pk)
    assert in_language("en", lambda: stored.text).startswith("Connector “")
    assert "Коннектор" in in_language("ru", lambda: stored.text)
    assert stored.actor == "schedule"
    assert in_language("ru", lambda: stored.actor_display) == "расписание"


def test_actor_names_are_translated_and_user_names_kept(failed_run):
    run = failed_run()
    started = run.events.get(kind=ImportRunEvent.Kind.STARTED)
    assert started.actor == "worker"
    assert in_language("ru", lambda: started.actor_display) == "воркер"
    assert in_language("en", lambda: started.actor_display) == "worker"
    assert in_language("ru", lambda: run.requested_by_display) == "tester"


def test_the_celery_results_section_is_russian():
    """django-celery-results ships no compiled Russian catalog; ours has it."""
    config = apps.get_app_config("django_celery_results")
    task_result = apps.get_model("django_celery_results", "TaskResult")
    with translation.override("ru"):
        assert str(config.verbose_name) == "Результаты Celery"
        assert str(task_result._meta.verbose_name_plural) == "результаты задач"
        assert str(task_result._meta.get_field("task_name").verbose_name) == (
            "Название задачи"
        )
