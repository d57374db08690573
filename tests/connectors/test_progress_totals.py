"""What each connector says of its source's total, for a run's progress."""

import gzip
import uuid

import pytest

from connectors.csv import CsvConnector
from connectors.http_json import HttpJsonConnector
from connectors.http_paging import response_total
from connectors.sql import SqlConnector

from .servers import Reply


class TestCsv:
    def test_total_is_the_file_size_and_done_grows_with_reading(self, write_csv):
        """A file's total is its size in bytes; what was read, its position."""
        path = write_csv([(i, "x" * 40, i) for i in range(20_000)])
        size = path.stat().st_size
        with CsvConnector(config={}, source={"path": str(path)}) as connector:
            assert (connector.progress_total, connector.progress_unit) == (
                size,
                "bytes",
            )
            batches = connector.iter_batches(batch_size=1000)
            next(batches)
            early = connector.progress_done()
            assert 0 < early < size
            for _ in batches:
                pass
            assert connector.progress_done() == size
        # Closed, it still says how far it got.
        assert connector.progress_done() == size

    def test_a_gzip_file_counts_its_compressed_bytes(self, tmp_path):
        path = tmp_path / f"{uuid.uuid4().hex[:8]}.csv.gz"
        rows = "".join(f"{i},name {i},{i}\n" for i in range(50_000))
        path.write_bytes(gzip.compress(("id,name,amount\n" + rows).encode()))
        with CsvConnector(config={}, source={"path": str(path)}) as connector:
            assert connector.progress_total == path.stat().st_size
            assert sum(map(len, connector.iter_batches(batch_size=5000))) == 50_000
            assert connector.progress_done() == path.stat().st_size


class TestSql:
    @pytest.fixture
    def table(self, sql_execute):
        name = f"t_{uuid.uuid4().hex[:8]}"
        sql_execute(f"CREATE TABLE {name} (id int PRIMARY KEY, name text)")
        sql_execute(
            f"INSERT INTO {name} SELECT g, 'n' || g FROM generate_series(1, 5000) g"
        )
        sql_execute(f"ANALYZE {name}")
        return name

    def read_total(self, url, query, **source):
        connector = SqlConnector(config={"url": url}, source={"query": query, **source})
        with connector:
            assert connector.progress_total is None  # not known before the query
            rows = sum(map(len, connector.iter_batches(batch_size=1000)))
        return connector.progress_total, connector.progress_unit, rows

    def test_the_planner_estimates_the_rows(self, sql_source_url, table):
        """A whole table's estimate is its analysed row count (reltuples)."""
        total, unit, rows = self.read_total(sql_source_url, f"SELECT * FROM {table}")
        assert (total, unit, rows) == (5000, "rows", 5000)

    def test_a_filtered_query_with_params_is_estimated(self, sql_source_url, table):
        total, _, rows = self.read_total(
            sql_source_url,
            f"SELECT * FROM {table} WHERE id <= %(top)s",
            params={"top": 1000},
        )
        assert rows == 1000
        assert 500 <= total <= 2000  # an estimate, close to the truth

    def test_the_copy_path_is_estimated_too(self, sql_source_url, table):
        connector = SqlConnector(
            config={"url": sql_source_url}, source={"query": f"SELECT * FROM {table}"}
        )
        with connector:
            source = connector.copy_source()
            data = b"".join(source.chunks)
        assert data.count(b"\n") == 5000
        assert connector.progress_total == 5000


class TestHttp:
    def read(self, http_server, reply, **options):
        http_server.route("/items", reply)
        config = {"url": http_server.url("/"), "page_retries": 0, **options}
        with HttpJsonConnector(config=config, source={"path": "/items"}) as connector:
            assert connector.progress_total is None
            rows = list(connector.iter_records())
        return connector.progress_total, rows

    def test_total_header(self, http_server):
        total, rows = self.read(
            http_server,
            Reply([{"id": 1}, {"id": 2}], headers={"X-Total-Count": "2"}),
            total_header="X-Total-Count",
        )
        assert (total, len(rows)) == (2, 2)

    def test_total_path(self, http_server):
        total, rows = self.read(
            http_server,
            Reply({"meta": {"total": 3}, "data": [{"id": 1}, {"id": 2}, {"id": 3}]}),
            records_path="data",
            total_path="meta.total",
        )
        assert (total, len(rows)) == (3, 3)

    def test_not_configured_or_not_a_number(self, http_server):
        total, _ = self.read(
            http_server, Reply([{"id": 1}], headers={"X-Total-Count": "1"})
        )
        assert total is None
        assert response_total({"total_path": "n"}, {"n": "many"}, {}) is None
        assert response_total({"total_path": "n"}, {"n": True}, {}) is None
        assert response_total({"total_path": "n"}, {"n": -1}, {}) is None
