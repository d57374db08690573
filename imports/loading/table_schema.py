"""A project's table schema and its contract, decided before anything is written.

``schema_plan`` compares the table's current columns with the fields this
run staged and the types they need, and applies the project's policy:

- ``evolve``: a new field becomes a new column; a type widens when values
  need it (``column_types.widen``), never narrows;
- ``freeze``: a new field or a type change fails the run, naming each
  field and its old and new type, before the merge (the table is
  untouched);
- ``discard_row`` / ``discard_value``: a row (a value) that does not fit
  its column is rejected and counted.

A declared type (``Project.column_types``) always wins: a value that does
not fit it fails the run (or is discarded, under the discard policies).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext, ngettext

from connectors.exceptions import PermanentSourceError
from imports.column_types import TEXT, type_normalize, widen

from .table_stage import stage_column

RESERVED_PREFIX = "_importhub_"
SYSTEM_COLUMNS = (
    ("_importhub_run_id", "bigint"),
    ("_importhub_loaded_at", "timestamptz"),
    # PostgreSQL: a 64-bit hash of the row (SQLite: an MD5 in hex).
    ("_importhub_checksum", "checksum"),
)


DISCARDING = ("discard_row", "discard_value")


class SchemaViolation(PermanentSourceError):
    """The source does not fit the table's contract; nothing was written."""


@dataclass
class Column:
    """A column of the table, as this run will leave it."""

    name: str
    type: str
    #: The stage column holding its values this run; None when the source
    #: no longer gives the field (the column stays, new rows get NULL).
    stage: str | None = None
    #: Values that do not fit are set NULL (``discard_value``).
    discard: bool = False
    declared: bool = False

    #: One of the table's primary key columns.
    key: bool = False

    def as_dict(self) -> dict:
        found = {"name": self.name, "type": self.type}
        if self.key:
            found["key"] = True
        return found


@dataclass
class Plan:
    """The table's columns after this run, and the changes that gets there."""

    columns: list[Column]
    keys: list[Column]
    policy: str
    creates: bool = False
    added: list[Column] = field(default_factory=list)
    #: ``(column, old type)`` of each column whose type changes.
    retyped: list[tuple[Column, str]] = field(default_factory=list)
    #: ``(field, stage column)`` of new fields a discard policy keeps out.
    discarded_fields: list[tuple[str, str]] = field(default_factory=list)

    @property
    def staged(self) -> list[Column]:
        return [c for c in self.columns if c.stage is not None]

    def changes(self, table: str = "") -> list[dict]:
        """The schema changes, as events record them."""
        found = []
        if self.creates:
            found.append(
                {
                    "change": "created",
                    "table": table,
                    "count": len(self.columns),
                    "columns": [c.as_dict() for c in self.columns],
                }
            )
        found += [
            {"change": "added", "column": c.name, "type": c.type} for c in self.added
        ]
        found += [
            {"change": "retyped", "column": c.name, "old": old, "type": c.type}
            for c, old in self.retyped
        ]
        return found

    def retype(self, column: Column, needed: str) -> None:
        """Widen ``column`` to hold values of type ``needed`` (evolve)."""
        wider = widen(column.type, needed)
        if wider == column.type:
            return
        if column in self.added:
            column.type = wider
            return
        old = next((o for c, o in self.retyped if c is column), column.type)
        self.retyped = [(c, o) for c, o in self.retyped if c is not column]
        column.type = wider
        if wider != old:
            self.retyped.append((column, old))


def change_text(change) -> str:
    """One change in the reader's language: "column `x` added (text)"."""
    if not isinstance(change, dict):
        return ""
    kind = change.get("change")
    params = {
        "column": change.get("column", "?"),
        "type": change.get("type", "?"),
        "old": change.get("old", "?"),
        "table": change.get("table", "?"),
        "count": f"{int(change.get('count') or 0):,}",
    }
    if kind == "created":
        return gettext("table %(table)s created with %(count)s columns") % params
    if kind == "added":
        return gettext("column `%(column)s` added (%(type)s)") % params
    if kind == "retyped":
        return gettext("column `%(column)s` changed from %(old)s to %(type)s") % params
    if kind == "discarded_values":
        count = int(change.get("count") or 0)
        return (
            ngettext(
                "%(count)s value that did not fit its column was set NULL",
                "%(count)s values that did not fit their column were set NULL",
                count,
            )
            % params
        )
    return ""


