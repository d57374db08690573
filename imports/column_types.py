"""The column types of a project's table, and how values are read as them.

A column has one of a few logical types; each database stores it in its
own physical type (``PHYSICAL``). A type is inferred from a sample of the
source's values (``infer_column``) unless the source knows it (an SQL
source's result columns) or the project declares it, which always wins.
When values need a wider type, the join of the two (``widen``) is the
narrowest type that holds both: integer → bigint → numeric → text, date →
timestamptz → text; a column never narrows.

Whether a staged text value fits a type is decided the same way for both
databases: by ``fits`` (Python, registered as an SQLite function) and by
``check_sql`` (PostgreSQL), strict forms that imply PostgreSQL can cast the
value. Inference is stricter still: a number written with a leading zero
("007", a code) stays text.
"""

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

INTEGER = "integer"
BIGINT = "bigint"
NUMERIC = "numeric"
DOUBLE = "double precision"
BOOLEAN = "boolean"
DATE = "date"
TIMESTAMP = "timestamptz"
TEXT = "text"
JSON = "jsonb"

TYPES = (INTEGER, BIGINT, NUMERIC, DOUBLE, BOOLEAN, DATE, TIMESTAMP, TEXT, JSON)

#: Other names a project may declare a type by.
ALIASES = {
    "int": INTEGER,
    "int4": INTEGER,
    "int8": BIGINT,
    "decimal": NUMERIC,
    "float": DOUBLE,
    "float8": DOUBLE,
    "double": DOUBLE,
    "real": DOUBLE,
    "bool": BOOLEAN,
    "timestamp": TIMESTAMP,
    "datetime": TIMESTAMP,
    "timestamp with time zone": TIMESTAMP,
    "string": TEXT,
    "varchar": TEXT,
    "json": JSON,
}

#: Each type's wider types, narrowest first, ending in text.
LADDERS = {
    INTEGER: (BIGINT, NUMERIC, TEXT),
    BIGINT: (NUMERIC, TEXT),
    NUMERIC: (TEXT,),
    DOUBLE: (NUMERIC, TEXT),
    BOOLEAN: (TEXT,),
    DATE: (TIMESTAMP, TEXT),
    TIMESTAMP: (TEXT,),
    JSON: (TEXT,),
    TEXT: (),
}

PHYSICAL = {
    "postgresql": {t: t for t in TYPES},
    # SQLite stores by affinity; dates and times as ISO text, JSON as text.
    "sqlite": {
        INTEGER: "INTEGER",
        BIGINT: "INTEGER",
        NUMERIC: "NUMERIC",
        DOUBLE: "REAL",
        BOOLEAN: "INTEGER",
        DATE: "TEXT",
        TIMESTAMP: "TEXT",
        TEXT: "TEXT",
        JSON: "TEXT",
    },
}

INT4 = (-(2**31), 2**31 - 1)
INT8 = (-(2**63), 2**63 - 1)
# re.ASCII: a digit is 0-9, as PostgreSQL's casts read it.
_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$", re.ASCII)
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$", re.ASCII)
_SPECIAL_NUMBERS = {"nan", "infinity", "+infinity", "-infinity", "inf", "-inf", "+inf"}
_TRUE = {"t", "true", "y", "yes", "on", "1"}
_FALSE = {"f", "false", "n", "no", "off", "0"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?"
    r"(Z|[+-]\d{2}(:?\d{2})?)?$",
    re.ASCII,
)


def type_normalize(name: Any) -> str | None:
    """The logical type a declaration names, or None when it names none."""
    if not isinstance(name, str):
        return None
    name = " ".join(name.lower().split())
    name = ALIASES.get(name, name)
    return name if name in TYPES else None


def widen(current: str | None, needed: str | None) -> str | None:
    """The narrowest type holding values of both types (None: no values)."""
    if current is None or current == needed:
        return needed
    if needed is None:
        return current
    if {current, needed} in ({INTEGER, DOUBLE}, {BIGINT, DOUBLE}):
        return DOUBLE  # JSON's 2 and 2.5: a floating point column
    if needed in LADDERS[current]:
        return needed
    if current in LADDERS[needed]:
        return current
    for wider in LADDERS[current]:
        if wider in LADDERS[needed]:
            return wider
    return TEXT


# -- inference ----------------------------------------------------------


def text_type(value: str) -> str | None:
    """The narrowest type a text value reads as (None for an empty one)."""
    stripped = value.strip()
    if not stripped:
        return None
    if _INTEGER.match(stripped):
        digits = stripped.lstrip("+-")
        if len(digits) > 1 and digits.startswith("0"):
            return TEXT  # a code such as "007" keeps its zeros
        number = int(stripped)
        if INT4[0] <= number <= INT4[1]:
            return INTEGER
        return BIGINT if INT8[0] <= number <= INT8[1] else NUMERIC
    if _NUMBER.match(stripped):
        digits = stripped.lstrip("+-")
        if len(digits) > 1 and digits[0] == "0" and digits[1].isdigit():
            return TEXT
        return NUMERIC
    if stripped.lower() in ("true", "false"):
        return BOOLEAN
    if _DATE.match(stripped) and _parses(dt.date.fromisoformat, stripped):
        return DATE
    if _TIMESTAMP.match(stripped) and _parses(_timestamp, stripped):
        return TIMESTAMP
    return TEXT


