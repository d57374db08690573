"""The SQL connector against a real PostgreSQL source database."""

import datetime
import json
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pytest

from connectors.exceptions import (
    ConnectorConfigError,
    PermanentSourceError,
    TransientSourceError,
)
from connectors.sql import SqlConnector
from connectors.sql_query import check_query, strip_query
from connectors.sql_roles import PRIVILEGED_ROLES

from .contract import ConnectorContractTests

PASSWORD = "pw-9d4c2b7e1f"


def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def read(url, query, **options) -> list:
    with SqlConnector(config={"url": url, **options}, source={"query": query}) as c:
        return list(c.iter_records())


def read_lines(url, query, key_fields=(), **options) -> list[dict]:
    """The records of the COPY fast path, decoded from the staging lines."""
    with SqlConnector(config={"url": url, **options}, source={"query": query}) as c:
        batches = list(c.iter_stage_lines(key_fields=list(key_fields), batch_size=50))
    return [
        json.loads(line.decode().split("\t")[2]) for batch in batches for line in batch
    ]


def with_password(url: str, password: str = PASSWORD) -> str:
    user, _, rest = url.partition("://")[2].partition("@")
    return url.replace(f"://{user}@", f"://{user}:{password}@")


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
        assert strip_query(query) == "-- numbers; two\nSELECT 1 AS one /* ; */"
        assert read(sql_source_url, query) == [{"one": 1}]

    def test_duplicate_column_names_are_permanent(self, sql_source_url):
        """Two columns of one name cannot make a dict; the error says so."""
        with pytest.raises(PermanentSourceError, match="more than once: a"):
            read(sql_source_url, "SELECT 1 AS a, 2 AS a")


class TestQueriesAsWritten:
    """The query reaches the server exactly as written, on both paths."""

    @pytest.fixture
    def accounts(self, sql_execute):
        table = table_name()
        sql_execute(
            f'CREATE TABLE "{table}" (aid int PRIMARY KEY, bid int, filler text)'
        )
        sql_execute(
            f'INSERT INTO "{table}" SELECT g, g % 3, '
            "CASE WHEN g = 2 THEN 'x' ELSE 'it''s -- /* ; */' END "
            "FROM generate_series(1, 5) g"
        )
        return table

    QUERIES = [
        # The last token of each was cut off before (a literal, a name).
        (
            "SELECT aid FROM {t} WHERE aid <= 1000 AND filler <> 'x'",
            [{"aid": 1}, {"aid": 3}, {"aid": 4}, {"aid": 5}],
        ),
        ('SELECT aid, bid FROM "{t}" WHERE aid = 1', [{"aid": 1, "bid": 1}]),
        (
            "SELECT aid, filler FROM {t} WHERE filler = 'it''s -- /* ; */' AND aid < 2",
            [{"aid": 1, "filler": "it's -- /* ; */"}],
        ),
        ("SELECT aid FROM {t} WHERE aid = 2 -- only two; really", [{"aid": 2}]),
        (
            "/* a comment; with a semicolon */ SELECT aid /* ; */ FROM {t} "
            "WHERE aid = 3 /* last */",
            [{"aid": 3}],
        ),
        (
            "SELECT $$dollar ' quoted; $$ AS d, $tag$x$tag$ AS e",
            [{"d": "dollar ' quoted; ", "e": "x"}],
        ),
        ("SELECT '42'::int AS n, 2.5::numeric::text AS s", [{"n": 42, "s": "2.5"}]),
        (
            "WITH low AS (SELECT aid FROM {t} WHERE aid < 3) "
            "SELECT count(*)::int AS n FROM low",
            [{"n": 2}],
        ),
        ("SELECT aid FROM {t} WHERE aid = 4;", [{"aid": 4}]),
        ("SELECT aid FROM {t} WHERE aid = 5 ; ; \n ", [{"aid": 5}]),
        ("SELECT 'a;' AS s;", [{"s": "a;"}]),
        ("VALUES (1)", [{"column1": 1}]),
    ]

    @pytest.mark.parametrize(("query", "expected"), QUERIES)
    def test_records(self, sql_source_url, accounts, query, expected):
        """The record path returns what the query, as written, selects."""
        query = query.replace("{t}", accounts)
        assert read(sql_source_url, query) == expected

    @pytest.mark.parametrize(("query", "expected"), QUERIES)
    def test_stage_lines(self, sql_source_url, accounts, query, expected):
        """The COPY path embeds the query unchanged and gets the same rows."""
        query = query.replace("{t}", accounts)
        rows = read_lines(sql_source_url, query)
        assert rows == json.loads(json.dumps(expected, default=str))


