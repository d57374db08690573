"""The SQL query text check and the trailing-semicolon strip, without a server."""

import re

import pytest

from connectors.sql_query import check_query, strip_query


def test_strip_query_touches_only_the_end():
    """Only trailing spaces and semicolons go."""
    assert strip_query("SELECT 'x' ;\n") == "SELECT 'x'"
    assert strip_query('SELECT aid, bid FROM "accounts"') == (
        'SELECT aid, bid FROM "accounts"'
    )
    assert strip_query("SELECT 1 -- end;") == "SELECT 1 -- end"
    assert strip_query("SELECT 1 ; ;\n ;") == "SELECT 1"


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1",
        "  (SELECT 1)",
        "WITH a AS (SELECT 1) SELECT * FROM a;",
        "VALUES (1)",
        "TABLE t",
        "SELECT 'DELETE; INSERT' AS \"update\"",
        "SELECT $x$ ; DELETE $x$",
        "SELECT 1 -- ; DELETE",
        "SELECT /* /* ; */ DELETE */ 1",
    ],
)
def test_a_single_read_statement_passes(query):
    """Literals, quoted names and comments hide nothing from the check."""
    assert check_query(query) is None


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (None, "Required"),
        ("  ", "Required"),
        (";", "Required"),
        ("SELECT 1; SELECT 2", "holds 2"),
        ("DELETE FROM t", "not DELETE"),
        ("SELECT * INTO t2 FROM t", "INTO found"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE found"),
        ("SELECT 'open", "cannot be read: a quoted string"),
        ("SELECT 1 /* open", "cannot be read: a /\\* comment"),
        ("SELECT $a$ open", "cannot be read: a \\$-quoted"),
    ],
)
def test_anything_else_is_refused_with_a_reason(query, reason):
    """Each refusal says what is wrong with the query."""
    problem = check_query(query)
    assert problem is not None
    assert re.search(reason, problem), problem
