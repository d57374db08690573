"""CSV rows: the header's check, where a record ends, places in a file."""

import re

from .exceptions import PermanentSourceError


def header_check(columns: list[str]) -> list[str]:
    """The header's column names, checked.

    Raises:
        PermanentSourceError: the header is empty or repeats a name.
    """
    if columns and columns[0].startswith("\ufeff"):
        # A byte order mark decoded by an explicit UTF-16 codec.
        columns[0] = columns[0][1:]
    if not any(columns):
        raise PermanentSourceError("The CSV header row is empty.")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise PermanentSourceError(
            f"The CSV header names a column more than once: {', '.join(duplicates)}."
        )
    return columns


def first_record_end(text: str, quotechar: str) -> int:
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


def undecodable(row: list[str]) -> bool:
    return any(_SURROGATE.search(field) for field in row)


_SURROGATE = re.compile("[\udc80-\udcff]")


def where(line: int, data_row: int) -> str:
    """A place in a CSV file, as an operator looks for it."""
    return f"line {line} of the file (data row {data_row})"
