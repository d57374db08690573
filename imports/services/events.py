"""The run event log."""

from typing import Any

from connectors.messages import Message, message_fields
from imports.models import ImportRun, ImportRunEvent


def import_run_event_record(
    *,
    run: ImportRun,
    kind: str,
    message: Message | str = "",
    actor: str = "",
    data: dict[str, Any] | None = None,
) -> ImportRunEvent:
    """Append an event to a run's log.

    A ``Message`` is stored as its id and parameters, and shown in the
    reader's language; a plain text (an operator's reason) as written.
    """
    return ImportRunEvent.objects.create(
        run=run, kind=kind, actor=actor, data=data or {}, **message_fields(message)
    )
