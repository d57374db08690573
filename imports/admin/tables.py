"""The Table panel of the project page: the table's size, columns, changes, rows.

The panel is built from ``imports.services.tables`` when the page renders
(``table_panel`` is lazy), so a save that redirects never reaches the
destination. Its template (``admin/imports/project/table_panel.html``)
escapes every value; this module only puts them in shape.
"""

import datetime
import json
from dataclasses import dataclass

from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext

from imports.admin.display import format_count
from imports.loading import change_text
from imports.models import ImportRunEvent, Project
from imports.services.tables import (
    PREVIEW_ROWS,
    Problem,
    project_schema_changes,
    project_table_view,
)

#: A preview cell longer than this is cut, with an ellipsis.
CELL_LIMIT = 200


@dataclass(frozen=True)
class Cell:
    text: str
    null: bool = False


@dataclass(frozen=True)
class SchemaChange:
    at: datetime.datetime
    run_id: int
    run_url: str
    texts: list[str]


def table_panel(project: Project, *, show_detail: bool) -> SimpleLazyObject:
    """The panel's context, built on first use.

    ``show_detail`` shows the database's own error text, which names the
    destination's host; only for those who may see the destination.
    """
    return SimpleLazyObject(lambda: _panel(project, show_detail=show_detail))


def _panel(project: Project, *, show_detail: bool) -> dict:
    if project.layout == Project.Layout.RECORDS:
        return {"records": True}
    view = project_table_view(project=project)
    events = project_schema_changes(project=project)
    changes = [schema_change(event) for event in events]
    return {
        "records": False,
        "view": view,
        "problem": problem_text(view.problem),
        "detail": view.detail if show_detail else "",
        "row_count": row_count_text(view),
        "changes": changes,
        "last_change": changes[0] if changes else None,
        "preview_rows": [[cell(value) for value in row] for row in view.preview_rows],
        "preview_limit": PREVIEW_ROWS,
    }


def problem_text(problem: str) -> str:
    return {
        "": "",
        Problem.INVALID: gettext(
            "The destination's settings cannot be used; ask whoever manages "
            "destinations to check them."
        ),
        Problem.UNREACHABLE: gettext(
            "The destination database cannot be reached right now, so the "
            "table cannot be shown. The project's settings are unaffected."
        ),
        Problem.UNREADABLE: gettext("The table could not be read."),
    }[problem]


def row_count_text(view) -> str:
    if view.row_count is None:
        return gettext("unknown (a large table not yet analysed)")
    count = format_count(view.row_count)
    if view.estimated:
        return gettext("about %(count)s (an estimate)") % {"count": count}
    return count


def cell(value) -> Cell:
    """A preview value as text: JSON for nested values, cut when long."""
    if value is None:
        return Cell("NULL", null=True)
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
    elif isinstance(value, bytes | memoryview):
        text = bytes(value).hex()
    elif isinstance(value, datetime.datetime) and timezone.is_aware(value):
        text = timezone.localtime(value).isoformat(sep=" ")
    else:
        text = str(value)
    if len(text) > CELL_LIMIT:
        text = text[: CELL_LIMIT - 1] + "…"
    return Cell(text)


def schema_change(event: ImportRunEvent) -> SchemaChange:
    changes = (event.data or {}).get("changes")
    texts = [change_text(c) for c in changes] if isinstance(changes, list) else []
    return SchemaChange(
        at=event.at,
        run_id=event.run_id,
        run_url=reverse("admin:imports_importrun_change", args=[event.run_id]),
        texts=[t for t in texts if t] or [event.text],
    )
