"""The CSV connector: a local file, plain or gzip-compressed."""

import codecs
import csv
import gzip
import io
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .base import BadRow, BaseConnector, Row
from .exceptions import ConnectorConfigError, PermanentSourceError


class CsvConnector(BaseConnector):
    """Reads a CSV file row by row; memory does not grow with the file.

    Config (shared) and source (per project) are merged, the source winning:
    ``path`` (required), ``delimiter`` (","), ``quotechar`` ('"'),
    ``encoding`` ("utf-8"), ``header`` (true: the first row names the
    columns; false: ``columns`` must name them), ``gzip`` (guessed from a
    ``.gz`` suffix when absent).
    """

    kind = "csv"

    def __init__(self, *, config: Mapping[str, Any], source: Mapping[str, Any]):
        super().__init__(config=config, source=source)
        self.options = {**self.config, **self.source}
        self._file = None

    @classmethod
    def validate(
        cls, *, config: Mapping[str, Any], source: Mapping[str, Any] | None = None
    ) -> None:
        options = {**(config or {}), **(source or {})}
        errors: dict[str, list[str]] = {}
        for name in ("delimiter", "quotechar"):
            value = options.get(name)
            if value is not None and (not isinstance(value, str) or len(value) != 1):
                errors[name] = ["Must be a single character."]
        encoding = options.get("encoding", "utf-8")
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError):
            errors["encoding"] = [f"Unknown encoding: {encoding!r}."]
        if not options.get("header", True) and not options.get("columns"):
            errors["columns"] = ["Required when the file has no header row."]
        if source is not None and not options.get("path"):
            errors["path"] = ["Required: the CSV file to read."]
        if errors:
            raise ConnectorConfigError(errors)

    def open(self) -> None:
        path = Path(self.options["path"])
        use_gzip = self.options.get("gzip", path.suffix == ".gz")
        try:
            raw = path.open("rb")
        except FileNotFoundError:
            raise PermanentSourceError(f"CSV file not found: {path}")
        except OSError as exc:
            raise PermanentSourceError(f"CSV file cannot be opened: {path}: {exc}")
        if use_gzip:
            raw = gzip.GzipFile(fileobj=raw)
        self._file = io.TextIOWrapper(
            raw, encoding=self.options.get("encoding", "utf-8"), newline=""
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def iter_records(self) -> Iterator[Row | BadRow]:
        if self._file is None:
            self.open()
        reader = csv.reader(
            self._file,
            delimiter=self.options.get("delimiter", ","),
            quotechar=self.options.get("quotechar", '"'),
            strict=True,
        )
        try:
            if self.options.get("header", True):
                columns = next(reader, None)
                if columns is None:
                    return
                if not any(columns):
                    raise PermanentSourceError("The CSV header row is empty.")
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
                yield dict(zip(columns, row, strict=True))
        except UnicodeDecodeError as exc:
            raise PermanentSourceError(
                f"The CSV file is not valid {self.options.get('encoding', 'utf-8')} "
                f"near line {reader.line_num + 1}: {exc.reason}."
            )
        except csv.Error as exc:
            raise PermanentSourceError(
                f"Malformed CSV at line {reader.line_num}: {exc}"
            )
        except gzip.BadGzipFile as exc:
            raise PermanentSourceError(f"The file is not valid gzip: {exc}")
