"""SQL query text: one read statement checked, trailing semicolons stripped."""

import re
from typing import Any

READ_STATEMENTS = frozenset({"SELECT", "WITH", "VALUES", "TABLE"})
_WRITE_WORDS = re.compile(
    r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|INTO)\b", re.IGNORECASE
)
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$")


def _code_only(sql: str) -> str:
    """``sql`` with comments, string literals and quoted names blanked out.

    The result has the same length, so positions in it are positions in
    ``sql``.

    Raises:
        ValueError: a literal or a comment is not terminated.
    """
    out = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        start = i
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            depth, i = 1, i + 2
            while depth:
                if i >= n:
                    raise ValueError("a /* comment is not closed")
                if sql.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif sql.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif char in "'\"":
            escapes = char == "'" and i > 0 and sql[i - 1] in "eE"
            i += 1
            while True:
                if i >= n:
                    raise ValueError("a quoted string or name is not closed")
                if escapes and sql[i] == "\\":
                    i += 2
                elif sql[i] == char:
                    if sql.startswith(char * 2, i):
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
        elif char == "$" and (match := _DOLLAR_TAG.match(sql, i)):
            end = sql.find(match.group(0), match.end())
            if end < 0:
                raise ValueError("a $-quoted string is not closed")
            i = end + len(match.group(0))
        else:
            out.append(char)
            i += 1
            continue
        out.append(" " * (i - start))
    return "".join(out)


def check_query(query: Any) -> str | None:
    """Why ``query`` cannot be imported, or None for a single read statement.

    This catches obvious mistakes early, when the connector or project is
    saved, with a clear message. It only reads the query; it never rewrites
    it. The database is what really enforces "one read statement": the
    query is declared as a cursor over the extended protocol (one statement,
    a SELECT, VALUES, TABLE or WITH without data-modifying parts) in a READ
    ONLY transaction.
    """
    if not isinstance(query, str) or not query.strip():
        return "Required: a SELECT (or WITH ... SELECT) query."
    try:
        code = _code_only(query)
    except ValueError as exc:
        return f"The query cannot be read: {exc}."
    statements = [part for part in code.split(";") if part.strip()]
    if not statements:
        return "Required: a SELECT (or WITH ... SELECT) query."
    if len(statements) > 1:
        return f"Give a single statement; the query holds {len(statements)}."
    first = re.match(r"[\s(]*([A-Za-z]+)", statements[0])
    keyword = first.group(1).upper() if first else ""
    if keyword not in READ_STATEMENTS:
        return (
            f"Only a read query (SELECT or WITH) can be imported, "
            f"not {keyword or 'this statement'}."
        )
    write = _WRITE_WORDS.search(code)
    if write:
        return (
            f"A read query may not write ({write.group(1).upper()} found; "
            f"quote a column or table of that name)."
        )
    return None


def strip_query(query: str) -> str:
    """The query as written, without trailing spaces and semicolons.

    Nothing else is touched: the query reaches the server exactly as the
    operator wrote it. A ``;`` can be dropped safely only when it is the
    last non-space character (inside a literal or a quoted name it would
    not be last; at the end of a ``--`` comment it means nothing).
    DECLARE and a subquery refuse a trailing semicolon.
    """
    text = query.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text