def field_names_check(fields: list[str]) -> None:
    """Refuse source fields no table can have.

    Raises:
        SchemaViolation: a field is empty, reserved, too long or repeated.
    """
    problems = []
    for index, name in enumerate(fields, start=1):
        if not isinstance(name, str) or not name.strip():
            problems.append(f"field {index} has no name")
        elif name.startswith(RESERVED_PREFIX):
            problems.append(
                f"`{name}` starts with {RESERVED_PREFIX}, kept for importhub"
            )
        elif len(name.encode()) > 63:
            problems.append(f"`{name[:40]}…` is longer than 63 bytes")
        elif "\x00" in name:
            problems.append(f"field {index} holds a NUL character")
    seen = {n for n in fields if fields.count(n) > 1}
    if seen:
        problems.append(f"named more than once: {', '.join(sorted(seen))}")
    if problems:
        raise SchemaViolation(
            "The source's field names cannot be columns: " + "; ".join(problems) + "."
        )


def schema_plan(
    *,
    current: list[dict] | None,
    fields: list[str],
    field_types: list[str | None],
    declared: dict,
    key_fields: list[str],
    policy: str,
) -> Plan:
    """The columns this run's table will have, under the project's policy.

    ``current`` is the table's columns (``[{name, type}]``) or None when it
    does not exist; ``field_types`` the types the source or a sample gives
    the staged ``fields`` (None: not known, text).

    Raises:
        SchemaViolation: a key field is missing from the source, or the
            policy is ``freeze`` and the table would change.
    """
    field_names_check(fields)
    missing = [k for k in key_fields if k not in fields]
    if missing:
        raise SchemaViolation(
            f"The key field(s) {', '.join(missing)} are not among the source's "
            f"fields ({', '.join(fields[:20])}{'…' if len(fields) > 20 else ''})."
        )
    declared = {name: type_normalize(kind) for name, kind in (declared or {}).items()}
    plan = Plan(columns=[], keys=[], policy=policy, creates=current is None)
    by_name: dict[str, Column] = {}
    for entry in current or []:
        column = Column(entry["name"], entry["type"])
        plan.columns.append(column)
        by_name[column.name] = column
    for index, (name, found) in enumerate(zip(fields, field_types, strict=True)):
        wanted = declared.get(name)
        column = by_name.get(name)
        if column is None and current is not None and policy in DISCARDING:
            # dlt's contract: a discard policy keeps the table as it is; a
            # new field's values (or the rows holding one) are dropped.
            plan.discarded_fields.append((name, stage_column(index)))
            continue
        if column is None:
            column = Column(name, wanted or found or TEXT, declared=wanted is not None)
            plan.columns.append(column)
            by_name[name] = column
            if current is not None:
                plan.added.append(column)
        elif wanted is not None:
            column.declared = True
            if wanted != column.type:
                plan.retyped.append((column, column.type))
                column.type = wanted
        elif found is not None and policy not in DISCARDING:
            plan.retype(column, found)
        column.stage = stage_column(index)
        column.discard = policy == "discard_value" and name not in key_fields
    plan.keys = [by_name[k] for k in key_fields]
    if current is not None:
        had = [entry["name"] for entry in current if entry.get("key")]
        if had and had != list(key_fields):
            raise SchemaViolation(
                f"The project's key fields ({', '.join(key_fields) or 'none'}) are "
                f"not the table's primary key ({', '.join(had)}); give the project "
                f"a new table name to import with the new key."
            )
    for column in plan.keys:
        column.key = True
    if policy == "freeze":
        violations_raise(plan)
    return plan


def violations_raise(plan: Plan, *, rows: dict | None = None) -> None:
    """Under ``freeze``, fail naming every change the plan holds.

    ``rows`` maps a column's name to ``(row, value)``: where a value first
    did not fit, to name it.
    """
    if not plan.added and not plan.retyped:
        return
    parts = [f"new field `{c.name}` ({c.type})" for c in plan.added]
    for column, old in plan.retyped:
        text = f"`{column.name}` would change from {old} to {column.type}"
        if rows and column.name in rows:
            row, value = rows[column.name]
            text += f" (row {row}: {value!r})"
        parts.append(text)
    raise SchemaViolation(
        "The table's schema is frozen and the source does not fit it: "
        + "; ".join(parts)
        + ". Nothing was written."
    )
