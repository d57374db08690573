"""The CSV connector's fast path: its file as bytes PostgreSQL's COPY reads.

The header is parsed here; the rest of the file is relayed as UTF-8 text in
chunks, re-encoded from the file's encoding, never parsed in Python.
"""

import csv
from collections.abc import Iterator

from .base import CopySource
from .csv_rows import header_check
from .exceptions import TransientSourceError
from .transport import NETWORK_ERRORS

CHUNK = 1 << 20


def csv_copy_source(self) -> CopySource | None:  # self: a CsvConnector
    """A CSV connector's file after its header, as UTF-8 bytes for COPY (CSV).

    None for a file of one column, whose blank lines COPY would read as
    rows (the row-by-row reader skips them).
    """
    if self._file is None:
        self.open()
    quotechar = self.options.get("quotechar", '"')
    head = ""
    try:
        if self.options.get("header", True):
            while (end := _first_record_end(head, quotechar)) < 0:
                chunk = self._file.read(CHUNK)
                if not chunk:
                    end = len(head)
                    break
                head += chunk
            if not head[:end].strip():
                self.close()
                self.open()
                return None  # an empty file: the row reader says so
            header = next(
                csv.reader(
                    [head[:end]],
                    delimiter=self.options.get("delimiter", ","),
                    quotechar=quotechar,
                ),
                None,
            )
            if header is None:
                return None
            columns, head = header_check(header), head[end:]
        else:
            columns = list(self.options["columns"])
    except (csv.Error, UnicodeDecodeError):
        self.close()
        self.open()
        return None
    except NETWORK_ERRORS as exc:
        raise TransientSourceError(
            self.redact(f"Reading {self.options.get('url')} failed: {exc}")
        )
    if len(columns) < 2:
        self.close()
        self.open()
        return None

    def chunks() -> Iterator[bytes]:
        if head:
            yield head.encode()
        try:
            while chunk := self._file.read(CHUNK):
                yield chunk.encode()
        except NETWORK_ERRORS as exc:
            raise TransientSourceError(
                self.redact(f"Reading {self.options['url']} failed: {exc}")
            )

    options = {
        "delimiter": self.options.get("delimiter", ","),
        "quotechar": quotechar,
    }
    return CopySource(columns, [None] * len(columns), "csv", options, chunks())


def _first_record_end(text: str, quotechar: str) -> int:
    """Where the first record of ``text`` ends (after its line break), or -1.

    A line break inside a quoted field does not end it.
    """
    quoted = False
    for position, char in enumerate(text):
        if char == quotechar:
            quoted = not quoted
        elif char in "\r\n" and not quoted:
            if char == "\r" and text[position + 1 : position + 2] == "\n":
                return position + 2
            if char == "\r" and position + 1 == len(text):
                return -1  # the \n may be in the next chunk
            return position + 1
    return -1
