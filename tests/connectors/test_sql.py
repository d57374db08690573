"""The SQL connector against a real PostgreSQL source database."""

import datetime
import uuid
from decimal import Decimal

import psycopg
import pytest

from connectors.exceptions import (
    ConnectorConfigError,
    PermanentSourceError,
    TransientSourceError,
)
from connectors.sql import SqlConnector, check_query, strip_query

from .contract import ConnectorContractTests

PASSWORD = "pw-9d4c2b7e1f"


def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def read(url, query, **options) -> list:
    with SqlConnector(config={"url": url, **options}, source={"query": query}) as c:
        return list(c.iter_records())


def with_password(url: str, password: str = PASSWORD) -> str:
    return url.replace("://postgres@", f"://postgres:{password}@")


class TestSqlConnectorContract(ConnectorContractTests):
    connector_class = SqlConnector
    garbage_configs = [
        {"url": "mysql://x@127.0.0.1/db"},
        {"url": "postgresql://127.0.0.1:5432"},
        {"statement_timeout_ms": 0},
        {"itersize": "many"},
    ]

    @pytest.fixture
    def make_source(self, sql_source_url, sql_execute):
        def make(rows):
            table = table_name()
            sql_execute(f"CREATE TABLE {table} (id text, name text)")
            for row in rows:
                sql_execute(f"INSERT INTO {table} VALUES (%s, %s)", list(row.values()))
            query = f"SELECT id, name FROM {table} ORDER BY id::int"
            return {"url": sql_source_url}, {"query": query}

        return make


class TestSqlRows:
    def test_mixed_types_stay_python_values(self, sql_source_url, sql_execute):
        """Rows are dicts by column name; values keep their Python types."""
        table = table_name()
        sql_execute(
            f"CREATE TABLE {table} (id int, amount numeric(10,2), day date, "
            "at timestamptz, uid uuid, doc jsonb, flag boolean, tags text[], "
            "raw bytea, missing text)"
        )
        sql_execute(
            f"INSERT INTO {table} VALUES (1, 12.50, '2024-02-29', "
            "'2024-02-29 10:00+00', 'a8098c1a-f86e-11da-bd1a-00112444be1e', "
            """'{"a": [1, {"b": null}]}', true, '{x,y}', '\\x0102', NULL)"""
        )
        [row] = read(sql_source_url, f"SELECT * FROM {table}")
        assert row == {
            "id": 1,
            "amount": Decimal("12.50"),
            "day": datetime.date(2024, 2, 29),
            "at": datetime.datetime(2024, 2, 29, 10, tzinfo=datetime.UTC),
            "uid": uuid.UUID("a8098c1a-f86e-11da-bd1a-00112444be1e"),
            "doc": {"a": [1, {"b": None}]},
            "flag": True,
            "tags": ["x", "y"],
            "raw": "\\x0102",
            "missing": None,
        }

    def test_params_fill_placeholders(self, sql_source_url):
        """``params`` are bound by the driver, never pasted into the SQL."""
        records = read(
            sql_source_url,
            "SELECT g AS n FROM generate_series(1, 10) g WHERE g > %s AND g < %s",
            params=[7, 10],
        )
        assert records == [{"n": 8}, {"n": 9}]

    def test_rows_stream_through_a_server_side_cursor(
        self, sql_source_url, sql_execute
    ):
        """Rows are fetched ``itersize`` at a time from a named cursor."""
        query = "SELECT g AS n FROM generate_series(1, 1000) g ORDER BY g"
        connector = SqlConnector(
            config={"url": sql_source_url, "itersize": 100}, source={"query": query}
        )
        with connector:
            batches = connector.iter_batches(batch_size=250)
            first = next(batches)
            pid = connector._connection.info.backend_pid
            [(state, last_query)] = sql_execute(
                "SELECT state, query FROM pg_stat_activity WHERE pid = %s", [pid]
            )
            rest = list(batches)
        assert state == "idle in transaction"
        assert last_query.startswith("FETCH FORWARD 100 FROM")
        assert [len(b) for b in [first, *rest]] == [250, 250, 250, 250]
        assert [r["n"] for b in [first, *rest] for r in b] == list(range(1, 1001))

    def test_a_trailing_semicolon_and_comments_are_fine(self, sql_source_url):
        """A query ending in ``;`` or holding comments still runs."""
        query = "-- numbers; two\nSELECT 1 AS one /* ; */ ;  "
        assert strip_query(query) == "-- numbers; two\nSELECT 1 AS one"
        assert read(sql_source_url, query) == [{"one": 1}]

    def test_duplicate_column_names_are_permanent(self, sql_source_url):
        """Two columns of one name cannot make a dict; the error says so."""
        with pytest.raises(PermanentSourceError, match="more than once: a"):
            read(sql_source_url, "SELECT 1 AS a, 2 AS a")


