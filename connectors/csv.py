"""The CSV connector: a local file or an http(s) URL, plain or gzip."""

import codecs
import csv
import gzip
import io
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _

from .base import BadRow, BaseConnector, Row
from .exceptions import PermanentSourceError, TransientSourceError
from .options import OptionErrors, merge_options
from .transport import NETWORK_ERRORS, HttpResponse, describe_error, http_get


class CsvConnector(BaseConnector):
    """Reads a CSV file row by row; memory does not grow with the file.

    Config (shared) and source (per project) are merged, the source winning:

    - ``path``: a local file, or ``url``: an http(s) URL (exactly one);
    - ``delimiter`` (","), ``quotechar`` ('"'), ``encoding`` ("utf-8");
    - ``header`` (true: the first row names the columns; false: ``columns``
      must name them);
    - ``gzip``: true or false; when absent, guessed from a ``.gz`` suffix or
      a ``Content-Encoding: gzip`` response;
    - for a URL: ``timeout_connect`` (10 s), ``timeout_read`` (60 s),
      ``headers``, and an optional ``auth_header`` (default
      "Authorization") with its secret ``auth_token``.

    A row whose number of fields differs from the header's is a ``BadRow``.
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
        self._response: HttpResponse | None = None

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
        errors.positive_number("timeout_connect")
        errors.positive_number("timeout_read")
        errors.mapping("headers", of_strings=True)
        errors.string("auth_header")
        errors.string("auth_token")
        errors.raise_if_any()

    def open(self) -> None:
        if self._file is not None:
            return
        self.validate(config=self.config, source=self.source)
        if self.options.get("url"):
            raw, guessed_gzip = self._open_url()
        else:
            raw, guessed_gzip = self._open_path()
        # GzipFile never closes the file it wraps: close() closes both.
        self._raw = raw
        use_gzip = self.options.get("gzip", guessed_gzip)
        if use_gzip:
            raw = gzip.GzipFile(fileobj=raw, mode="rb")
        self._file = io.TextIOWrapper(
            raw, encoding=self.options.get("encoding", "utf-8"), newline=""
        )

    def _open_path(self) -> tuple[Any, bool]:
        path = Path(self.options["path"])
        try:
            raw = path.open("rb")
        except FileNotFoundError:
            raise PermanentSourceError(f"CSV file not found: {path}")
        except OSError as exc:
            raise PermanentSourceError(
                f"CSV file cannot be opened: {path}: {exc.strerror or exc}"
            )
        return raw, path.suffix == ".gz"

    def _open_url(self) -> tuple[Any, bool]:
        url = self.options["url"]
        private = {}
        if self.options.get("auth_token"):
            name = self.options.get("auth_header") or "Authorization"
            private[name] = self.options["auth_token"]
        self._response = http_get(
            url,
            headers=self.options.get("headers"),
            private_headers=private,
            timeout_connect=self.options.get("timeout_connect", 10),
            timeout_read=self.options.get("timeout_read", 60),
            redact=self.redact,
        )
        encoding = self._response.headers.get("Content-Encoding", "").lower()
        guessed = encoding == "gzip" or urlsplit(url).path.endswith(".gz")
        return self._response.raw, guessed

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

    def iter_records(self) -> Iterator[Row | BadRow]:
        if self._file is None:
            self.open()
        reader = csv.reader(
            self._file,
            delimiter=self.options.get("delimiter", ","),
            quotechar=self.options.get("quotechar", '"'),
            strict=True,
        )
        encoding = self.options.get("encoding", "utf-8")
        try:
            if self.options.get("header", True):
                columns = next(reader, None)
                if columns is None:
                    return
                if not any(columns):
                    raise PermanentSourceError("The CSV header row is empty.")
                duplicates = sorted({c for c in columns if columns.count(c) > 1})
                if duplicates:
                    raise PermanentSourceError(
                        f"The CSV header names a column more than once: "
                        f"{', '.join(duplicates)}."
                    )
            else:
                columns = list(self.options["columns"])
            width = len(columns)
            for row in reader:
                if not row:
                    continue
                if len(row) != width:
                    yield BadRow(
                        reader.line_num,
                        f"expected {width} fields, found {len(row)}",
                    )
                    continue
                yield dict(zip(columns, row))  # noqa: B905 - width checked above
        except UnicodeDecodeError as exc:
            raise PermanentSourceError(
                f"The CSV file is not valid {encoding} "
                f"near line {reader.line_num + 1}: {exc.reason}."
            )
        except csv.Error as exc:
            raise PermanentSourceError(
                f"Malformed CSV at line {reader.line_num}: {exc}"
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
                    f"Reading {self.options['url']} failed near line "
                    f"{reader.line_num}: {describe_error(exc)}"
                )
            )
