"""The CSV connector: local files and URLs, plain and gzip."""

import codecs
import csv
import gzip
import os
import tempfile
import tracemalloc
from pathlib import Path

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
        assert records[1] == BadRow(2, "expected 3 fields, found 2", line=3)
        assert records[2] == BadRow(3, "expected 3 fields, found 4", line=4)

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
        with pytest.raises(
            PermanentSourceError,
            match=r"not valid utf-8 near line 3 of the file \(data row 2\)",
        ):
            read_all(path=str(path))

    def test_a_wrong_byte_deep_in_the_file_is_located(self, tmp_path):
        """Past the first chunk, the message still names the right line."""
        path = tmp_path / "deep.csv"
        lines = [b"id,name"] + [f"{n},name {n}".encode() for n in range(1, 5001)]
        lines[4000] = b'4000,"bad \xff\nbyte"'
        path.write_bytes(b"\n".join(lines) + b"\n")
        with pytest.raises(
            PermanentSourceError,
            match=r"near line 4001 of the file \(data row 4000\)",
        ):
            read_all(path=str(path))

    def test_a_wrong_byte_in_the_header_is_located(self, tmp_path):
        """An undecodable header says so."""
        path = tmp_path / "head.csv"
        path.write_bytes(b"id,n\xe4me\n1,a\n")
        with pytest.raises(
            PermanentSourceError, match=r"line 1 of the file \(the header\)"
        ):
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


