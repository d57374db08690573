"""CSV rows: the header's check, where a record ends, places in a file."""

import re

from .exceptions import PermanentSourceError
from .messages import Message, gettext_noop


def header_check(columns: list[str]) -> list[str]:
    """The header's column names, checked.

    Raises:
        PermanentSourceError: the header is empty or repeats a name.
    """
    if columns and columns[0].startswith("\ufeff"):
        # A byte order mark decoded by an explicit UTF-16 codec.
        columns[0] = columns[0][1:]
    if not any(columns):
        raise PermanentSourceError(
            Message(gettext_noop("The CSV header row is empty."))
        )
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise PermanentSourceError(
            Message(
                gettext_noop(
                    "The CSV header names a column more than once: %(columns)s."
                ),
                columns=", ".join(duplicates),
            )
        )
    return columns


def undecodable(row: list[str]) -> bool:
    return any(_SURROGATE.search(field) for field in row)


_SURROGATE = re.compile("[\udc80-\udcff]")


def where(line: int, data_row: int) -> str:
    """A place in a CSV file, as an operator looks for it."""
    return f"line {line} of the file (data row {data_row})"