class TestSqlErrors:
    def test_a_syntax_error_is_permanent_with_the_database_message(
        self, sql_source_url
    ):
        """A bad query fails at once with PostgreSQL's own words."""
        with pytest.raises(PermanentSourceError, match="syntax error") as caught:
            read(sql_source_url, "SELECT FROM WHERE 1")
        assert "42601" in str(caught.value)

    def test_an_unknown_table_is_permanent(self, sql_source_url):
        """A missing table is not retried."""
        with pytest.raises(PermanentSourceError, match="does not exist"):
            read(sql_source_url, "SELECT * FROM no_such_table")

    def test_write_statements_are_rejected_by_validation(self, sql_source_url):
        """INSERT, DELETE, several statements or SELECT INTO never run."""
        for query, reason in [
            ("DELETE FROM t", "not DELETE"),
            ("insert into t values (1)", "not INSERT"),
            ("SELECT 1; DROP TABLE t", "single statement"),
            ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE"),
            ("SELECT * INTO copy_of_t FROM t", "INTO"),
            ("", "Required"),
        ]:
            with pytest.raises(ConnectorConfigError, match=reason) as caught:
                SqlConnector.validate(
                    config={"url": sql_source_url}, source={"query": query}
                )
            assert "query" in caught.value.errors
        assert check_query("SELECT 'DELETE; INSERT' AS \"update\"") is None
        assert check_query("SELECT $x$ ; DELETE $x$") is None

    def test_the_transaction_is_read_only(self, sql_source_url, sql_execute):
        """A query calling a function that writes fails: READ ONLY holds."""
        table = table_name()
        sql_execute(f"CREATE TABLE {table} (n int)")
        sql_execute(
            f"CREATE FUNCTION {table}_bump() RETURNS int LANGUAGE sql AS "
            f"$$ INSERT INTO {table} VALUES (1) RETURNING n $$"
        )
        with pytest.raises(PermanentSourceError, match="read-only transaction"):
            read(sql_source_url, f"SELECT {table}_bump() AS n")
        assert sql_execute(f"SELECT count(*) FROM {table}") == [(0,)]

    def test_a_statement_timeout_is_transient(self, sql_source_url):
        """A query running past ``statement_timeout_ms`` is cancelled."""
        with pytest.raises(TransientSourceError, match="statement timeout"):
            read(sql_source_url, "SELECT pg_sleep(2)", statement_timeout_ms=200)

    def test_a_refused_connection_is_transient_and_hides_the_password(
        self, sql_source_url
    ):
        """Nobody listening is transient; the message has no password."""
        url = with_password(sql_source_url).replace(":5432/", ":1/")
        with pytest.raises(TransientSourceError) as caught:
            read(url, "SELECT 1", connect_timeout=2)
        assert PASSWORD not in str(caught.value)
        assert caught.value.__cause__ is None

    def test_an_unknown_database_is_permanent_and_hides_the_password(
        self, sql_source_url
    ):
        """Wrong connection details fail with no secret in the message."""
        url = with_password(sql_source_url) + "_missing"
        with pytest.raises(PermanentSourceError, match="does not exist") as caught:
            read(url, "SELECT 1", password=PASSWORD)
        assert PASSWORD not in str(caught.value)

    def test_the_server_going_away_is_transient(self, sql_source_url, sql_execute):
        """An administrator terminating the session mid-read is transient."""
        connector = SqlConnector(
            config={"url": sql_source_url, "itersize": 10},
            source={"query": "SELECT g FROM generate_series(1, 100) g"},
        )
        with connector:
            batches = connector.iter_batches(batch_size=10)
            next(batches)
            pid = connector._connection.info.backend_pid
            sql_execute("SELECT pg_terminate_backend(%s)", [pid])
            with pytest.raises(TransientSourceError):
                list(batches)


def test_psycopg_is_version_3():
    """The connector is written for psycopg 3's server-side cursors."""
    assert psycopg.__version__.startswith("3.")