class TestRealExports:
    """Files as spreadsheets write them."""

    def test_excel_csv_utf8_with_bom_crlf_and_semicolons(self, tmp_path):
        """Excel's "CSV UTF-8" (Russian locale): BOM, CRLF, ``;``, quotes."""
        path = tmp_path / "excel.csv"
        path.write_bytes(
            codecs.BOM_UTF8
            + (
                "id;Название;Сумма\r\n"
                '1;"Иванов; ООО ""Ромашка""";1 234,50\r\n'
                '2;"две\r\nстроки";7\r\n'
            ).encode()
        )
        records = read_all(path=str(path), delimiter=";")
        assert records == [
            {"id": "1", "Название": 'Иванов; ООО "Ромашка"', "Сумма": "1 234,50"},
            {"id": "2", "Название": "две\r\nстроки", "Сумма": "7"},
        ]

    def test_excel_bom_with_an_explicit_utf8_encoding(self, tmp_path):
        """``encoding: utf-8`` given explicitly still drops the BOM."""
        path = tmp_path / "excel.csv"
        path.write_bytes(codecs.BOM_UTF8 + b"id,name\r\n1,a\r\n")
        assert read_all(path=str(path), encoding="UTF-8") == [{"id": "1", "name": "a"}]

    def test_excel_unicode_text_is_utf16_with_tabs(self, tmp_path):
        """Excel's "Unicode text": UTF-16 LE with a BOM, tab-delimited."""
        path = tmp_path / "excel.txt"
        text = "id\tГород\r\n1\tМосква\r\n2\tКазань\r\n"
        path.write_bytes(codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
        records = read_all(path=str(path), delimiter="\t")
        assert records == [
            {"id": "1", "Город": "Москва"},
            {"id": "2", "Город": "Казань"},
        ]

    def test_a_utf16_big_endian_bom(self, tmp_path):
        """A UTF-16 BE byte order mark is read too."""
        path = tmp_path / "be.csv"
        path.write_bytes(codecs.BOM_UTF16_BE + "id\n1\n".encode("utf-16-be"))
        assert read_all(path=str(path)) == [{"id": "1"}]

    def test_an_explicit_utf16le_drops_the_bom_from_the_header(self, tmp_path):
        """A codec that keeps the BOM does not leave it in the first column."""
        path = tmp_path / "le.csv"
        path.write_bytes(codecs.BOM_UTF16_LE + "id,n\n1,2\n".encode("utf-16-le"))
        assert read_all(path=str(path), encoding="utf-16-le") == [{"id": "1", "n": "2"}]

    def test_excel_legacy_csv_in_cp1251(self, tmp_path):
        """Excel's plain "CSV" in a Russian locale: cp1251 and ``;``."""
        path = tmp_path / "legacy.csv"
        path.write_bytes("id;город\r\n1;Самара\r\n".encode("cp1251"))
        records = read_all(path=str(path), delimiter=";", encoding="cp1251")
        assert records == [{"id": "1", "город": "Самара"}]

    def test_libreoffice_export(self, tmp_path):
        """LibreOffice: UTF-8 without BOM, LF, quotes only where needed."""
        path = tmp_path / "calc.csv"
        path.write_bytes(
            'id,name,note\n1,Müller,"said ""hi"", left"\n2,Łódź,\n'.encode()
        )
        assert read_all(path=str(path)) == [
            {"id": "1", "name": "Müller", "note": 'said "hi", left'},
            {"id": "2", "name": "Łódź", "note": ""},
        ]

    def test_gzip_is_recognised_by_its_magic_bytes(self, tmp_path):
        """A gzip file without the ``.gz`` suffix is decompressed."""
        path = tmp_path / "export.csv"
        path.write_bytes(gzip.compress(codecs.BOM_UTF8 + b"id,name\r\n1,a\r\n"))
        assert read_all(path=str(path)) == [{"id": "1", "name": "a"}]

    def test_gzip_false_reads_the_bytes_as_they_are(self, tmp_path):
        """``gzip: false`` is obeyed even when the bytes look like gzip."""
        path = tmp_path / "odd.csv"
        path.write_bytes(b"\x1f\x8b,b\n1,2\n")
        assert read_all(path=str(path), gzip=False, encoding="latin-1") == [
            {"\x1f\x8b": "1", "b": "2"}
        ]

    def test_a_bad_row_names_its_line_and_data_row(self, tmp_path):
        """After a multi-line record and a blank line, the numbers still match."""
        path = tmp_path / "bad.csv"
        path.write_bytes(b'id,note\n1,"two\nlines"\n\n2,ok\n3\n4,ok\n')
        records = read_all(path=str(path))
        assert records[2] == BadRow(3, "expected 2 fields, found 1", line=6)
        assert len(records) == 4

    def test_malformed_csv_names_the_line_and_data_row(self, tmp_path):
        """A quoting error says where, in both ways of counting."""
        path = tmp_path / "broken.csv"
        path.write_bytes(b'id,note\n1,ok\n2,"a"b\n')
        with pytest.raises(
            PermanentSourceError,
            match=r"Malformed CSV at line 3 of the file \(data row 2\)",
        ):
            read_all(path=str(path))


class TestCsvUrls:
    def test_a_gzip_url_without_suffix_or_header(self, http_server):
        """A gzip body is recognised by its magic bytes."""
        body = gzip.compress(codecs.BOM_UTF8 + b"id;name\r\n1;a\r\n")
        http_server.route("/export", Reply(body))
        assert read_all(url=http_server.url("/export"), delimiter=";") == [
            {"id": "1", "name": "a"}
        ]

    def test_a_bom_in_a_response(self, http_server):
        """A byte order mark at the start of a response is dropped."""
        http_server.route("/d.csv", Reply(codecs.BOM_UTF8 + b"id\n1\n"))
        assert read_all(url=http_server.url("/d.csv")) == [{"id": "1"}]

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


class TestCsvRoots:
    """A CSV path is read only under ``IMPORTHUB_CSV_ROOTS``."""

    @pytest.fixture
    def root(self, tmp_path, settings):
        root = tmp_path / "root"
        root.mkdir()
        (root / "in.csv").write_text("id\n1\n")
        (tmp_path / "outside.csv").write_text("secret\nvalue\n")
        settings.IMPORTHUB_CSV_ROOTS = [str(root)]
        return root

    def refusal(self, path) -> str:
        with pytest.raises(PermanentSourceError) as caught:
            read_all(path=str(path))
        return str(caught.value)

    def test_a_file_inside_a_root_is_read(self, root):
        """The configured root is readable, by absolute or relative path."""
        assert read_all(path=str(root / "in.csv")) == [{"id": "1"}]
        assert read_all(path="in.csv") == [{"id": "1"}]

    def test_a_system_file_is_refused_naming_the_roots(self, root):
        """``/etc/passwd`` is refused; the message names the allowed roots."""
        message = self.refusal("/etc/passwd")
        assert "is not inside the folders CSV files may be read from" in message
        assert str(root) in message
        assert "IMPORTHUB_CSV_ROOTS" in message

    def test_dot_dot_does_not_lead_out(self, root):
        """``..`` is resolved before the check."""
        message = self.refusal(root / ".." / "outside.csv")
        assert "is not inside" in message
        assert "secret" not in message

    def test_a_symlink_out_of_the_root_is_refused(self, root, tmp_path):
        """A link inside the root to a file outside is followed, then refused."""
        (root / "link.csv").symlink_to(tmp_path / "outside.csv")
        (root / "dir").symlink_to(tmp_path)
        assert "is not inside" in self.refusal(root / "link.csv")
        assert "is not inside" in self.refusal(root / "dir" / "outside.csv")

    def test_a_symlink_inside_the_root_is_fine(self, root):
        """Links that stay under the root are read."""
        (root / "alias.csv").symlink_to(root / "in.csv")
        assert read_all(path=str(root / "alias.csv")) == [{"id": "1"}]

    def test_existence_outside_is_not_revealed(self, root, tmp_path):
        """An existing and a missing outside file get the same words."""
        existing = self.refusal(tmp_path / "outside.csv")
        missing = self.refusal(tmp_path / "no-such.csv")
        assert existing.replace("outside.csv", "X") == missing.replace(
            "no-such.csv", "X"
        )
        dangling = root / "dangling.csv"
        dangling.symlink_to(tmp_path / "no-such.csv")
        assert "is not inside" in self.refusal(dangling)

    def test_a_missing_file_inside_is_not_found(self, root):
        """Inside the roots, a missing file is simply not found."""
        assert "CSV file not found" in self.refusal(root / "missing.csv")

    def test_a_folder_is_not_a_csv_file(self, root):
        """Only regular files are read (no folders, devices or pipes)."""
        (root / "sub").mkdir()
        os.mkfifo(root / "pipe.csv")
        assert "not a regular file" in self.refusal(root / "sub")
        assert "not a regular file" in self.refusal(root / "pipe.csv")

    def test_no_root_means_no_file(self, root, settings):
        """With no root configured, no path is readable."""
        settings.IMPORTHUB_CSV_ROOTS = []
        assert "none configured" in self.refusal(root / "in.csv")


def test_the_default_roots_hold_the_demo_files():
    """The demo's folders are roots by default; the temp folder is added."""
    from django.conf import settings

    roots = [Path(root) for root in settings.IMPORTHUB_CSV_ROOTS]
    assert Path(settings.BASE_DIR) / "demo" in roots
    assert Path(settings.BASE_DIR) / "var" / "demo" in roots
    assert Path(tempfile.gettempdir()) in roots
    assert read_all(path=str(Path(settings.BASE_DIR) / "demo" / "customers.csv"))