REFUSED = [
    ("DELETE FROM {t}", "not DELETE"),
    ("insert into {t} values (9)", "not INSERT"),
    ("UPDATE {t} SET n = 2 RETURNING n", "not UPDATE"),
    ("SELECT 1; DROP TABLE {t}", "single statement"),
    ("SELECT 1; SELECT 2", "single statement"),
    ("WITH d AS (DELETE FROM {t} RETURNING *) SELECT * FROM d", "DELETE"),
    ("WITH d AS (INSERT INTO {t} VALUES (5) RETURNING *) SELECT * FROM d", "INSERT"),
    ("SELECT * INTO {t}_copy FROM {t}", "INTO"),
]

# What the server says when the text check is out of the way.
REFUSED_BY_THE_SERVER = [
    ("DELETE FROM {t}", 'syntax error at or near "DELETE"'),
    ("insert into {t} values (9)", 'syntax error at or near "insert"'),
    ("UPDATE {t} SET n = 2 RETURNING n", 'syntax error at or near "UPDATE"'),
    ("SELECT 1; DROP TABLE {t}", "Give a single statement"),
    ("SELECT 1; SELECT 2", "Give a single statement"),
    (
        "WITH d AS (DELETE FROM {t} RETURNING *) SELECT * FROM d",
        "A read query may not write",
    ),
    (
        "WITH d AS (INSERT INTO {t} VALUES (5) RETURNING *) SELECT * FROM d",
        "A read query may not write",
    ),
    ("SELECT * INTO {t}_copy FROM {t}", "INTO is not allowed"),
    ("SELECT n FROM {t} FOR UPDATE", "read-only transaction"),
    (
        "SELECT 1 AS a) q, LATERAL (SELECT 1) j) TO STDOUT; DELETE FROM {t}; "
        "COPY (SELECT (1",
        "syntax error",
    ),
]


class TestWritesAreRefused:
    @pytest.fixture
    def table(self, sql_execute):
        table = table_name()
        sql_execute(f"CREATE TABLE {table} (n int)")
        sql_execute(f"INSERT INTO {table} VALUES (1)")
        return table

    @pytest.mark.parametrize(("query", "reason"), REFUSED)
    def test_refused_when_saved(self, sql_source_url, table, query, reason):
        """Validation names the problem before anything runs."""
        with pytest.raises(ConnectorConfigError, match=reason) as caught:
            SqlConnector.validate(
                config={"url": sql_source_url},
                source={"query": query.replace("{t}", table)},
            )
        assert list(caught.value.errors) == ["query"]

    @pytest.mark.parametrize("path", ["records", "stage_lines"])
    @pytest.mark.parametrize(("query", "reason"), REFUSED_BY_THE_SERVER)
    def test_refused_by_the_server_and_nothing_written(
        self, sql_source_url, sql_execute, table, monkeypatch, path, query, reason
    ):
        """Past the text check, PostgreSQL itself refuses; nothing changes."""
        monkeypatch.setattr("connectors.sql.check_query", lambda query: None)
        query = query.replace("{t}", table)
        with pytest.raises(PermanentSourceError, match=reason):
            if path == "records":
                read(sql_source_url, query)
            else:
                read_lines(sql_source_url, query)
        assert sql_execute(f"SELECT n FROM {table}") == [(1,)]
        assert sql_execute("SELECT to_regclass(%s)", [f"{table}_copy"]) == [(None,)]


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

    @pytest.mark.parametrize("path", ["records", "stage_lines"])
    def test_a_statement_timeout_is_permanent_and_named(self, sql_source_url, path):
        """A query past ``statement_timeout_ms`` fails at once, not retried."""
        query = "SELECT 1 AS aid, pg_sleep(6)"
        started = time.monotonic()
        with pytest.raises(PermanentSourceError) as caught:
            if path == "records":
                read(sql_source_url, query, statement_timeout_ms=2000)
            else:
                read_lines(sql_source_url, query, statement_timeout_ms=2000)
        assert time.monotonic() - started < 5
        assert not isinstance(caught.value, TransientSourceError)
        assert "statement_timeout_ms (2000 ms)" in str(caught.value)
        assert "57014" in str(caught.value)

    def test_the_export_has_its_own_limit(self, sql_source_url):
        """``export_timeout_ms`` bounds the COPY, and is the one named."""
        with pytest.raises(PermanentSourceError, match=r"export_timeout_ms \(300 ms"):
            read_lines(
                sql_source_url,
                "SELECT 1 AS aid, pg_sleep(2)",
                statement_timeout_ms=60_000,
                export_timeout_ms=300,
            )

    def test_the_timeout_is_set_on_the_session(self, sql_source_url):
        """Every statement on the connection runs under the limit."""
        connector = SqlConnector(
            config={"url": sql_source_url, "statement_timeout_ms": 1234},
            source={"query": "SELECT 1 AS one"},
        )
        with connector:
            assert list(connector.iter_records()) == [{"one": 1}]
            setting = connector._connection.execute("SHOW statement_timeout")
            assert setting.fetchone() == ("1234ms",)

    def test_a_cancelled_query_is_transient(self, sql_source_url, sql_execute):
        """An operator cancelling the query (not the timeout) may be retried."""
        connector = SqlConnector(
            config={"url": sql_source_url},
            source={"query": "SELECT 1 AS n, pg_sleep(5)"},
        )
        with connector:
            pid = connector._connection.info.backend_pid

            def cancel():
                time.sleep(0.5)
                sql_execute("SELECT pg_cancel_backend(%s)", [pid])

            thread = threading.Thread(target=cancel)
            thread.start()
            try:
                with pytest.raises(TransientSourceError, match="57014"):
                    list(connector.iter_records())
            finally:
                thread.join()

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


