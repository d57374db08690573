"""CSV files on disk: confined to IMPORTHUB_CSV_ROOTS, gzip and BOM sniffed."""

import codecs
import os
import stat
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from .exceptions import PermanentSourceError
from .messages import Message, gettext_noop

GZIP_MAGIC = b"\x1f\x8b"

#: Byte order marks and the codec that reads past them.
BYTE_ORDER_MARKS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def peek(stream, size: int) -> bytes:
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
    allowed = ", ".join(str(root) for root in roots) or Message(
        gettext_noop("none configured")
    )
    return PermanentSourceError(
        Message(
            gettext_noop(
                "The CSV path %(path)s is not inside the folders CSV files may "
                "be read from (%(allowed)s; see IMPORTHUB_CSV_ROOTS)."
            ),
            path=str(path),
            allowed=allowed,
        )
    )


def _not_found(path: Path) -> Message:
    return Message(gettext_noop("CSV file not found: %(path)s"), path=str(path))


def _cannot_open(path: Path, exc: OSError) -> Message:
    return Message(
        gettext_noop("CSV file cannot be opened: %(path)s: %(error)s"),
        path=str(path),
        error=exc.strerror or str(exc),
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
            raise PermanentSourceError(_cannot_open(candidate, exc))
        if _inside(real, roots):
            return real
    if missing is not None:
        raise PermanentSourceError(_not_found(missing))
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
        raise PermanentSourceError(
            Message(
                gettext_noop("CSV path %(path)s is not a regular file."),
                path=str(path),
            )
        )
    try:
        opened = Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return
    if not _inside(opened, roots):
        raise _outside(path, roots)


def csv_file_open(path: str) -> tuple[BinaryIO, bool]:
    """Open the CSV file ``path`` for reading, confined to the roots.

    Returns the binary file and whether its name says gzip (``.gz``).

    Raises:
        PermanentSourceError: the path is outside the roots, missing, not a
            regular file or cannot be opened.
    """
    real = csv_path_resolve(path, roots=csv_roots())
    # O_NONBLOCK: opening a named pipe must not wait for a writer; it
    # is refused below, and a regular file ignores the flag.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(real, flags)
    except FileNotFoundError:
        raise PermanentSourceError(_not_found(real))
    except OSError as exc:
        raise PermanentSourceError(_cannot_open(real, exc))
    try:
        csv_file_check(fd, path=real, roots=csv_roots())
    except PermanentSourceError:
        os.close(fd)
        raise
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), real.suffix == ".gz"
