"""Incremental imports: a project's cursor, read from and committed with its data.

A project opts in with a ``cursor`` object in its ``source``:

- ``field``: the field that only grows for new or changed rows (an
  ``updated_at``, an increasing id); required for SQL and HTTP sources;
- ``initial``: where the first run starts (absent: the first run reads
  everything);
- ``lookback``: re-read a window behind the cursor for late rows: a number
  (subtracted from a numeric cursor; seconds, for a date or time);
- ``param`` (HTTP JSON): the request parameter the cursor fills ("since").

An SQL query refers to the cursor as ``%(cursor)s``, always bound by the
driver; with no cursor yet and no ``initial`` it is bound to NULL, so write
``WHERE %(cursor)s IS NULL OR updated_at > %(cursor)s`` to read everything
the first time. A CSV source with a ``cursor`` (which may be empty) is
skipped while its file (size and modification time) has not changed.

The new cursor is the largest value of ``field`` among the staged rows,
computed in the merge's transaction and stored beside the fencing token in
the destination's state row, so data and cursor commit together or not at
all. An incremental run never deletes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

CURSOR_PARAMETER = "%(cursor)s"


@dataclass(frozen=True)
class CursorConfig:
    field: str | None
    initial: Any = None
    lookback: float | None = None
    param: str = "since"


def cursor_config(source: Any) -> CursorConfig | None:
    """The project's cursor, or None for a project that reads in full."""
    if not isinstance(source, dict) or "cursor" not in source:
        return None
    raw = source["cursor"] or {}
    return CursorConfig(
        field=raw.get("field"),
        initial=raw.get("initial"),
        lookback=raw.get("lookback"),
        param=raw.get("param") or "since",
    )


def cursor_problems(source: Any, *, kind: str, layout: str) -> list[str]:
    """What is wrong with a project's ``cursor``; empty when it is fine."""
    if not isinstance(source, dict) or "cursor" not in source:
        return []
    raw = source["cursor"]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return ['The cursor must be an object: {"field": "updated_at"}.']
    problems = []
    unknown = sorted(set(raw) - {"field", "initial", "lookback", "param"})
    if unknown:
        problems.append(f"Unknown cursor option(s): {', '.join(unknown)}.")
    field = raw.get("field")
    if field is not None and (not isinstance(field, str) or not field.strip()):
        problems.append("The cursor's field must be a column name.")
    if kind in ("sql", "http_json") and not field:
        problems.append("The cursor needs a field: the column that only grows.")
    lookback = raw.get("lookback")
    if lookback is not None and (
        isinstance(lookback, bool)
        or not isinstance(lookback, int | float)
        or lookback < 0
    ):
        problems.append("The cursor's lookback must be a number of at least 0.")
    if raw.get("param") is not None and not isinstance(raw.get("param"), str):
        problems.append("The cursor's param must be a request parameter name.")
    if kind == "sql" and CURSOR_PARAMETER not in str(source.get("query", "")):
        problems.append(
            "The query must use the cursor as %(cursor)s, for example "
            "WHERE %(cursor)s IS NULL OR updated_at > %(cursor)s."
        )
    if kind == "sql" and isinstance(source.get("params"), list):
        problems.append("With a cursor, the query's params must be named.")
    if layout != "table":
        problems.append("Incremental imports need the typed table layout.")
    return problems


def cursor_start(config: CursorConfig, stored: dict | None, *, full: bool) -> Any:
    """The value this run reads from: the stored cursor less the lookback,
    else the initial value; the initial value on a full refresh."""
    if full or not stored or stored.get("value") is None:
        return config.initial
    value = stored["value"]
    if not config.lookback:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value - config.lookback
    if isinstance(value, str):
        try:
            return str(Decimal(value) - Decimal(str(config.lookback)))
        except ArithmeticError:
            pass
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        return (moment - dt.timedelta(seconds=config.lookback)).isoformat()
    return value


def cursor_json(value: Any) -> Any:
    """A cursor value as the state row stores it (and a driver binds it)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def cursor_compare(new: Any, old: Any) -> int | None:
    """-1, 0 or 1 as ``new`` is below, at or above ``old``; None when the
    two cannot be compared (a number and a text)."""
    a, b = _comparable(new), _comparable(old)
    if a is None or b is None or type(a) is not type(b):
        return None
    return (a > b) - (a < b)


def _comparable(value: Any):
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except ArithmeticError:
            pass
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    return None
