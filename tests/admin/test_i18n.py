"""The admin speaks Russian by default and English on request."""

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.messages import get_messages
from django.urls import reverse

pytestmark = pytest.mark.django_db(transaction=True)

LOCALE = Path(django_settings.BASE_DIR) / "locale"


@pytest.fixture
def russian(settings):
    settings.LANGUAGE_CODE = "ru"


def test_russian_by_default(admin_client, russian):
    """With no choice made, LANGUAGE_CODE (ru) applies."""
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Запуски импорта" in html
    assert "Сводка импортов" in html
    html = admin_client.get(
        reverse("admin:imports_importrun_changelist"), {"view": "active"}
    ).content.decode()
    assert "Активные (0)" in html
    assert "Список обновляется сам каждые несколько секунд." in html


def test_the_users_choice_is_honoured(admin_client, russian):
    """The header's switcher posts to set_language; the choice sticks."""
    response = admin_client.post(
        reverse("set_language"), {"language": "en", "next": "/admin/"}
    )
    assert response.status_code == 302
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "Import runs" in html
    assert "Запуски импорта" not in html
    admin_client.post(reverse("set_language"), {"language": "ru", "next": "/admin/"})
    assert (
        "Запуски импорта" in admin_client.get(reverse("admin:index")).content.decode()
    )


def test_the_switcher_is_in_the_header(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert 'id="language-switcher"' in html
    assert 'name="language" value="ru"' in html
    assert 'name="language" value="en"' in html


def test_messages_and_labels_are_translated(admin_client, russian, failed_run):
    run = failed_run()
    response = admin_client.post(
        reverse("admin:imports_importrun_changelist"),
        {"action": "retry_selected", "_selected_action": [run.pk]},
        follow=True,
    )
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Повторён 1 запуск."
    ]
    html = admin_client.get(
        reverse("admin:imports_importrun_change", args=[run.pk])
    ).content.decode()
    assert "Повторён как" in html
    assert 'id="run-retry">Повторить</button>' in html
    assert ">С ошибкой<" in html
    assert "при чтении источника (извлечение)" in html


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_catalogs_are_compiled_in_the_repo(lang):
    po = LOCALE / lang / "LC_MESSAGES" / "django.po"
    mo = po.with_suffix(".mo")
    assert po.is_file() and mo.is_file()


def test_every_russian_message_is_translated():
    """No empty msgstr in the Russian catalog (besides its header)."""
    text = (LOCALE / "ru" / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    entries = [e for e in text.split("\n\n") if "msgid" in e]
    empty = [
        e
        for e in entries[1:]
        if 'msgstr ""' in e.splitlines()[-1] and not e.rstrip().endswith('\\n"')
    ]
    assert empty == []
    assert "#, fuzzy" not in text


def test_the_deletion_limit_is_labelled_in_russian(admin_client, russian, make_project):
    project = make_project()
    html = admin_client.get(
        reverse("admin:imports_project_change", args=[project.pk])
    ).content.decode()
    assert "Замена: предел удалений (%)" in html
    assert "100 разрешает любые удаления." in html
