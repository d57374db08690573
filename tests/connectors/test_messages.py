"""Messages: an English msgid and JSON parameters, rendered when read."""

import json

from django.utils import translation
from django.utils.translation import gettext_lazy

from connectors.exceptions import PermanentSourceError
from connectors.messages import (
    Choice,
    Message,
    gettext_noop,
    message_fields,
    message_of,
    message_render,
)


def rendered(message: Message, language: str) -> str:
    with translation.override(language):
        return message.render()


def test_a_message_renders_in_the_active_language():
    message = Message(gettext_noop("CSV file not found: %(path)s"), path="/x.csv")
    assert rendered(message, "en") == "CSV file not found: /x.csv"
    assert rendered(message, "ru") == "CSV-файл не найден: /x.csv"


def test_parameters_are_json_and_translatable_themselves():
    """A choice, a lazy text and a nested message are stored as JSON and
    each is rendered in the reader's language."""
    message = Message(
        gettext_noop("%(kind)s: %(message)s; attempt %(next)s in %(delay)ss."),
        kind=gettext_lazy("The source failed"),
        message=Message(gettext_noop("CSV file not found: %(path)s"), path="/a"),
        next=2,
        delay=1.5,
    )
    stored = json.loads(json.dumps(message.params))
    again = Message.from_json(message.msgid, stored)
    assert rendered(again, "en") == (
        "The source failed: CSV file not found: /a; attempt 2 in 1.5s."
    )
    assert "CSV-файл не найден: /a" in rendered(again, "ru")
    assert "The source" not in rendered(again, "ru")

    trigger = Message(
        gettext_noop("Import requested (%(trigger)s)."),
        trigger=Choice("imports.ImportRun.trigger", "admin"),
    )
    assert trigger.params == {
        "trigger": {"$choice": "imports.ImportRun.trigger", "value": "admin"}
    }
    assert rendered(trigger, "en") == "Import requested (Admin)."
    assert rendered(trigger, "ru") == "Импорт запрошен (Админка)."


def test_an_error_carries_its_message():
    error = PermanentSourceError(Message(gettext_noop("The CSV header row is empty.")))
    assert message_of(error) == Message("The CSV header row is empty.")
    with translation.override("ru"):
        assert str(error) == "Строка заголовка CSV пуста."
    # An error raised with a plain text is kept as that text.
    assert message_of(PermanentSourceError("boom")) == "boom"
    assert message_of(ValueError()) == "ValueError()"


def test_stored_fields_and_the_fallback_of_a_plain_text():
    fields = message_fields(Message(gettext_noop("Cancelled by %(who)s."), who="a"))
    assert fields["message_id"] == "Cancelled by %(who)s."
    assert fields["message_params"] == {"who": "a"}
    plain = message_fields("typed by an operator", field="error_message")
    assert plain == {
        "error_message": "typed by an operator",
        "error_message_id": "",
        "error_message_params": {},
    }
    # A row with no id shows its text as written, in every language.
    with translation.override("en"):
        assert message_render("Импорт запрошен (Админка).", "", {}) == (
            "Импорт запрошен (Админка)."
        )


def test_a_broken_parameter_set_still_shows_the_message():
    """A row whose parameters lack a name renders the msgid, not a 500."""
    message = Message.from_json("CSV file not found: %(path)s", {"path": "/p"})
    message.params = {}
    assert rendered(message, "ru") == "CSV-файл не найден: %(path)s"
    broken = Message.from_json("CSV file not found: %(path)s", {"other": 1})
    assert rendered(broken, "ru") == "CSV file not found: %(path)s"
