"""The run event log."""

from typing import Any

from imports.models import ImportRun, ImportRunEvent


def import_run_event_record(
    *,
    run: ImportRun,
    kind: str,
    message: str = "",
    actor: str = "",
    data: dict[str, Any] | None = None,
) -> ImportRunEvent:
    """Append an event to a run's log."""
    return ImportRunEvent.objects.create(
        run=run, kind=kind, message=message, actor=actor, data=data or {}
    )
