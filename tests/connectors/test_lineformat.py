"""The staging line format round-trips, and PostgreSQL writes it the same way."""

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from connectors.lineformat import (
    KEY_SEPARATOR,
    MISSING_KEY,
    StageLine,
    copy_out_sql,
    decode_field,
    decode_line,
    encode_field,
    encode_line,
    key_builder,
    line_seq,
    missing_key_fields,
)

# Text PostgreSQL can store: any UTF-8 but NUL.
TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"))
AWKWARD = [
    "",
    "plain",
    "tab\there",
    "new\nline",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\",
    "\b\f\v",
    "\x01\x1f\x7f",
    "ünïcödé ✓ 日本 🙂",
    "\\t is not a tab",
    '{"json": "a\\"b\\\\c"}',
]


@pytest.mark.parametrize("value", AWKWARD + [None])
def test_a_field_round_trips(value):
    """Tabs, newlines, backslashes, NULL and unicode come back unchanged."""
    field = encode_field(value)
    assert b"\t" not in field and b"\n" not in field
    assert decode_field(field) == value


@given(TEXT)
def test_any_text_round_trips(value):
    """Every string survives encoding and decoding."""
    assert decode_field(encode_field(value)) == value


def test_a_line_round_trips():
    """A line holds seq, key, data and checksum, and ends with a newline."""
    line = encode_line(7, "a\tb\nc\\", '{"x": "\\u00e9\\n"}', "0" * 32)
    assert line.endswith(b"\n") and line.count(b"\t") == 3
    assert decode_line(line) == StageLine(
        7, "a\tb\nc\\", '{"x": "\\u00e9\\n"}', "0" * 32
    )
    assert line_seq(line) == 7
    assert MISSING_KEY not in line


def test_a_missing_key_is_null():
    """A NULL key is the marker the loading looks for."""
    line = encode_line(3, None, "{}", "c")
    assert MISSING_KEY in line
    assert decode_line(line).key is None
    assert MISSING_KEY not in encode_line(3, "\\N", "{}", "c")


def test_other_escapes_copy_reads_are_read():
    """Octal and hex escapes, and a backslashed ordinary character, decode."""
    assert decode_field(b"\\101\\x42\\q\\x") == "ABqx"


def test_a_short_line_is_refused():
    """A line without four fields is not a staging line."""
    with pytest.raises(ValueError, match="4 fields"):
        decode_line(b"1\tkey\t{}\n")


def test_keys_join_the_key_fields():
    """One field is its value; several join with the separator; empty is None."""
    one = key_builder(["id"])
    assert (one({"id": 5}), one({"id": ""}), one({})) == ("5", None, None)
    two = key_builder(["a", "b"])
    assert two({"a": "x", "b": "y"}) == f"x{KEY_SEPARATOR}y"
    assert two({"a": 1, "b": 2.5}) == f"1{KEY_SEPARATOR}2.5"
    assert two({"a": "x", "b": ""}) is None
    assert missing_key_fields({"a": "x", "b": ""}, ["a", "b", "c"]) == ["b", "c"]
    with pytest.raises(ValueError):
        key_builder([])


def test_postgresql_reads_and_writes_the_same_lines(sql_execute, sql_admin_url):
    """COPY FROM reads encode_line's lines; COPY TO writes the same bytes."""
    sql_execute("DROP TABLE IF EXISTS lines")
    sql_execute("CREATE TABLE lines (seq bigint, key text, data text, checksum text)")
    rows = [(i, v, v, "c") for i, v in enumerate(AWKWARD, 1)] + [(99, None, "", "c")]
    lines = b"".join(encode_line(*row) for row in rows)
    with psycopg.connect(sql_admin_url, autocommit=True) as conn:
        with conn.cursor().copy("COPY lines FROM STDIN") as copy:
            copy.write(lines)
        assert conn.execute("SELECT * FROM lines ORDER BY seq").fetchall() == rows
        with conn.cursor().copy(
            "COPY (SELECT * FROM lines ORDER BY seq) TO STDOUT"
        ) as c:
            written = b"".join(bytes(chunk) for chunk in c)
    assert written == lines


def test_postgresql_builds_lines_from_a_query(sql_execute, sql_source_url):
    """copy_out_sql makes the source write lines: keys, JSON and checksum."""
    sql_execute("DROP TABLE IF EXISTS src")
    sql_execute("CREATE TABLE src (id int, region text, note text)")
    sql_execute(
        "INSERT INTO src VALUES (1, 'n', E'tab\\there'), (2, '', 'x'), "
        "(3, NULL, 'y'), (4, 's', NULL)"
    )
    query = sql.SQL("SELECT * FROM src ORDER BY id")
    with psycopg.connect(sql_source_url, autocommit=True) as conn:

        def copy_out(key_fields):
            statement = copy_out_sql(query=query, key_fields=key_fields)
            with conn.cursor().copy(statement) as copy:
                return [decode_line(bytes(line)) for line in copy]

        keyed = copy_out(["region", "id"])
        keyless = copy_out([])
        md5 = conn.execute("SELECT md5(%s)", [keyed[0].data]).fetchone()[0]
    assert [line.seq for line in keyed] == [1, 2, 3, 4]
    assert [line.key for line in keyed] == [
        f"n{KEY_SEPARATOR}1",
        None,
        None,
        f"s{KEY_SEPARATOR}4",
    ]
    assert keyed[0].data == '{"id": 1, "note": "tab\\there", "region": "n"}'
    assert keyed[0].checksum == md5
    assert [line.key for line in keyless] == [line.checksum for line in keyless]
