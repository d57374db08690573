"""Texts stored as a message id and parameters, rendered when they are read.

A text the product writes to its logs (a run's event, its error, a project's
event) is kept as its English source string, the gettext msgid, and the
values it names, so that each reader sees it in their own language: the
Russian operator reads Russian what the English one reads English, whoever
wrote it. Mark each msgid with ``gettext_noop`` so that makemessages finds
it::

    Message(gettext_noop("CSV file not found: %(path)s"), path=path)

A parameter may itself be translatable: a nested ``Message``, a lazy
translation (``gettext_lazy``), or a ``Choice`` (a model field's choice,
stored as its value and rendered as its label). Everything is stored as
JSON; a parameter of another type is stored as its ``str()``.

Connectors raise their errors with a ``Message`` (see
``connectors.exceptions``), which is why this module lives here: imports/
depends on connectors/, never the other way.
"""

from typing import Any

from django.apps import apps
from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_noop

MESSAGE_KEY = "$message"
CHOICE_KEY = "$choice"

__all__ = [
    "Choice",
    "Message",
    "gettext_noop",
    "message_fields",
    "message_of",
    "message_render",
]


class Choice:
    """A choice of a model field, stored as its value, shown as its label.

    ``Choice("imports.ImportRun.trigger", "admin")`` renders "Admin" in
    English and its Russian label in Russian.
    """

    def __init__(self, field: str, value: Any):
        self.field = field
        self.value = value

    def to_json(self) -> dict:
        return {CHOICE_KEY: self.field, "value": self.value}

    def render(self) -> str:
        app_label, model, field = self.field.split(".")
        try:
            model_field = apps.get_model(app_label, model)._meta.get_field(field)
            label = dict(model_field.flatchoices).get(self.value, self.value)
        except LookupError:
            label = self.value
        return str(label)


class Message:
    """An English msgid and its parameters; ``str()`` renders it."""

    __slots__ = ("msgid", "params")

    def __init__(self, msgid: str, /, **params: Any):
        self.msgid = str(msgid)
        self.params = {name: _param_json(value) for name, value in params.items()}

    @classmethod
    def from_json(cls, msgid: str, params: dict | None) -> "Message":
        message = cls(msgid)
        message.params = dict(params or {})
        return message

    def to_json(self) -> dict:
        return {MESSAGE_KEY: self.msgid, "params": self.params}

    def redacted(self, redact) -> "Message":
        """A copy whose text parameters went through ``redact`` (a
        connector's secret masking), nested messages included."""
        copy = Message(self.msgid)
        copy.params = {
            name: _param_redacted(value, redact) for name, value in self.params.items()
        }
        return copy

    def render(self) -> str:
        """The text in the active language (English where untranslated)."""
        if not self.params:
            return gettext(self.msgid)
        values = {name: _param_render(value) for name, value in self.params.items()}
        for text in (gettext(self.msgid), self.msgid):
            try:
                return text % values
            except (KeyError, TypeError, ValueError):
                # A broken translation or row must not hide the message.
                continue
        return self.msgid

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Message({self.msgid!r}, **{self.params!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.msgid, self.params) == (other.msgid, other.params)

    def __hash__(self) -> int:
        return hash(self.msgid)


def _param_json(value: Any) -> Any:
    if isinstance(value, Message | Choice):
        return value.to_json()
    if isinstance(value, Promise):
        # A lazy translation: kept as its msgid, rendered when read.
        args = getattr(value, "_args", ())
        if len(args) == 1 and isinstance(args[0], str):
            return Message(args[0]).to_json()
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, BaseException):
        return message_of(value).to_json() if _carries(value) else _text(value)
    return str(value)


def _param_redacted(value: Any, redact) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict) and MESSAGE_KEY in value:
        nested = Message.from_json(value[MESSAGE_KEY], value.get("params"))
        return nested.redacted(redact).to_json()
    return value


def _param_render(value: Any) -> Any:
    if isinstance(value, dict):
        if MESSAGE_KEY in value:
            return Message.from_json(value[MESSAGE_KEY], value.get("params")).render()
        if CHOICE_KEY in value:
            return Choice(value[CHOICE_KEY], value.get("value")).render()
    return value


def _carries(exc: BaseException) -> bool:
    return bool(exc.args) and isinstance(exc.args[0], Message)


def _text(exc: BaseException) -> str:
    return str(exc) or repr(exc)


def message_of(value: Any) -> "Message | str":
    """The ``Message`` an error (or a text) carries, else its plain text.

    An exception raised with a ``Message`` as its first argument carries it;
    a lazy translation becomes a message; anything else is kept as text.
    """
    if isinstance(value, Message):
        return value
    if isinstance(value, BaseException):
        if _carries(value):
            return value.args[0]
        return _text(value)
    if isinstance(value, Promise):
        nested = _param_json(value)
        if isinstance(nested, dict):
            return Message.from_json(nested[MESSAGE_KEY], {})
    return str(value)


def message_fields(message: Any, *, field: str = "message") -> dict[str, Any]:
    """The model fields that store ``message``: the text rendered now (kept
    for rows read by older code and for search), its msgid and parameters.

    A plain text has no msgid: it is shown as written.
    """
    message = message_of(message) if message is not None else ""
    if isinstance(message, Message):
        return {
            field: message.render(),
            f"{field}_id": message.msgid,
            f"{field}_params": message.params,
        }
    return {field: message, f"{field}_id": "", f"{field}_params": {}}


def message_render(text: str, msgid: str, params: dict | None) -> str:
    """A stored message in the active language; ``text`` if it has no id
    (a row written before messages had ids, or a text typed by a user)."""
    if not msgid:
        return text
    return Message.from_json(msgid, params).render()
