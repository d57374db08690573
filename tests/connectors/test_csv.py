"""The CSV connector: local files and URLs, plain and gzip."""

import csv
import gzip
import tracemalloc

import pytest

from connectors.base import BadRow
from connectors.csv import CsvConnector
from connectors.exceptions import (
    ConnectorConfigError,
    PermanentSourceError,
    TransientSourceError,
)

from .contract import ConnectorContractTests
from .servers import Reply


def read_all(**options) -> list:
    with CsvConnector(config={}, source=options) as connector:
        return list(connector.iter_records())


class TestCsvConnectorContract(ConnectorContractTests):
    connector_class = CsvConnector
    garbage_configs = [
        {"delimiter": ";;"},
        {"encoding": "no-such-encoding"},
        {"header": False},
        {"url": "ftp://example.invalid/file.csv"},
    ]

    @pytest.fixture
    def make_source(self, write_csv):
        def make(rows):
            path = write_csv(
                [list(row.values()) for row in rows], header=("id", "name")
            )
            return {"delimiter": ","}, {"path": str(path)}

        return make


class TestCsvUrlContract(ConnectorContractTests):
    connector_class = CsvConnector

    @pytest.fixture
    def make_source(self, http_server):
        def make(rows):
            lines = ["id,name"] + [f"{row['id']},{row['name']}" for row in rows]
            http_server.route("/data.csv", Reply("\n".join(lines) + "\n"))
            return {"timeout_read": 5}, {"url": http_server.url("/data.csv")}

        return make


class TestCsvFiles:
    def test_ragged_rows_are_bad_rows(self, write_csv):
        """A row with too few or too many fields is a BadRow with its line."""
        path = write_csv([["1", "a", "10"], ["2", "b"], ["3", "c", "30", "x"]])
        records = read_all(path=str(path))
        assert records[0] == {"id": "1", "name": "a", "amount": "10"}
        assert records[1] == BadRow(3, "expected 3 fields, found 2")
        assert records[2] == BadRow(4, "expected 3 fields, found 4")

    def test_delimiter_quotechar_and_encoding(self, tmp_path):
        """Delimiter, quote character and encoding come from the options."""
        path = tmp_path / "latin.csv"
        path.write_bytes("id;name\n1;'Müller; Sohn'\n".encode("latin-1"))
        records = read_all(
            path=str(path), delimiter=";", quotechar="'", encoding="latin-1"
        )
        assert records == [{"id": "1", "name": "Müller; Sohn"}]

    def test_a_file_without_header_uses_the_columns(self, write_csv):
        """With ``header`` false the ``columns`` option names the fields."""
        path = write_csv([["1", "a", "10"]], header=None)
        records = read_all(path=str(path), header=False, columns=["id", "n", "a"])
        assert records == [{"id": "1", "n": "a", "a": "10"}]

    def test_a_wrong_encoding_is_permanent(self, tmp_path):
        """Bytes the encoding cannot decode fail the import, naming the line."""
        path = tmp_path / "bad.csv"
        path.write_bytes(b"id,name\n1,ok\n2,\xff\xfe\n")
        with pytest.raises(PermanentSourceError, match="not valid utf-8 near line"):
            read_all(path=str(path))

    def test_an_empty_file_has_no_records(self, tmp_path):
        """An empty file is an empty source, not an error."""
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
        assert read_all(path=str(path)) == []

    def test_a_header_only_file_has_no_records(self, write_csv):
        """A header without rows gives nothing."""
        assert read_all(path=str(write_csv([]))) == []

    def test_a_missing_file_is_permanent(self, tmp_path):
        """A path that does not exist fails when the connector opens."""
        connector = CsvConnector(config={}, source={"path": str(tmp_path / "no.csv")})
        with pytest.raises(PermanentSourceError, match="CSV file not found"):
            connector.open()
        connector.close()

    def test_duplicate_header_names_are_permanent(self, write_csv):
        """A header naming a column twice cannot make records."""
        path = write_csv([["1", "2"]], header=("id", "id"))
        with pytest.raises(PermanentSourceError, match="more than once: id"):
            read_all(path=str(path))

    def test_gzip_by_suffix_and_by_option(self, tmp_path):
        """A ``.gz`` file is decompressed; ``gzip`` forces it either way."""
        data = b"id,name\n1,a\n2,b\n"
        by_suffix = tmp_path / "data.csv.gz"
        by_suffix.write_bytes(gzip.compress(data))
        by_option = tmp_path / "data.bin"
        by_option.write_bytes(gzip.compress(data))
        expected = [{"id": "1", "name": "a"}, {"id": "2", "name": "b"}]
        assert read_all(path=str(by_suffix)) == expected
        assert read_all(path=str(by_option), gzip=True) == expected

    def test_a_corrupt_gzip_file_is_permanent(self, tmp_path):
        """A ``.gz`` file that is not gzip fails with a clear message."""
        path = tmp_path / "data.csv.gz"
        path.write_bytes(b"id,name\n1,a\n")
        with pytest.raises(PermanentSourceError, match="not valid gzip"):
            read_all(path=str(path))

    def test_validate_needs_a_path_or_url_but_not_both(self):
        """A project source names one file: a path or a url."""
        with pytest.raises(ConnectorConfigError) as caught:
            CsvConnector.validate(config={}, source={})
        assert "path" in caught.value.errors
        with pytest.raises(ConnectorConfigError) as caught:
            CsvConnector.validate(
                config={}, source={"path": "/a.csv", "url": "http://127.0.0.1/a"}
            )
        assert "url" in caught.value.errors

    def test_reading_200k_rows_does_not_hold_them(self, tmp_path):
        """Memory stays far below the file's size while batches stream."""
        path = tmp_path / "big.csv"
        with path.open("w") as f:
            f.write("id,name,amount\n")
            for start in range(0, 200_000, 10_000):
                f.write(
                    "".join(
                        f"{n},name number {n},{n * 3}.25\n"
                        for n in range(start, start + 10_000)
                    )
                )
        size = path.stat().st_size
        count = 0
        tracemalloc.start()
        try:
            with CsvConnector(config={}, source={"path": str(path)}) as connector:
                for batch in connector.iter_batches(batch_size=1000):
                    count += len(batch)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == 200_000
        assert size > 5_000_000
        assert peak < size / 5, (peak, size)