class TestPrivilegedRoles:
    """A read-only import refuses a role that could do far more."""

    def test_a_superuser_is_refused_before_the_query(self, sql_admin_url):
        """Logging in as a superuser fails at once, saying what to do."""
        with pytest.raises(PermanentSourceError) as caught:
            read(sql_admin_url, "SELECT 1 AS one")
        message = str(caught.value)
        assert "is superuser" in message
        assert "allow_privileged_role" in message
        assert not isinstance(caught.value, TransientSourceError)

    @pytest.mark.parametrize("granted", PRIVILEGED_ROLES)
    def test_a_member_of_a_server_role_is_refused(
        self, sql_source_url, sql_execute, granted
    ):
        """Membership of a server-files, program or signal role is named."""
        role = f"importhub_priv_{uuid.uuid4().hex[:8]}"
        sql_execute(f'CREATE ROLE "{role}" LOGIN IN ROLE {granted}')
        try:
            url = sql_source_url.replace(
                sql_source_url.split("://")[1].split("@")[0], role
            )
            with pytest.raises(PermanentSourceError, match=f"member of {granted}"):
                read(url, "SELECT 1 AS one")
        finally:
            sql_execute(f'DROP ROLE "{role}"')

    def test_the_override_lets_it_through_visibly(self, sql_admin_url, caplog):
        """``allow_privileged_role`` reads, logs a warning and says so."""
        connector = SqlConnector(
            config={"url": sql_admin_url, "allow_privileged_role": True},
            source={"query": "SELECT 1 AS one"},
        )
        with caplog.at_level("WARNING", logger="connectors.sql"):
            with connector:
                assert list(connector.iter_records()) == [{"one": 1}]
        role, privileges = connector.privileged_role
        assert privileges == ["superuser"]
        assert "allowed by allow_privileged_role" in caplog.text

    def test_an_unprivileged_role_passes(self, sql_source_url):
        """The grants README lists are enough, and nothing is flagged."""
        connector = SqlConnector(
            config={"url": sql_source_url}, source={"query": "SELECT 1 AS one"}
        )
        with connector:
            assert list(connector.iter_records()) == [{"one": 1}]
        assert connector.privileged_role is None

    def test_only_the_connector_may_allow_it(self, sql_source_url):
        """A project cannot switch the check off for itself."""
        with pytest.raises(ConnectorConfigError) as caught:
            SqlConnector.validate(
                config={"url": sql_source_url},
                source={"query": "SELECT 1", "allow_privileged_role": True},
            )
        assert "allow_privileged_role" in caught.value.errors


@pytest.mark.django_db
class TestPrivilegedRoleWhenSaved:
    def form(self, url, **config):
        from connectors.forms import ConnectorAdminForm

        return ConnectorAdminForm(
            data={
                "name": f"source-{uuid.uuid4().hex[:6]}",
                "kind": "sql",
                "config": json.dumps({"url": url, **config}),
                "max_concurrent_imports": 1,
                "when_busy": "queue",
            }
        )

    def test_a_superuser_connector_is_refused_by_the_admin_form(self, sql_admin_url):
        """Saving the connector already says the role is privileged."""
        form = self.form(sql_admin_url)
        assert not form.is_valid()
        [message] = form.errors["config"]
        assert message.startswith("url: The SQL source role")
        assert "superuser" in message

    def test_the_override_and_a_reader_are_saved(self, sql_admin_url, sql_source_url):
        """With the override, or an unprivileged role, the form is valid."""
        assert self.form(sql_admin_url, allow_privileged_role=True).is_valid()
        assert self.form(sql_source_url).is_valid()

    def test_an_unreachable_source_is_not_refused_for_it(self, sql_source_url):
        """The web process may not reach the source; the worker checks."""
        url = sql_source_url.replace(":5432/", ":1/")
        assert self.form(url).is_valid()