def value_type(value: Any, *, text_is_untyped: bool) -> str | None:
    """The type of a Python value a connector gave (None for None).

    ``text_is_untyped``: the source's strings are untyped text (a CSV
    file), read by ``text_type``; otherwise a string is text.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return text_type(value) if text_is_untyped else (TEXT if value else None)
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, int):
        if INT4[0] <= value <= INT4[1]:
            return INTEGER
        return BIGINT if INT8[0] <= value <= INT8[1] else NUMERIC
    if isinstance(value, float):
        return DOUBLE
    if isinstance(value, Decimal):
        return NUMERIC
    if isinstance(value, dt.datetime):
        return TIMESTAMP
    if isinstance(value, dt.date):
        return DATE
    if isinstance(value, dict | list):
        return JSON
    return TEXT


def infer_column(values, *, text_is_untyped: bool) -> str:
    """The type of a column from a sample of its values; text if all empty."""
    found = None
    for value in values:
        found = widen(found, value_type(value, text_is_untyped=text_is_untyped))
        if found == TEXT:
            break
    return found or TEXT


def as_text(value: Any) -> str | None:
    """A connector's value as the text a stage holds (None stays NULL)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict | list):
        return orjson.dumps(value, default=str).decode()
    return str(value)


# -- checking and casting staged text -----------------------------------


def fits(value: str | None, type_: str) -> bool:
    """Whether staged text ``value`` can be stored as ``type_`` (NULL can)."""
    if value is None or type_ == TEXT:
        return True
    stripped = value.strip()
    if type_ in (INTEGER, BIGINT):
        if not _INTEGER.match(stripped):
            return False
        low, high = INT4 if type_ == INTEGER else INT8
        return low <= int(stripped) <= high
    if type_ in (NUMERIC, DOUBLE):
        return bool(_NUMBER.match(stripped)) or stripped.lower() in _SPECIAL_NUMBERS
    if type_ == BOOLEAN:
        return stripped.lower() in _TRUE or stripped.lower() in _FALSE
    if type_ == DATE:
        return bool(_DATE.match(stripped)) and _parses(dt.date.fromisoformat, stripped)
    if type_ == TIMESTAMP:
        if _DATE.match(stripped):
            return _parses(dt.date.fromisoformat, stripped)
        return bool(_TIMESTAMP.match(stripped)) and _parses(_timestamp, stripped)
    if type_ == JSON:
        return _parses(orjson.loads, value)
    return False


def cast(value: str | None, type_: str) -> Any:
    """Staged text as SQLite stores ``type_``; None when it does not fit."""
    if value is None or not fits(value, type_):
        return None
    stripped = value.strip()
    if type_ in (INTEGER, BIGINT):
        return int(stripped)
    if type_ == NUMERIC:
        try:
            number = Decimal(stripped)
        except InvalidOperation:
            return None
        return int(number) if number == number.to_integral_value() else float(number)
    if type_ == DOUBLE:
        return float(stripped)
    if type_ == BOOLEAN:
        return 1 if stripped.lower() in _TRUE else 0
    if type_ == DATE:
        return dt.date.fromisoformat(stripped).isoformat()
    if type_ == TIMESTAMP:
        if _DATE.match(stripped):
            stamp = dt.datetime.fromisoformat(stripped + "T00:00:00+00:00")
        else:
            stamp = _timestamp(stripped)
        return stamp.astimezone(dt.UTC).isoformat()
    if type_ == JSON:
        return orjson.dumps(orjson.loads(value)).decode()
    return value


def _timestamp(text: str) -> dt.datetime:
    stamp = dt.datetime.fromisoformat(text)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def _parses(parse, text: str) -> bool:
    try:
        parse(text)
    except (ValueError, OverflowError, orjson.JSONDecodeError):
        return False
    return True


def check_sql(expression: str, type_: str) -> str:
    """PostgreSQL: a boolean SQL test that text ``expression`` fits ``type_``.

    As strict as ``fits``; dates and times are also checked by casting, in
    ``pg_temp.importhub_is_valid`` (``VALID_FUNCTION_SQL``).
    """
    e = expression
    if type_ == TEXT:
        return "true"
    if type_ in (INTEGER, BIGINT):
        low, high = INT4 if type_ == INTEGER else INT8
        return (
            f"(CASE WHEN {e} ~ '^\\s*[+-]?[0-9]{{1,19}}\\s*$' "
            f"THEN {e}::numeric BETWEEN {low} AND {high} ELSE false END)"
        )
    if type_ in (NUMERIC, DOUBLE):
        specials = ", ".join(f"'{s}'" for s in sorted(_SPECIAL_NUMBERS))
        return (
            f"({e} ~ '^\\s*[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)"
            f"([eE][+-]?[0-9]{{1,3}})?\\s*$' "
            f"OR lower(trim({e})) IN ({specials}))"
        )
    if type_ == BOOLEAN:
        words = ", ".join(f"'{w}'" for w in sorted(_TRUE | _FALSE))
        return f"(lower(trim({e})) IN ({words}))"
    if type_ in (DATE, TIMESTAMP, JSON):
        return f"pg_temp.importhub_is_valid({e}, '{type_}')"
    raise ValueError(f"not a column type: {type_!r}")


#: A session function telling whether text casts to a type, without failing.
VALID_FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION pg_temp.importhub_is_valid(v text, t text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  IF t = 'date' THEN
    IF v !~ '^\\s*[0-9]{4}-[0-9]{2}-[0-9]{2}\\s*$' THEN RETURN false; END IF;
    PERFORM v::date;
  ELSIF t = 'timestamptz' THEN
    -- Adjacent literals on separate lines are one literal.
    IF v !~ '^\\s*[0-9]{4}-[0-9]{2}-[0-9]{2}'
            '([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,6})?)?'
            '(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?\\s*$'
      THEN RETURN false; END IF;
    PERFORM v::timestamptz;
  ELSIF t = 'jsonb' THEN
    PERFORM v::jsonb;
  ELSE
    RETURN false;
  END IF;
  RETURN true;
EXCEPTION WHEN others THEN
  RETURN false;
END $$
"""
