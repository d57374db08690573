"""What operators see of a project's table: size, columns, changes, first rows.

Everything here only reads. The destination's rows are read in a
transaction of their own (a savepoint when the caller is in one) made
read-only with a statement timeout, and always rolled back, so that the
``SET LOCAL``\\ s end with it. Every name in SQL is quoted
(``quote_name``, ``Target.qualified``); a source's column names are text
like any other.

A destination that cannot be reached, or a table that cannot be read, is
an outcome (``TableView.problem``), never an exception: the project page
must open whatever the destination's state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import DatabaseError
from django.db import transaction as db_transaction

from connectors.secrets import redact
from imports.loading.destination import Target, quote_name
from imports.loading.table_schema import RESERVED_PREFIX
from imports.models import ImportRunEvent, Project

logger = logging.getLogger(__name__)

#: How many rows the preview shows.
PREVIEW_ROWS = 20
#: How many schema changes the history shows.
HISTORY_LIMIT = 20
#: Above this many rows (by the planner's estimate) the count is estimated.
EXACT_COUNT_LIMIT = 1_000_000
#: How long one statement of the panel may take, in milliseconds.
READ_TIMEOUT_MS = 5000


class Problem:
    """Why a table could not be shown (``TableView.problem``)."""

    INVALID = "invalid"  # the destination's settings cannot be used
    UNREACHABLE = "unreachable"  # no connection to the database
    UNREADABLE = "unreadable"  # connected, but the table could not be read


@dataclass(frozen=True)
class TableColumn:
    name: str
    type: str
    key: bool = False
    #: The type the project declares for the column, if it declares one.
    declared: str = ""


@dataclass
class TableView:
    """A project's table as the project page shows it."""

    label: str = ""
    destination: str = ""
    columns: list[TableColumn] = field(default_factory=list)
    exists: bool = False
    row_count: int | None = None
    #: The count is the planner's estimate (a large table), not count(*).
    estimated: bool = False
    preview_columns: list[str] = field(default_factory=list)
    preview_rows: list[tuple] = field(default_factory=list)
    problem: str = ""
    #: The database's own words for the problem, secrets redacted.
    detail: str = ""


def project_table_columns(*, project: Project) -> list[TableColumn]:
    """The table's columns as the last import committed them, annotated."""
    keys = set(project.key_fields or [])
    declared = project.column_types if isinstance(project.column_types, dict) else {}
    return [
        TableColumn(
            name=column["name"],
            type=column["type"],
            key=column["name"] in keys,
            declared=str(declared.get(column["name"], "")),
        )
        for column in project.table_columns or []
        if isinstance(column, dict) and "name" in column and "type" in column
    ]


def project_table_label(*, project: Project) -> str:
    """The table a project lands in, as operators name it, or "—"."""
    if project.layout == Project.Layout.RECORDS:
        return "imports_record"
    try:
        return Target(project).label
    except Exception:  # noqa: BLE001 - a destination saved past its form
        return "—"


def project_table_view(*, project: Project) -> TableView:
    """The project's table: where, how many rows, its columns, a preview.

    Reads the destination (the app's database or another one) and never
    raises for its state: see ``TableView.problem``.
    """
    view = TableView(
        destination=project.destination.name if project.destination_id else "",
        columns=project_table_columns(project=project),
    )
    try:
        target = Target(project)
    except Exception as exc:  # noqa: BLE001 - a destination saved past its form
        view.problem, view.detail = Problem.INVALID, _detail(exc, project)
        return view
    view.label = target.label
    try:
        target.db.ensure_connection()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is shown
        view.problem, view.detail = Problem.UNREACHABLE, _detail(exc, project)
        _close(target)
        return view
    try:
        _read(target, view, project)
    except DatabaseError as exc:
        logger.info("Project %s: table %s unreadable: %s", project.pk, view.label, exc)
        view.problem, view.detail = Problem.UNREADABLE, _detail(exc, project)
    finally:
        _close(target)
    return view


def project_schema_changes(
    *, project: Project, limit: int = HISTORY_LIMIT
) -> list[ImportRunEvent]:
    """The project's schema changes (events of its runs), newest first."""
    return list(
        ImportRunEvent.objects.filter(
            run__project=project, kind=ImportRunEvent.Kind.SCHEMA_CHANGED
        )
        .select_related("run")
        .order_by("-at", "-id")[:limit]
    )


def _read(target: Target, view: TableView, project: Project) -> None:
    with target.atomic(), target.cursor() as cursor:
        _read_only(cursor, target)
        view.exists = target.table_exists()
        if view.exists:
            view.row_count, view.estimated = _count(target, cursor)
            view.preview_columns, view.preview_rows = _preview(
                target, cursor, [c.name for c in view.columns], project.key_fields
            )
        # Nothing to keep: rolling back also ends the SET LOCALs.
        db_transaction.set_rollback(True, using=target.alias)


def _read_only(cursor, target: Target) -> None:
    """Make the current transaction (or savepoint) read-only, time-bounded.

    ``SET LOCAL`` lasts to the end of the transaction, or to the rollback
    of the savepoint it was made in, which ``_read`` always makes.
    """
    if target.vendor == "postgresql":
        cursor.execute("SET LOCAL transaction_read_only = on")
        cursor.execute(f"SET LOCAL statement_timeout = {int(READ_TIMEOUT_MS)}")


def _count(target: Target, cursor) -> tuple[int | None, bool]:
    """The table's rows: exact below ``EXACT_COUNT_LIMIT``, else estimated.

    A count that runs out of time (a large table never analysed, so with no
    estimate yet) falls back to the estimate, or to None without one.
    """
    table = target.qualified(target.table)
    estimate = -1.0
    if target.vendor == "postgresql":
        cursor.execute(
            "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            [target.schema, target.table],
        )
        row = cursor.fetchone()
        estimate = float(row[0]) if row else -1.0
        if estimate >= EXACT_COUNT_LIMIT:
            return int(estimate), True
    try:
        with target.atomic():
            cursor.execute(f"SELECT count(*) FROM {table}")
            return int(cursor.fetchone()[0]), False
    except DatabaseError:
        if target.vendor != "postgresql":
            raise
        return (int(estimate), True) if estimate >= 0 else (None, True)


def _preview(
    target: Target, cursor, columns: list[str], key_fields
) -> tuple[list[str], list[tuple]]:
    """The first ``PREVIEW_ROWS`` rows (by key), system columns left out."""
    select = ", ".join(quote_name(name) for name in columns) or "*"
    keys = [k for k in key_fields or [] if k in columns]
    order = f" ORDER BY {', '.join(quote_name(k) for k in keys)}" if keys else ""
    cursor.execute(
        f"SELECT {select} FROM {target.qualified(target.table)}{order} "
        f"LIMIT {int(PREVIEW_ROWS)}"
    )
    names = [getattr(d, "name", None) or d[0] for d in cursor.description]
    shown = [i for i, name in enumerate(names) if not name.startswith(RESERVED_PREFIX)]
    rows = [tuple(row[i] for i in shown) for row in cursor.fetchall()]
    return [names[i] for i in shown], rows


def _detail(exc: Exception, project: Project) -> str:
    """The first line of an error, with the destination's secrets masked."""
    url = project.destination.url if project.destination_id else ""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text, {"url": url})


def _close(target: Target) -> None:
    # A destination's connection is made for this read and not kept: the
    # web process talks to a destination only when someone opens a page.
    if target.remote:
        try:
            target.db.close()
        except DatabaseError:
            pass
