"""The CSV connector: a local file or an http(s) URL, plain or gzip."""

import codecs
import csv
import gzip
import io
import os
import re
import stat
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .base import BadRow, BaseConnector, Row
from .exceptions import PermanentSourceError, SourceError, TransientSourceError
from .options import OptionErrors, credentials_origin_check, merge_options
from .transport import (
    NETWORK_ERRORS,
    HttpResponse,
    describe_error,
    http_get,
    split_headers,
)

GZIP_MAGIC = b"\x1f\x8b"

#: Byte order marks and the codec that reads past them.
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _peek(stream, size: int) -> bytes:
    """The first ``size`` bytes of a buffered stream, left unread."""
    return stream.peek(size)[:size]


def text_encoding(encoding: str, head: bytes) -> str:
    """The codec to decode a file that starts with ``head``.

    With a UTF-8 encoding (the default) a byte order mark decides: a UTF-8
    one is dropped (``utf-8-sig``), a UTF-16 one means UTF-16. Any other
    encoding is the operator's explicit choice and is kept.
    """
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
        return encoding
    for mark, codec in BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return codec
    return encoding


def csv_roots() -> list[Path]:
    """The folders CSV files may be read from (``IMPORTHUB_CSV_ROOTS``)."""
    return [Path(root).resolve() for root in settings.IMPORTHUB_CSV_ROOTS]


def _outside(path: Path, roots: list[Path]) -> PermanentSourceError:
    # The same words whether or not the file exists: an operator must not
    # learn what lies outside the roots from this message.
    allowed = ", ".join(str(root) for root in roots) or "none configured"
    return PermanentSourceError(
        f"The CSV path {path} is not inside the folders CSV files may be "
        f"read from ({allowed}; see IMPORTHUB_CSV_ROOTS)."
    )


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def csv_path_resolve(path: str, *, roots: list[Path]) -> Path:
    """The real path of a CSV file under one of ``roots``.

    Symlinks and ``..`` are resolved before the check, so neither leads out
    of the roots. A relative path is looked up under each root in turn.

    Raises:
        PermanentSourceError: the path is outside the roots (whether or not
            it exists), or it is inside and does not exist.
    """
    given = Path(path)
    candidates = [given] if given.is_absolute() else [root / given for root in roots]
    missing = None
    for candidate in candidates:
        # Non-strict first: it resolves every symlink that exists and never
        # fails, so the outside check says nothing about existence.
        if not _inside(candidate.resolve(), roots):
            continue
        try:
            real = candidate.resolve(strict=True)
        except FileNotFoundError:
            missing = missing or candidate
            continue
        except OSError as exc:
            raise PermanentSourceError(
                f"CSV file cannot be opened: {candidate}: {exc.strerror or exc}"
            )
        if _inside(real, roots):
            return real
    if missing is not None:
        raise PermanentSourceError(f"CSV file not found: {missing}")
    raise _outside(given, roots)


def csv_file_check(fd: int, *, path: Path, roots: list[Path]) -> None:
    """Check the file actually opened: a regular file, under the roots.

    A folder on the way could have been swapped for a symlink between the
    resolution and the open; on Linux ``/proc/self/fd`` names the file the
    descriptor really refers to.

    Raises:
        PermanentSourceError: not a regular file, or not under the roots.
    """
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise PermanentSourceError(f"CSV path {path} is not a regular file.")
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return
    if not _inside(opened, roots):
        raise _outside(path, roots)


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
      ``headers``, and an optional ``auth_header`` (default
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
        errors.positive_number("timeout_connect")
        errors.positive_number("timeout_read")
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
            raw, guessed_gzip = self._open_path()
        # GzipFile never closes the file it wraps: close() closes both.
        self._raw = raw
        try:
            stream = raw if hasattr(raw, "peek") else io.BufferedReader(raw)
            use_gzip = self.options.get("gzip")
            if use_gzip is None:
                use_gzip = guessed_gzip or _peek(stream, 2) == GZIP_MAGIC
            if use_gzip:
                stream = gzip.GzipFile(fileobj=stream, mode="rb")
            encoding = text_encoding(
                self.options.get("encoding", "utf-8"), _peek(stream, 4)
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
        self._file = io.TextIOWrapper(
            stream, encoding=encoding, errors=self._encoding_errors, newline=""
        )

    def _open_path(self) -> tuple[Any, bool]:
        path = csv_path_resolve(self.options["path"], roots=csv_roots())
        # O_NONBLOCK: opening a named pipe must not wait for a writer; it
        # is refused below, and a regular file ignores the flag.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            raise PermanentSourceError(f"CSV file not found: {path}")
        except OSError as exc:
            raise PermanentSourceError(
                f"CSV file cannot be opened: {path}: {exc.strerror or exc}"
            )
        try:
            csv_file_check(fd, path=path, roots=csv_roots())
        except PermanentSourceError:
            os.close(fd)
            raise
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), path.suffix == ".gz"

    def _open_url(self) -> tuple[Any, bool]:
        url = self.options["url"]
        headers, private = split_headers(self.options.get("headers"))
        if self.options.get("auth_token"):
            name = self.options.get("auth_header") or "Authorization"
            private[name] = self.options["auth_token"]
        self._response = http_get(
            url,
            headers=headers,
            private_headers=private,
            # The connector's own URL, whatever a project's source says.
            private_origin=self.config.get("url") or url,
            timeout_connect=self.options.get("timeout_connect", 10),
            timeout_read=self.options.get("timeout_read", 60),
            redact=self.redact,
        )
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
                if _undecodable(row):
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
                if columns and columns[0].startswith("\ufeff"):
                    # A byte order mark decoded by an explicit UTF-16 codec.
                    columns[0] = columns[0][1:]
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


def _undecodable(row: list[str]) -> bool:
    return any(_SURROGATE.search(field) for field in row)


_SURROGATE = re.compile("[\udc80-\udcff]")


def where(line: int, data_row: int) -> str:
    """A place in a CSV file, as an operator looks for it."""
    return f"line {line} of the file (data row {data_row})"