class TestCsvUrls:
    def test_a_gzip_url_is_streamed_and_decompressed(self, http_server):
        """A ``.gz`` URL is decompressed while it is read."""
        body = gzip.compress(b"id,name\n1,a\n")
        http_server.route("/data.csv.gz", Reply(body))
        assert read_all(url=http_server.url("/data.csv.gz")) == [
            {"id": "1", "name": "a"}
        ]

    def test_a_gzip_content_encoding_is_decompressed(self, http_server):
        """``Content-Encoding: gzip`` is honoured."""
        body = gzip.compress(b"id\n7\n")
        http_server.route("/d", Reply(body, headers={"Content-Encoding": "gzip"}))
        assert read_all(url=http_server.url("/d")) == [{"id": "7"}]

    def test_a_streamed_response_without_length(self, http_server):
        """A chunked, length-less response is read row by row."""

        def chunks():
            yield b"id,name\n"
            for n in range(3000):
                yield f"{n},row {n}\n".encode()

        http_server.route("/stream.csv", lambda request: Reply(chunks()))
        with CsvConnector(
            config={}, source={"url": http_server.url("/stream.csv")}
        ) as connector:
            batches = list(connector.iter_batches(batch_size=1000))
        assert [len(b) for b in batches] == [1000, 1000, 1000]

    def test_the_auth_token_is_sent_in_its_header(self, http_server):
        """``auth_header``/``auth_token`` become a request header."""
        http_server.route("/d.csv", Reply("id\n1\n"))
        read_all(
            url=http_server.url("/d.csv"), auth_header="X-Key", auth_token="tok-123"
        )
        assert http_server.requests[0].headers["X-Key"] == "tok-123"

    def test_a_404_is_permanent(self, http_server):
        """A missing file on the server is not retried."""
        with pytest.raises(PermanentSourceError, match="HTTP 404"):
            read_all(url=http_server.url("/missing.csv"))

    def test_a_503_is_transient(self, http_server):
        """A server error is worth retrying."""
        http_server.route("/d.csv", Reply("busy", status=503))
        with pytest.raises(TransientSourceError, match="HTTP 503"):
            read_all(url=http_server.url("/d.csv"))

    def test_a_slow_server_times_out_as_transient(self, http_server):
        """No answer within ``timeout_read`` is a transient failure."""
        http_server.route("/slow.csv", Reply("id\n1\n", delay=1.0))
        with pytest.raises(TransientSourceError, match="timed out"):
            read_all(url=http_server.url("/slow.csv"), timeout_read=0.2)

    def test_a_refused_connection_is_transient(self, http_server):
        """Nobody listening is a transient failure."""
        url = http_server.url("/d.csv")
        http_server.stop()
        with pytest.raises(TransientSourceError, match="failed"):
            read_all(url=url, timeout_connect=1)


def test_the_csv_module_is_the_standard_one():
    """``connectors.csv`` does not shadow the standard library's csv."""
    assert hasattr(csv, "reader")
