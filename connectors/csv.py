"""The CSV connector: a local file or an http(s) URL, plain or gzip."""

import codecs
import csv
import gzip
import io
import os
import zlib
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _

from .base import BadRow, BaseConnector, CopySource, Row
from .csv_copy import csv_copy_source
from .csv_files import GZIP_MAGIC, csv_file_open, peek, text_encoding
from .csv_rows import header_check, undecodable, where
from .exceptions import PermanentSourceError, SourceError, TransientSourceError
from .options import (
    OptionErrors,
    credentials_origin_check,
    http_client_check,
    merge_options,
)
from .transport import (
    NETWORK_ERRORS,
    HttpClient,
    HttpResponse,
    client_for,
    describe_error,
    split_headers,
)


class CsvConnector(BaseConnector):
    """Reads a CSV file row by row; memory does not grow with the file.

    Config (shared) and source (per project) are merged, the source winning:

    - ``path``: a local file, or ``url``: an http(s) URL (exactly one);
    - ``delimiter`` (","), ``quotechar`` ('"'), ``encoding`` ("utf-8"); with
      a UTF-8 encoding, a byte order mark is dropped (Excel's "CSV UTF-8"
      starts with one) and a UTF-16 one switches to UTF-16 (Excel's
      "Unicode text");
    - ``header`` (true: the first row names the columns; false: ``columns``
      must name them);
    - ``gzip``: true or false; when absent, gzip is recognised by its magic
      bytes, a ``.gz`` suffix or a ``Content-Encoding: gzip`` response;
    - for a URL: ``timeout_connect`` (10 s), ``timeout_read`` (60 s),
      ``timeout_write`` (10 s), ``timeout_pool`` (10 s), ``proxy``
      (connector config only, as for ``http_json``), ``headers``, and an
      optional ``auth_header`` (default
      "Authorization") with its secret ``auth_token``. Credentials go only
      to the origin of the connector's ``url``; a project URL elsewhere is
      refused when the connector holds credentials.

    A row whose number of fields differs from the header's is a ``BadRow``
    numbered by its data row (the header and blank lines do not count) and
    naming the line of the file it starts on; errors name both, as "line N
    of the file (data row M)".
    A URL is streamed: the response is decompressed and decoded as it is
    read, never held whole.
    """

    kind = "csv"
    verbose_name = _("CSV file or URL")
    secret_fields = ("auth_token",)

    def __init__(self, *, config: Mapping[str, Any], source: Mapping[str, Any]):
        super().__init__(config=config, source=source)
        self.options = {**self.config, **self.source}
        self._file = None
        self._raw = None
        self._client: HttpClient | None = None
        self._response: HttpResponse | None = None
        self._encoding = self.options.get("encoding", "utf-8")
        self._encoding_errors = "strict"

    @classmethod
    def validate(
        cls, *, config: Mapping[str, Any], source: Mapping[str, Any] | None = None
    ) -> None:
        options = merge_options(config, source)
        errors = OptionErrors(options)
        for name in ("delimiter", "quotechar"):
            value = options.get(name)
            if value is not None and (not isinstance(value, str) or len(value) != 1):
                errors.add(name, "Must be a single character.")
        encoding = options.get("encoding", "utf-8")
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            errors.add("encoding", f"Unknown encoding: {encoding!r}.")
        errors.boolean("header")
        errors.boolean("gzip")
        columns = options.get("columns")
        if columns is not None and (
            not isinstance(columns, list)
            or not columns
            or not all(isinstance(c, str) and c for c in columns)
        ):
            errors.add("columns", "Must be a list of column names.")
        elif options.get("header", True) is False and not columns:
            errors.add("columns", "Required when the file has no header row.")
        errors.string("path")
        errors.http_url("url")
        if options.get("path") and options.get("url"):
            errors.add("url", "Give either path or url, not both.")
        elif source is not None and not (options.get("path") or options.get("url")):
            errors.add("path", "Required: the CSV file's path, or a url.")
        http_client_check(errors, source=source)
        errors.mapping("headers", of_strings=True)
        errors.string("auth_header")
        errors.string("auth_token")
        if source is not None:
            credentials_origin_check(
                errors,
                config=config,
                target=options.get("url"),
                secret_fields=cls.secret_fields,
            )
        errors.raise_if_any()

    def open(self) -> None:
        if self._file is not None:
            return
        self.validate(config=self.config, source=self.source)
        if self.options.get("url"):
            raw, guessed_gzip = self._open_url()
        else:
            raw, guessed_gzip = csv_file_open(self.options["path"])
        # GzipFile never closes the file it wraps: close() closes both.
        self._raw = raw
        try:
            stream = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
            use_gzip = self.options.get("gzip")
            if use_gzip is None:
                use_gzip = guessed_gzip or peek(stream, 2) == GZIP_MAGIC
            if use_gzip:
                stream = gzip.GzipFile(fileobj=stream, mode="rb")
            encoding = text_encoding(
                self.options.get("encoding", "utf-8"), peek(stream, 4)
            )
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            self.close()
            raise PermanentSourceError(
                f"The file is not valid gzip: {exc or 'it ends too early'}."
            )
        except NETWORK_ERRORS as exc:
            self.close()
            raise TransientSourceError(
                self.redact(f"Reading {self.options['url']} failed: {exc}")
            )
        self._encoding = encoding
        self._progress_start(raw)
        self._file = io.TextIOWrapper(
            stream, encoding=encoding, errors=self._encoding_errors, newline=""
        )

    progress_unit = "bytes"

    def _progress_start(self, raw) -> None:
        """The total is the file's size (or a URL's Content-Length); what
        was read, the raw stream's position: gzip's compressed bytes."""
        self._progress_raw, self._bytes_read = raw, 0
        if self._response is not None:
            length = self._response.headers.get("Content-Length", "")
            has_tell = callable(getattr(raw, "tell", None))
            self.progress_total = int(length) if length.isdigit() and has_tell else None
            return
        try:
            self.progress_total = os.fstat(raw.fileno()).st_size
        except (AttributeError, OSError, ValueError):
            self.progress_total = None

    def progress_done(self) -> int | None:
        if self.progress_total is None:
            return None
        if self._raw is not None:
            try:
                self._bytes_read = self._progress_raw.tell()
            except (OSError, ValueError):
                pass
        return self._bytes_read

    def _open_url(self) -> tuple[Any, bool]:
        url = self.options["url"]
        headers, private = split_headers(self.options.get("headers"))
        if self.options.get("auth_token"):
            name = self.options.get("auth_header") or "Authorization"
            private[name] = self.options["auth_token"]
        # A gzip transfer encoding is undone below, as a gzip file is; with
        # ``"gzip": false`` the bytes are asked for as they are.
        self._client = client_for(
            self.options,
            proxy=self.config.get("proxy"),
            redact=self.redact,
            timeout_read=60,
            accept_encoding="identity" if self.options.get("gzip") is False else "gzip",
        )
        try:
            self._response = self._client.get(
                url,
                headers=headers,
                private_headers=private,
                # The connector's own URL, whatever a project's source says.
                private_origin=self.config.get("url") or url,
            )
        except BaseException:
            self._client.close()
            self._client = None
            raise
        encoding = self._response.headers.get("Content-Encoding", "").lower()
        guessed = encoding == "gzip" or urlsplit(url).path.endswith(".gz")
        return self._response.raw, guessed

    def _undecodable_place(self) -> str | None:
        """Where a local file first fails to decode, or None for a URL.

        The file is read again with ``surrogateescape``, which turns each
        undecodable byte into a lone surrogate that valid text never holds.
        """
        if self.options.get("url"):
            return None
        again = CsvConnector(config=self.config, source=self.source)
        again._encoding_errors = "surrogateescape"
        try:
            again.open()
            reader = csv.reader(
                again._file,
                delimiter=self.options.get("delimiter", ","),
                quotechar=self.options.get("quotechar", '"'),
            )
            data_row = -1 if self.options.get("header", True) else 0
            while True:
                line = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return None
                if row:
                    data_row += 1
                if undecodable(row):
                    if data_row < 1:
                        return f"line {line} of the file (the header)"
                    return where(line, data_row)
        except (SourceError, csv.Error, OSError, UnicodeError):
            return None
        finally:
            again.close()

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except NETWORK_ERRORS:
                pass
            self._file = None
        if self._raw is not None:
            try:
                self._raw.close()
            except NETWORK_ERRORS:
                pass
            self._raw = None
        if self._response is not None:
            self._response.close()
            self._response = None
        if self._client is not None:
            self._client.close()
            self._client = None

    values_are_text = True
    supports_copy = True

    def fingerprint(self) -> dict | None:
        """What tells this source apart from its next version, or None.

        A file: its size, modification time and inode, read from the file
        opened (not from its name). A URL: its ETag or Last-Modified, when
        the server gives one.
        """
        if self._file is None:
            self.open()
        if self._response is not None:
            headers = self._response.headers
            found = {
                name: headers.get(name)
                for name in ("ETag", "Last-Modified")
                if headers.get(name)
            }
            return {"url": self.options["url"], **found} if found else None
        try:
            info = os.fstat(self._raw.fileno())
        except (AttributeError, OSError, ValueError):
            return None
        return {
            "size": info.st_size,
            "mtime_ns": info.st_mtime_ns,
            "inode": info.st_ino,
        }

    def copy_source(self) -> CopySource | None:
        return csv_copy_source(self)

    def iter_records(self) -> Iterator[Row | BadRow]:
        if self._file is None:
            self.open()
        reader = csv.reader(
            self._file,
            delimiter=self.options.get("delimiter", ","),
            quotechar=self.options.get("quotechar", '"'),
            strict=True,
        )
        encoding = self._encoding
        # ``line`` is the line of the file the current record starts on (a
        # quoted field may span lines); ``data_row`` counts the records
        # after the header, blank lines left out.
        line, data_row = 1, 0
        try:
            if self.options.get("header", True):
                columns = next(reader, None)
                if columns is None:
                    return
                columns = header_check(columns)
            else:
                columns = list(self.options["columns"])
            width = len(columns)
            while True:
                line = reader.line_num + 1
                row = next(reader, None)
                if row is None:
                    return
                if not row:
                    continue
                data_row += 1
                if len(row) != width:
                    yield BadRow(
                        data_row, f"expected {width} fields, found {len(row)}", line
                    )
                    continue
                yield dict(zip(columns, row))  # noqa: B905 - width checked above
        except UnicodeDecodeError as exc:
            # The text layer decodes whole chunks, ahead of the parser: the
            # place is found by reading the file again (a URL cannot be).
            place = self._undecodable_place()
            if place is None:
                place = f"line {reader.line_num + 1} of the file"
            raise PermanentSourceError(
                f"The CSV file is not valid {encoding} near {place}: {exc.reason}."
            )
        except csv.Error as exc:
            raise PermanentSourceError(
                f"Malformed CSV at {where(line, data_row + 1)}: {exc}"
            )
        except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
            raise PermanentSourceError(
                f"The file is not valid gzip: {exc or 'it ends too early'}."
            )
        except NETWORK_ERRORS as exc:
            if self._response is None:
                raise PermanentSourceError(
                    f"Reading the CSV file failed: {describe_error(exc)}"
                )
            raise TransientSourceError(
                self.redact(
                    f"Reading {self.options['url']} failed near "
                    f"{where(reader.line_num, data_row)}: {describe_error(exc)}"
                )
            )
